# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's headless job: install the zip, reconstruct a bundled recording, write FBX and BVH."""

from __future__ import annotations

import subprocess
import sys

from kb_helpers import REPO, recording_path


def test_headless_job_writes_fbx_and_bvh(built_zip, checkpoint, tmp_path):
    cmd = [sys.executable, "-m", "kinest_blender.headless", "--zip", str(built_zip)]
    cmd += ["--input", str(recording_path()), "--model", str(checkpoint), "--bone-names", "MIXAMO"]
    cmd += ["--fbx", str(tmp_path / "take.fbx"), "--preset", "UNREAL", "--bvh", str(tmp_path / "take.bvh")]
    cmd += ["--worker-python", sys.executable, "--smooth"]  # this Python plays the CUDA worker
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "frames in" in proc.stdout and "fps) on cpu, worker Python" in proc.stdout
    assert "% lower" in proc.stdout
    assert (tmp_path / "take.fbx").stat().st_size > 10_000
    assert (tmp_path / "take.bvh").read_text().startswith("HIERARCHY")


def test_headless_job_says_when_the_model_is_missing(built_zip, tmp_path):
    cmd = [sys.executable, "-m", "kinest_blender.headless", "--zip", str(built_zip)]
    cmd += ["--input", str(recording_path()), "--model", str(tmp_path / "nope.safetensors")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "pick a KineST .safetensors checkpoint" in proc.stderr
