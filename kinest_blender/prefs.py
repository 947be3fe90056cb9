# SPDX-License-Identifier: GPL-3.0-or-later
"""Add-on preferences: an external Python to reconstruct in (e.g. one with CUDA PyTorch)."""

from __future__ import annotations

import json
import os
import subprocess

import bpy
from bpy.props import FloatProperty, StringProperty

#: The add-on's module name (``bl_ext.<repo>.kinest`` as an extension), which preferences are keyed by.
ADDON_ID = __package__.rpartition(".")[0] or __package__


class KinestPreferences(bpy.types.AddonPreferences):
    """Where reconstruction runs"""

    bl_idname = ADDON_ID

    worker_python: StringProperty(
        name="Worker Python",
        subtype="FILE_PATH",
        default="",
        description=(
            "A Python with kinest_core and a CUDA PyTorch: reconstruction runs in a process of it "
            "(python -m kinest_core.worker). Empty: the bundled CPU PyTorch inside Blender"
        ),
    )
    worker_timeout: FloatProperty(
        name="Worker Timeout",
        default=300.0,
        min=5.0,
        max=86400.0,
        unit="TIME_ABSOLUTE",
        description="Stop the worker when it sends no progress for this long (model loading included)",
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.prop(self, "worker_python")
        layout.prop(self, "worker_timeout")
        layout.operator("kinest.check_worker", icon="CHECKMARK")
        layout.label(text="Check runs: PYTHON -m kinest_core.worker --check (see docs/worker.md)")


def preferences(context: bpy.types.Context | None = None) -> KinestPreferences | None:
    ctx = context or bpy.context
    addon = ctx.preferences.addons.get(ADDON_ID)
    return addon.preferences if addon is not None else None


def worker_settings(context: bpy.types.Context | None = None) -> tuple[str, float]:
    """(worker Python path, absolute; "" when reconstruction runs in-process) and its timeout."""
    prefs = preferences(context)
    if prefs is None or not prefs.worker_python.strip():
        return "", 300.0
    return bpy.path.abspath(prefs.worker_python.strip()), float(prefs.worker_timeout)


def check_worker(python: str, timeout: float = 60.0) -> dict:
    """What ``python -m kinest_core.worker --check`` reports; raises RuntimeError with advice."""
    if not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise RuntimeError(f"Worker Python {python} is not an executable file: pick a python (or python.exe)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
    try:
        out = subprocess.run(
            [python, "-m", "kinest_core.worker", "--check"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"{python} did not answer within {timeout:.0f} s") from exc
    lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if out.returncode != 0 or not lines:
        err = (out.stderr.strip().splitlines() or ["no output"])[-1]
        if "No module named" in err:
            err += ": install kinest_core and torch into that Python"
        raise RuntimeError(f"Worker Python check failed: {err}")
    return json.loads(lines[-1])


class KINEST_OT_check_worker(bpy.types.Operator):
    """Run the worker Python once and report its PyTorch and GPU"""

    bl_idname = "kinest.check_worker"
    bl_label = "Check Worker Python"

    def execute(self, context: bpy.types.Context) -> set[str]:
        python, _timeout = worker_settings(context)
        if not python:
            self.report({"INFO"}, "No worker Python set: reconstruction runs inside Blender on the bundled CPU PyTorch")
            return {"FINISHED"}
        try:
            info = check_worker(python)
        except RuntimeError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        gpu = info.get("gpu") if info.get("cuda") else "no CUDA GPU (runs on its CPU)"
        self.report({"INFO"}, f"Worker: Python {info.get('python')}, torch {info.get('torch')}, {gpu}")
        return {"FINISHED"}


classes = (KinestPreferences, KINEST_OT_check_worker)

register, unregister = bpy.utils.register_classes_factory(classes)
