# SPDX-License-Identifier: GPL-3.0-or-later
"""The release zip is complete: install it into a Python that has bpy but no torch, SciPy or
kinest_core, in a clean subprocess, and reconstruct there.

Heavy (a 240 MB zip unpacked to about 1 GB, plus a bpy-only venv made once and cached in
KINEST_TEST_CACHE, default ~/.cache/kinest-tests, by ``pip install bpy==5.0.1``), yet measured
at about 30 s cold and 16 s with the venv cached on 2 cores, so it runs by default (marked
slow). KINEST_FULL_ZIP_TEST=0 skips it; =1 makes a failure to create the venv an error
instead of a skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kb_helpers import REPO, build_module, recording_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("KINEST_FULL_ZIP_TEST") == "0", reason="KINEST_FULL_ZIP_TEST=0"),
]

BPY_VERSION = "5.0.1"


def bpy_only_python() -> Path:
    """A cached venv holding bpy (and what bpy itself requires) and nothing else."""
    cache = Path(os.environ.get("KINEST_TEST_CACHE", Path.home() / ".cache" / "kinest-tests"))
    venv = cache / f"bpy-{BPY_VERSION}-only"
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    if not marker.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
            subprocess.run(
                [str(python), "-m", "pip", "install", "-q", f"bpy=={BPY_VERSION}"],
                check=True,
                timeout=900,
                capture_output=True,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            if os.environ.get("KINEST_FULL_ZIP_TEST") == "1":
                raise
            pytest.skip(f"could not make a bpy-only venv (pip install bpy=={BPY_VERSION}): {exc}")
        marker.write_text(BPY_VERSION)
    return python


SCRIPT = textwrap.dedent(
    """
    import importlib.util, json, os, sys, tempfile, time
    user = tempfile.mkdtemp(prefix="kinest-full-user-")
    os.environ["BLENDER_USER_RESOURCES"] = user
    before = {m: importlib.util.find_spec(m) is not None for m in ("torch", "scipy", "kinest_core")}
    import bpy
    zip_path, recording, checkpoint, out = sys.argv[1:5]
    t0 = time.perf_counter()
    assert bpy.ops.extensions.package_install_files(
        filepath=zip_path, repo="user_default", enable_on_install=True) == {"FINISHED"}
    t_install = time.perf_counter() - t0
    assert bpy.ops.import_scene.kinest_tracking(filepath=recording) == {"FINISHED"}
    scene = bpy.context.scene
    scene.kinest.model_path = checkpoint
    t0 = time.perf_counter()
    assert bpy.ops.kinest.reconstruct() == {"FINISHED"}
    t_reconstruct = time.perf_counter() - t0
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert bpy.ops.kinest.export_fbx(filepath=os.path.join(out, "take.fbx"), preset="UNITY") == {"FINISHED"}
    assert bpy.ops.kinest.export_bvh(filepath=os.path.join(out, "take.bvh")) == {"FINISHED"}
    import torch, kinest_core
    print("RESULT " + json.dumps({
        "before": before,
        "torch": torch.__file__,
        "kinest_core": kinest_core.__file__,
        "user": user,
        "bones": len(arm.data.bones),
        "frames": int(arm.animation_data.action.frame_range[1]),
        "install_s": t_install,
        "reconstruct_s": t_reconstruct,
    }))
    """
)


def test_full_zip_installs_and_reconstructs_without_torch_beforehand(tmp_path, checkpoint):
    build = build_module()

    t0 = time.perf_counter()
    (zp,) = build.build(tmp_path / "zip", ["linux-x64"], wheel_set="all")
    t_build = time.perf_counter() - t0
    python = bpy_only_python()
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(python), str(script), str(zp), str(recording_path()), str(checkpoint), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    t_run = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    res = json.loads(line[len("RESULT ") :])
    assert res["before"] == {"torch": False, "scipy": False, "kinest_core": False}
    assert res["torch"].startswith(res["user"]) and res["kinest_core"].startswith(res["user"])
    assert not res["kinest_core"].startswith(str(REPO))
    assert res["bones"] == 22 and res["frames"] > 0
    assert (tmp_path / "take.fbx").stat().st_size > 0 and (tmp_path / "take.bvh").stat().st_size > 0
    print(
        f"\nfull zip {zp.stat().st_size / 1e6:.0f} MB: build {t_build:.0f} s, subprocess {t_run:.0f} s "
        f"(install {res['install_s']:.0f} s, reconstruct {res['reconstruct_s']:.1f} s)"
    )
