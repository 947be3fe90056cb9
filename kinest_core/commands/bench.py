# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest bench [--json]``: inference throughput and scan speed-ups measured on this machine."""

from __future__ import annotations

import argparse
import json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="measure inference speed and scan speed-ups on this machine",
        description="Time the shipped model (or --checkpoint's architecture) on this machine's CPU: offline and "
        "online frames per second, one window's latency, and the SSD scan speed-ups against plain reference "
        "scans, all measured in the same process.",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--quick", action="store_true", help="shorter runs (less precise)")
    p.add_argument("--checkpoint", help="time this checkpoint's architecture (default: the shipped one)")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from kinest_core.bench import run_all
    from kinest_core.inference import load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    model = None
    try:
        model, _ = load_model(args.checkpoint, device="cpu")
    except FileNotFoundError:
        if args.checkpoint:
            raise
    res = run_all(model, quick=args.quick)
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(
        f"offline ({res['offline_precision']}): {res['offline_fps']:.0f} frames/s "
        f"({res['offline_realtime']:.1f}x real time at 60 fps)"
    )
    print(
        f"offline (float32): {res['offline_float32_fps']:.0f} frames/s ({res['offline_float32_realtime']:.1f}x); "
        f"default vs float32: {res['offline_speedup_vs_float32']:.2f}x"
    )
    print(
        f"online (stride {res['online_stride']:.0f}): {res['online_fps']:.0f} frames/s ({res['online_realtime']:.1f}x real time)"
    )
    print(f"one 96-frame window, batch 1: {res['ms_per_window_batch1']:.1f} ms")
    print(f"SSD scan, fast chunked vs naive loop: {res['scan_speedup_vs_naive']:.1f}x")
    print(f"SKFM scan forward+backward, fast vs plain chunked: {res['skfm_train_scan_speedup']:.2f}x")
    return 0
