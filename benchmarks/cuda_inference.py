# SPDX-License-Identifier: GPL-3.0-or-later
"""CUDA inference speed with and without ``mamba_ssm`` kernels, and CPU-vs-CUDA agreement.

    python benchmarks/cuda_inference.py [--checkpoint P] [--frames 36000] [--out FILE] [--json]

On a CUDA machine: offline and online reconstruction as multiples of real time (60 fps) and
ms per 96-frame window at several batch sizes, once with our pure-PyTorch scan and once with
``mamba_ssm``'s fused kernel where that package imports; then the largest
joint-position difference between CPU and CUDA outputs of the same model on the same windows (float32, TF32
off and on). ``--out`` is rewritten after every measurement, so a run stopped by a time limit
still leaves what it measured. Without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import torch

from kinest_core.bench import best_time, synthetic_tracking
from kinest_core.inference import load_model, reconstruct
from kinest_core.model.mamba2 import Mamba2
from kinest_core.model.ops.ssd_cuda import mamba_ssm_scan


def _cuda_time(fn: Any, repeats: int = 3) -> float:
    """Best seconds of ``repeats`` synchronised calls after one warm-up (which also runs Triton's autotune)."""

    def synced() -> None:
        fn()
        torch.cuda.synchronize()

    return best_time(synced, repeats)


def _use_kernels(model: torch.nn.Module, on: bool) -> None:
    for m in model.modules():
        if isinstance(m, Mamba2):
            m.use_kernels = on


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", help="checkpoint to time (default: the shipped one)")
    ap.add_argument("--frames", type=int, default=36_000, help="offline take length (default 10 min at 60 fps)")
    ap.add_argument("--online-frames", type=int, default=3_600)
    ap.add_argument("--batches", default="1,16,64,256", help="batch sizes for ms per window")
    ap.add_argument("--out", help="JSON file rewritten after every measurement")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU visible to this PyTorch: nothing to measure", file=sys.stderr)
        return 0
    res: dict[str, Any] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "frames": args.frames}

    def record(key: str, value: Any) -> None:
        res[key] = value
        print(f"{key}: {value}", file=sys.stderr, flush=True)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as fh:
                json.dump(res, fh, indent=2)

    model, _ = load_model(args.checkpoint, device="cuda")
    record("mamba_ssm_available", mamba_ssm_scan() is not None)
    long_take = synthetic_tracking(args.frames)
    short_take = synthetic_tracking(args.online_frames)
    paths = ["torch"] + (["mamba_ssm"] if mamba_ssm_scan() is not None else [])
    for path in paths:
        _use_kernels(model, path == "mamba_ssm")
        for mode, take, stride in (("offline", long_take, 1), ("online", short_take, 1), ("online8", short_take, 8)):
            sec = _cuda_time(
                lambda t=take, m=mode, s=stride: reconstruct(
                    t, model=model, mode=m.rstrip("8"), device="cuda", stride=s
                ),
                repeats=2,
            )
            record(f"cuda_{path}_{mode}_x_realtime", round(take.num_frames / sec / 60.0, 1))
        for b in (int(s) for s in args.batches.split(",")):
            x = torch.randn(b, model.config.window, model.config.input_dim, device="cuda")
            with torch.inference_mode():
                ms = 1000 * _cuda_time(lambda x=x: model(x))
            record(f"cuda_{path}_ms_per_window_batch{b}", round(ms / b, 4))
    _use_kernels(model, False)
    # CPU vs CUDA: same weights, same windows
    torch.manual_seed(0)
    take = synthetic_tracking(600)
    cpu_model, _ = load_model(args.checkpoint, device="cpu")
    ref = reconstruct(take, model=cpu_model, mode="offline", device="cpu").joint_positions
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        got = reconstruct(take, model=model, mode="offline", device="cuda").joint_positions
        record(f"cpu_vs_cuda_max_joint_diff_cm_tf32_{'on' if tf32 else 'off'}", float(abs(ref - got).max() * 100))
    torch.backends.cuda.matmul.allow_tf32 = False
    if args.json:
        print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
