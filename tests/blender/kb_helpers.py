# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for the Blender tests (imported by conftest before anything else touches bpy).

Real Blender (bpy from PyPI, headless).

Blender reads BLENDER_USER_RESOURCES when bpy is imported, so it is pointed at a temporary
folder here, before anything imports bpy: the tests never touch a real user's Blender.
The fast tests install a zip that carries only the kinest_core wheel (torch and SciPy come
from this environment); the full zip is tested in ``test_full_zip.py`` (opt-in, slow).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

USER_RESOURCES = tempfile.mkdtemp(prefix="kinest-blender-user-")
os.environ["BLENDER_USER_RESOURCES"] = USER_RESOURCES

bpy = pytest.importorskip("bpy")

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
PKG = "bl_ext.user_default.kinest"


def build_module() -> ModuleType:
    """``kinest_blender.build`` (runs without bpy), also under a bare ``pytest`` where the repo root is not on sys.path."""
    try:
        return importlib.import_module("kinest_blender.build")
    except ImportError:
        spec = importlib.util.spec_from_file_location("kinest_blender_build", REPO / "kinest_blender" / "build.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
        return module


def mod(name: str) -> ModuleType:
    """A submodule of the installed extension (not the repo's copy: one registry of jobs)."""
    return importlib.import_module(f"{PKG}.kinest_blender.{name}")


def recording_path() -> Path:
    """A real recording: the VR fixtures when present, else a real full-body mocap BVH."""
    vr = FIXTURES / "vr"
    if vr.is_dir():
        for ext in (".bsor", ".csv", ".bvh", ".csv.gz"):
            found = sorted(p for p in vr.iterdir() if p.name.endswith(ext))
            if found:
                return found[0]
    return FIXTURES / "mocap" / "accad_Male1_A3_SwingArms_cut.bvh"


def synthetic_motion(frames: int = 240, height: float = 1.8):
    """An arm-waving, stepping, turning body through the core's forward kinematics."""
    from kinest_core import rotations as rot
    from kinest_core.skeleton import Skeleton, forward_kinematics
    from kinest_core.types import Motion

    t = np.arange(frames) / 60.0
    sk = Skeleton.neutral(height)
    aa = np.zeros((frames, 22, 3))
    aa[:, 0, 2] = 2.5 * np.sin(0.7 * t)  # turning far enough to flip quaternion signs
    aa[:, 0, 0] = 0.2 * np.cos(1.3 * t)
    aa[:, 16, 0] = 1.0 * np.sin(2 * t)
    aa[:, 17, 1] = -0.8 * np.sin(2.5 * t)
    aa[:, 18, 2] = 0.8 * np.sin(3 * t)
    aa[:, 1, 0] = 0.4 * np.sin(2 * t)
    aa[:, 4, 0] = -0.6 * (1 + np.sin(2 * t))
    aa[:, 12, 1] = 0.3
    local = rot.axis_angle_to_matrix(aa)
    trans = np.stack([0.3 * np.sin(t), 0.4 * t, 0.02 * np.sin(4 * t)], -1)
    _, pos = forward_kinematics(local, sk.rest_offsets, trans)
    return Motion(rot.matrix_to_quat(local), trans, pos, sk.rest_offsets, 60.0)


def synthetic_compute(motion_frames: int | None = None, delay: float = 0.0):
    """A stand-in network for the job (used only where kinest_core.inference is absent or too slow):
    a motion of the tracking's length through the core's FK, with progress and cancel honoured."""
    import time

    def compute(tracking, opts, progress, cancel):
        n = motion_frames or tracking.num_frames
        for done in range(0, n, max(1, n // 10)):
            progress(done, n)
            if delay:
                time.sleep(delay)
        progress(n, n)
        return synthetic_motion(n)

    return compute


def has_inference() -> bool:
    try:
        importlib.import_module("kinest_core.inference")
    except ImportError:
        return False
    return True


def scene_state() -> dict[str, list[str]]:
    """Names of every object, action, armature and collection (to prove a cancel changed nothing)."""
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "actions": sorted(a.name for a in bpy.data.actions),
        "armatures": sorted(a.name for a in bpy.data.armatures),
        "collections": sorted(c.name for c in bpy.data.collections),
    }
