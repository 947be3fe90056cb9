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

from kinest_core.bench import best_time, cpu_bf16_support, median_ratio, run_all
from kinest_core.hardware import retain_freed_memory
from kinest_core.inference import load_model
from kinest_core.model import KineST, KineSTConfig
from kinest_core.model.mamba2 import Mamba2
from kinest_core.model.ops import (
    ssd_chunked,
    ssd_chunked_autograd,
    ssd_chunked_reference,
    ssd_chunked_unfused,
    ssd_fused_cpu,
)

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


def training_step_ratio(batch: int = 8, repeats: int = 2, rounds: int = 2) -> dict[str, Any]:
    """CPU seconds (one thread) of one forward+backward+Adam step of KineST, per variant the best
    of ``rounds`` x ``repeats`` steps, the variants taking turns round by round (a slow spell of
    a shared machine then falls on all of them, not on one).

    Variants, in this process, each from the same initial weights: ``fast`` (the fast scan),
    ``fast_autograd`` (the same arithmetic differentiated by autograd),
    ``reference`` (the plain chunked scan at the model's chunk, 32), ``reference_chunk64`` (the
    plain scan at chunk 64: the speed baseline) and ``fast_bf16`` (the fast scan with the forward
    under bf16 autocast and the loss in float32, as ``kinest_core.training.trainer`` does with ``amp``) with
    its like-for-like baseline ``reference_chunk64_bf16`` (the plain scan under the same autocast).
    ``fast`` variants use :mod:`kinest_core.model.ssd_fused_cpu`'s loops where they build
    (``train_step_fused_loops`` says), as ``kinest train`` does; ``fast_torch_bf16`` is ``fast_bf16``
    without them.
    bf16 changes the numerics, so it has keys of its own, and is timed only where the CPU has
    native bf16 (AVX512-BF16/AMX): elsewhere it is emulated and slower, its keys are None and
    ``train_step_bf16_note`` says why. ``train_step_round_cpu_s`` holds every variant's time per
    round, and ``train_step_speedup_vs_plain_chunk64_median`` the median of the per-round ratios.
    """
    retain_freed_memory()  # as kinest train does: time the steps training runs
    fused_status = ssd_fused_cpu.try_enable()  # likewise
    bf16_ok, bf16_why = cpu_bf16_support()
    x = torch.randn(batch, 96, 54)
    variants = {  # name: (scan, chunk size of every Mamba-2 or None for the model's own, bf16 autocast)
        "fast": (ssd_chunked, None, False),
        "reference": (ssd_chunked_reference, None, False),
        "reference_chunk64": (ssd_chunked_reference, 64, False),
        "fast_bf16": (ssd_chunked, None, True),
        "reference_chunk64_bf16": (ssd_chunked_reference, 64, True),
        "fast_autograd": (ssd_chunked_autograd, None, False),
        "fast_torch_bf16": (ssd_chunked_unfused, None, True),
    }
    res: dict[str, Any] = {f"train_step_{name}_cpu_s": None for name in variants}
    steps: dict[str, Any] = {}
    for name, (scan, chunk, bf16) in variants.items():
        if bf16 and not bf16_ok:
            continue
        torch.manual_seed(0)
        model = KineST(KineSTConfig())
        model.set_scan(scan)
        if chunk is not None:
            for m in model.modules():
                if isinstance(m, Mamba2):
                    m.chunk_size = chunk
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def step(model: KineST = model, opt: torch.optim.Optimizer = opt, bf16: bool = bf16) -> None:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                pred = model(x)
            pred.float().square().mean().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        steps[name] = step
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    per_round: dict[str, list[float]] = {name: [] for name in steps}
    try:
        for _ in range(rounds):
            for name, step in steps.items():
                t = best_time(step, repeats, time.process_time)
                per_round[name].append(t)
                key = f"train_step_{name}_cpu_s"
                res[key] = t if res[key] is None else min(res[key], t)
    finally:
        torch.set_num_threads(threads)
    res["train_step_round_cpu_s"] = per_round
    res["train_step_speedup_vs_plain_chunk64_median"] = median_ratio(per_round["reference_chunk64"], per_round["fast"])
    res["train_step_speedup_fast_vs_autograd"] = res["train_step_fast_autograd_cpu_s"] / res["train_step_fast_cpu_s"]
    fast, plain64, fast_bf16 = (res[f"train_step_{k}_cpu_s"] for k in ("fast", "reference_chunk64", "fast_bf16"))
    res["train_step_speedup"] = res["train_step_reference_cpu_s"] / fast
    res["train_step_speedup_vs_plain_chunk64"] = plain64 / fast
    res["train_step_speedup_fast_bf16_vs_plain"] = None if fast_bf16 is None else plain64 / fast_bf16
    res["train_step_speedup_fast_bf16_vs_fast"] = None if fast_bf16 is None else fast / fast_bf16
    plain64_bf16 = res["train_step_reference_chunk64_bf16_cpu_s"]
    res["train_step_speedup_fast_bf16_vs_plain_bf16"] = None if fast_bf16 is None else plain64_bf16 / fast_bf16
    res["train_step_speedup_fast_bf16_vs_plain_median"] = (
        None if fast_bf16 is None else median_ratio(per_round["reference_chunk64"], per_round["fast_bf16"])
    )
    res["train_step_bf16_note"] = bf16_why
    res["train_step_fused_loops"] = fused_status
    fast_torch_bf16 = res["train_step_fast_torch_bf16_cpu_s"]
    res["train_step_speedup_fused_vs_torch_bf16"] = None if fast_bf16 is None else fast_torch_bf16 / fast_bf16
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
    only = ap.add_mutually_exclusive_group()
    only.add_argument("--no-blender", action="store_true", help="only the in-process (torch) benchmarks")
    only.add_argument("--blender-only", action="store_true", help="only the benchmarks in a headless Blender")
    args = ap.parse_args()
    t0 = time.perf_counter()
    quick = args.quick
    res: dict[str, Any] = {"quick": quick}
    if not args.blender_only:
        try:
            model, _ = load_model(None, device="cpu")
        except FileNotFoundError:
            model = KineST(KineSTConfig()).eval()
        res.update(run_all(model, quick=quick))
        res.update(inference_keys(res))
        res.update(window_costs(model, (1, 4, 16) if quick else (1, 4, 8, 16, 64), repeats=1 if quick else 3))
        res.update(training_step_ratio(batch=2 if quick else 8, repeats=1 if quick else 2, rounds=1 if quick else 2))
    if not args.no_blender:
        res.update(blender_benchmarks(quick))
    res["benchmark_wall_s"] = time.perf_counter() - t0
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        for k, v in res.items():
            print(f"{k:48s} {v:.3f}" if isinstance(v, float) else f"{k:48s} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
