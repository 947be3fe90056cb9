# SPDX-License-Identifier: GPL-3.0-or-later
"""All project benchmarks in one run: ``python benchmarks/run.py [--quick] [--json]``.

Prints one JSON object (``--json``). In this process: ``kinest bench``'s measurements
(``kinest_core.bench``: offline and online inference, scans) with the shipped model, window
cost per batch size, online latency per stride, and a whole training step with the fast scan
against the plain chunked scan. In fresh processes (headless Blender, see ``bake_bench.py`` and
``e2e.py``): the add-on's bake against Blender's BVH importer and ``keyframe_insert``, and
import -> reconstruct -> bake -> FBX export of 1 minute, 10 minutes and 1 hour of a looped real
recording, with time per stage and peak memory.

Keys others rely on: ``inference_offline_x_realtime``, ``inference_online_x_realtime`` (with
``inference_online_stride`` and ``inference_online_latency_ms``), ``bake_vs_bvh_importer_x``,
``bake_vs_keyframe_insert_x``, ``hour_file_to_bake_s``, ``hour_peak_mem_mb``,
``hour_fbx_export_s``. ``--quick`` (under a minute) measures the same on shorter motion:
``"quick": true``, and ``hour_motion_s`` says how long the take behind the ``hour_*`` keys was.
Every ratio is measured in one process, so a busy machine slows both sides alike; absolute
times are wall clock on a machine others may be using (``machine.load_avg_1min`` is recorded).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from kinest_core.bench import best_time, run_all
from kinest_core.inference import load_model
from kinest_core.model import KineST, KineSTConfig

HERE = Path(__file__).resolve().parent
#: The take lengths of the end-to-end runs (seconds of motion); the last one fills the ``hour_*`` keys.
E2E_SECONDS = (60, 600, 3600)
E2E_SECONDS_QUICK = (10, 30)
#: What the ``hour_*`` keys copy from the longest end-to-end run.
HOUR_KEYS = {
    "file_to_bake_s": "hour_file_to_bake_s",
    "peak_mem_mb": "hour_peak_mem_mb",
    "fbx_export_s": "hour_fbx_export_s",
    "import_s": "hour_import_s",
    "reconstruct_s": "hour_reconstruct_s",
    "bake_s": "hour_bake_s",
    "inference_x_realtime": "hour_inference_x_realtime",
    "bake_rss_delta_mb": "hour_bake_keyframes_mb",
    "keys_baked": "hour_keys_baked",
    "main_thread_max_block_ms": "hour_main_thread_max_block_ms",
    "depsgraph_update_s": "hour_depsgraph_update_s",
    "depsgraph_rss_delta_mb": "hour_depsgraph_copy_mb",
    "undo_push_s": "hour_undo_push_s",
    "undo_push_rss_delta_mb": "hour_undo_copy_mb",
    "peak_mem_with_blender_copies_mb": "hour_peak_mem_with_blender_copies_mb",
    "fbx_peak_mem_mb": "hour_fbx_peak_mem_mb",
    "frames": "hour_frames",
    "motion_s": "hour_motion_s",
}


def training_step_ratio(batch: int = 8, repeats: int = 2) -> dict[str, float]:
    """CPU seconds of one forward+backward+Adam step: fast scan vs the plain chunked scan."""
    x = torch.randn(batch, 96, 54)
    res: dict[str, float] = {}
    for scan in ("fast", "reference"):
        torch.manual_seed(0)
        model = KineST(KineSTConfig())
        model.set_scan(scan)
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step(model: KineST = model, opt: torch.optim.Optimizer = opt) -> None:
            model(x).square().mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        res[f"train_step_{scan}_cpu_s"] = best_time(step, repeats, time.process_time)
    res["train_step_speedup"] = res["train_step_reference_cpu_s"] / res["train_step_fast_cpu_s"]
    res["train_step_batch"] = float(batch)
    return res


def window_costs(model: KineST, batches: tuple[int, ...], repeats: int) -> dict[str, float]:
    """ms per 96-frame window at several batch sizes (the network alone)."""
    out: dict[str, float] = {}
    for b in batches:
        x = torch.randn(b, model.config.window, model.config.input_dim)
        with torch.inference_mode():
            out[f"inference_ms_per_window_batch{b}"] = 1000 * best_time(lambda: model(x), repeats) / b  # noqa: B023
    return out


def inference_keys(res: dict[str, Any]) -> dict[str, Any]:
    """The issue's names for ``kinest bench``'s inference figures, and the online latency per stride.

    Online mode runs a window ending at every ``stride``-th frame: a frame waits for up to
    ``stride - 1`` later frames, then for one window of the network (batch 1). Streaming one
    window at a time keeps up with 60 fps when ``stride`` windows' worth of frames arrive no
    faster than the network handles them.
    """
    ms1 = float(res["ms_per_window_batch1"])
    stride = int(res["online_stride"])
    out: dict[str, Any] = {
        "inference_offline_x_realtime": res["offline_realtime"],
        "inference_online_x_realtime": res["online_realtime"],
        "inference_online_stride": stride,
        "inference_online_latency_ms": (stride - 1) * 1000 / 60 + ms1,
    }
    for k in (1, 2, 4, 8):
        out[f"inference_online_stride{k}_streaming_x_realtime"] = k * (1000 / ms1) / 60
        out[f"inference_online_stride{k}_latency_ms"] = (k - 1) * 1000 / 60 + ms1
    return out


def _subprocess_json(args: list[str], timeout: float) -> dict[str, Any]:
    """Run one of the Blender benchmarks in a fresh Python and read the JSON on its last line."""
    proc = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, timeout=timeout, cwd=HERE.parent, check=False
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return dict(json.loads(lines[-1]))


def blender_benchmarks(quick: bool) -> dict[str, Any]:
    res: dict[str, Any] = {}
    frames, insert = (3600, 120) if quick else (36000, 600)
    bake = _subprocess_json(
        [str(HERE / "bake_bench.py"), "--frames", str(frames), "--insert-frames", str(insert), "--json"], 600
    )
    res["bake_machine"] = bake.pop("machine")
    res.update(bake)
    lengths = E2E_SECONDS_QUICK if quick else E2E_SECONDS
    runs = []
    for seconds in lengths:
        run = _subprocess_json([str(HERE / "e2e.py"), "--seconds", str(seconds), "--json"], 3600)
        runs.append(run)
        machine = run.pop("machine")
        res["memory_method"] = run.pop("memory_method")
        for k, v in run.items():
            res[f"e2e_{seconds}s_{k}"] = v
        res[f"e2e_{seconds}s_file_to_bake_s_per_motion_min"] = run["file_to_bake_s"] / (seconds / 60)
        res[f"e2e_{seconds}s_load_avg_1min"] = machine.get("load_avg_1min")
    longest = runs[-1]
    for k, name in HOUR_KEYS.items():
        res[name] = longest[k]
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="shorter motion and fewer repeats: under a minute")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-blender", action="store_true", help="only the in-process (torch) benchmarks")
    args = ap.parse_args()
    t0 = time.perf_counter()
    try:
        model, _ = load_model(None, device="cpu")
    except FileNotFoundError:
        model = KineST(KineSTConfig()).eval()
    res: dict[str, Any] = {"quick": args.quick}
    res.update(run_all(model, quick=args.quick))
    res.update(inference_keys(res))
    res.update(window_costs(model, (1, 4, 16) if args.quick else (1, 4, 8, 16, 64), repeats=1 if args.quick else 3))
    res.update(training_step_ratio(batch=2 if args.quick else 8, repeats=1 if args.quick else 2))
    if not args.no_blender:
        res.update(blender_benchmarks(args.quick))
    res["benchmark_wall_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:48s} {v:.3f}" if isinstance(v, float) else f"{k:48s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
