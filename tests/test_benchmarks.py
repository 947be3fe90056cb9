# SPDX-License-Identifier: GPL-3.0-or-later
"""``benchmarks/run.py --quick --json`` runs and prints every key others rely on (no timing asserts)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
REQUIRED = (
    "inference_offline_x_realtime",
    "inference_online_x_realtime",
    "inference_online_stride",
    "inference_online_latency_ms",
    "bake_vs_bvh_importer_x",
    "bake_vs_keyframe_insert_x",
    "keyframe_insert_frames",
    "hour_file_to_bake_s",
    "hour_peak_mem_mb",
    "hour_fbx_export_s",
    "hour_motion_s",
    "hour_bake_keyframes_mb",
    "hour_main_thread_max_block_ms",
)


@pytest.mark.slow
def test_quick_benchmarks_print_every_key() -> None:
    pytest.importorskip("bpy")
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "run.py"), "--quick", "--json"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(proc.stdout)
    missing = [k for k in REQUIRED if k not in res]
    assert not missing, missing
    assert res["quick"] is True and res["hour_motion_s"] < 3600  # quick "hour" figures say what they measured
    for k in REQUIRED:
        assert isinstance(res[k], int | float) and res[k] > 0, (k, res[k])
    for seconds in (10, 30):  # per-stage times of every length, so growth with length is visible
        for stage in ("import_s", "reconstruct_s", "bake_s", "fbx_export_s", "file_to_bake_s", "peak_mem_mb"):
            assert res[f"e2e_{seconds}s_{stage}"] > 0, (seconds, stage)
