# SPDX-License-Identifier: GPL-3.0-or-later
"""Speed measurements shared by ``kinest bench`` and ``benchmarks/run.py``.

Machines here are noisy, so every figure that matters is a ratio against a baseline
measured in the same process, and every timing is the best of a few repeats.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from kinest_core.hardware import cpu_bf16_support, retain_freed_memory
from kinest_core.inference import InferenceStats, reconstruct
from kinest_core.model import KineST, KineSTConfig
from kinest_core.model.mamba2 import Mamba2
from kinest_core.model.ops import (
    ScanFn,
    ssd_chunked,
    ssd_chunked_autograd,
    ssd_chunked_reference,
    ssd_fused_cpu,
    ssd_recurrent,
)
from kinest_core.skeleton import Skeleton, forward_kinematics
from kinest_core.types import TrackingSequence


def best_time(fn: Callable[[], Any], repeats: int = 3, clock: Callable[[], float] = time.perf_counter) -> float:
    """Best time of ``repeats`` calls after one warm-up (seconds): wall time by default, or
    ``clock=time.process_time`` for CPU time (steadier on a shared machine)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = clock()
        fn()
        best = min(best, clock() - t)
    return best


def interleaved_times(
    fns: dict[str, Callable[[], Any]], rounds: int = 5, clock: Callable[[], float] = time.process_time
) -> dict[str, list[float]]:
    """Seconds of one call of each function per round, the functions taking turns round by round
    (after one warm-up call each), so a slow spell of a shared machine falls on all of them."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, fn in fns.items():
            t = clock()
            fn()
            times[k].append(clock() - t)
    return times


def median_ratio(num: list[float], den: list[float]) -> float:
    """Median over rounds of num/den, each round's pair measured back to back."""
    return float(statistics.median(a / b for a, b in zip(num, den, strict=True)))


def synthetic_tracking(frames: int, seed: int = 0, noise: float = 0.002) -> TrackingSequence:
    """A plausible moving performer (swaying head, waving hands) for timing only."""
    rng = np.random.default_rng(seed)
    sk = Skeleton.neutral(1.75)
    local = np.tile(np.eye(3), (frames, 22, 1, 1))
    glob, pos = forward_kinematics(local, sk.rest_offsets)
    t = np.arange(frames) / 60.0
    mats = []
    for j, phase in ((15, 0.0), (20, 1.0), (21, 2.0)):
        m = np.tile(np.eye(4), (frames, 1, 1))
        m[:, :3, :3] = glob[:, j]
        sway = np.stack([0.2 * np.sin(t + phase), 0.1 * np.cos(0.7 * t + phase), 0.05 * np.sin(2 * t)], axis=-1)
        m[:, :3, 3] = pos[:, j] + sway + noise * rng.standard_normal((frames, 3))
        mats.append(m)
    return TrackingSequence(t, mats[0], mats[1], mats[2], np.ones((frames, 3), dtype=bool))


def bench_inference(model: KineST, frames: int = 1800, online_stride: int = 8, repeats: int = 2) -> dict[str, Any]:
    """Offline and online throughput on a synthetic take as users run it (default precision, hand
    pinning and foot planting on), offline also in float32, and ms per window at batch 1.

    ``offline_realtime`` is the default (:mod:`kinest_core.precision`: bf16 where the CPU has it);
    ``offline_realtime_float32`` the same call with ``precision="float32"``, the two taking turns
    round by round (wall time, median over rounds); ``offline_speedup_vs_float32`` is the median of
    the per-round ratios, the figure to trust on a busy machine.
    """
    tracking = synthetic_tracking(frames)
    out: dict[str, Any] = {}
    stats = InferenceStats()
    offline: dict[str, Callable[[], Any]] = {
        prec: partial(reconstruct, tracking, model=model, mode="offline", device="cpu", stats=stats, precision=prec)
        for prec in ("auto", "float32")
    }
    times = interleaved_times(offline, rounds=max(3, repeats + 1), clock=time.perf_counter)
    for prec, key in (("auto", "offline"), ("float32", "offline_float32")):
        sec = statistics.median(times[prec])
        out[f"{key}_fps"] = frames / sec
        out[f"{key}_realtime"] = frames / sec / 60.0
    out["offline_speedup_vs_float32"] = median_ratio(times["float32"], times["auto"])
    out["offline_precision"] = reconstruct(tracking, model=model, device="cpu").info["precision"]
    sec = best_time(
        lambda: reconstruct(tracking, model=model, mode="online", device="cpu", stride=online_stride), repeats
    )
    out["online_fps"] = frames / sec
    out["online_realtime"] = frames / sec / 60.0
    out["online_stride"] = float(online_stride)
    x = torch.randn(1, model.config.window, model.config.input_dim)
    with torch.inference_mode():
        out["ms_per_window_batch1"] = 1000 * best_time(lambda: model(x), repeats + 1)
    return out


def bench_scan(length: int = 960, batch: int = 4, repeats: int = 2) -> dict[str, float]:
    """The fast chunked SSD against the naive step loop (forward, SKFM-sized heads)."""
    g = torch.Generator().manual_seed(0)
    h, p, n = 8, 16, 16
    x = torch.randn(batch, length, h, p, generator=g)
    dt = torch.rand(batch, length, h, generator=g) * 0.1
    A = -torch.rand(h, generator=g) * 4
    B = torch.randn(batch, length, 1, n, generator=g)
    C = torch.randn(batch, length, 1, n, generator=g)
    with torch.inference_mode():
        naive = best_time(lambda: ssd_recurrent(x, dt, A, B, C), 1)
        fast = best_time(lambda: ssd_chunked(x, dt, A, B, C, chunk_size=16), repeats)
    return {"scan_naive_ms": naive * 1000, "scan_fast_ms": fast * 1000, "scan_speedup_vs_naive": naive / fast}


def bench_skfm_training_scan(batch: int = 8, repeats: int = 2) -> dict[str, float | str | None]:
    """Forward + backward of one SKFM Mamba-2 (width 64, 96 frames x 22 joints): plain vs fast scan.

    CPU time at one thread (steadier than wall time on a shared machine); the variants take
    turns round by round (``repeats`` + 1 rounds, at least 3) and every figure is the median over
    rounds (ratios: the median of the per-round ratios). The plain chunked scan is timed at
    chunk 64 and at its best chunk (16); the fast scan at the model's chunk (32), and, as
    ``*_autograd_*``, the same factorised arithmetic differentiated by autograd
    (:func:`ssd_chunked_autograd`). ``fast`` has :mod:`ssd_fused_cpu`'s loops on where they
    build (``skfm_ssd_op_fused_loops`` says), as in ``kinest train``; ``fast_torch`` is the same op
    with them off (its PyTorch twin). The SSD op alone gets a fixed output gradient
    (``y.backward(dy)``), so only the op is timed. Op and layer are also timed under bf16 autocast
    (as ``kinest train`` runs by default there) where the CPU has native bf16
    (:func:`cpu_bf16_support`), else the ``*_bf16*`` keys are None and ``skfm_ssd_op_bf16_note``
    says why: the fast scan then runs its large matmuls in bf16 and the rest in float32; the
    plain scan under the same autocast (``*_vs_plain_bf16``) is the like-for-like baseline.
    """
    retain_freed_memory()  # as kinest train does: time the steps training runs
    fused_status = ssd_fused_cpu.try_enable()  # as kinest train does
    torch.manual_seed(0)
    layer = Mamba2(64, d_state=16, headdim=16, chunk_size=32)
    u = torch.randn(batch, 96 * 22, 64)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rounds = max(3, repeats + 1)

    def step(scan: ScanFn, chunk: int, bf16: bool = False) -> None:
        layer.scan, layer.chunk_size = scan, chunk
        layer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = layer(u)
        out.float().square().mean().backward()

    # The SSD op alone, at the layer's shapes (8 heads of 16, state 16, one group).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 96 * 22, 8, 16, generator=g).requires_grad_()
    dt = (torch.rand(batch, 96 * 22, 8, generator=g) * 0.1).requires_grad_()
    a = (-torch.rand(8, generator=g) * 4).requires_grad_()
    b_in = torch.randn(batch, 96 * 22, 1, 16, generator=g).requires_grad_()
    c_out = torch.randn(batch, 96 * 22, 1, 16, generator=g).requires_grad_()
    dy = torch.randn(batch, 96 * 22, 8, 16, generator=g)

    def op(fn: Callable[..., torch.Tensor], chunk: int, bf16: bool = False) -> None:
        for t in (x, dt, a, b_in, c_out):
            t.grad = None
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y = fn(x, dt, a, b_in, c_out, chunk_size=chunk)
        y.backward(dy.to(y.dtype))

    bf16_ok, bf16_why = cpu_bf16_support()
    ops: dict[str, Callable[[], Any]] = {
        "ref64": lambda: op(ssd_chunked_reference, 64),
        "ref16": lambda: op(ssd_chunked_reference, 16),
        "fast": lambda: op(ssd_chunked, 32),
        "fast_torch": lambda: op(partial(ssd_chunked, fused=False), 32),
        "autograd": lambda: op(ssd_chunked_autograd, 32),
    }
    layers: dict[str, Callable[[], Any]] = {
        "ref64": lambda: step(ssd_chunked_reference, 64),
        "ref16": lambda: step(ssd_chunked_reference, 16),
        "fast": lambda: step(ssd_chunked, 32),
        "autograd": lambda: step(ssd_chunked_autograd, 32),
    }
    if bf16_ok:
        ops["fast_bf16"] = lambda: op(ssd_chunked, 32, bf16=True)
        ops["fast_torch_bf16"] = lambda: op(partial(ssd_chunked, fused=False), 32, bf16=True)
        ops["autograd_bf16"] = lambda: op(ssd_chunked_autograd, 32, bf16=True)
        ops["ref64_bf16"] = lambda: op(ssd_chunked_reference, 64, bf16=True)
        layers["fast_bf16"] = lambda: step(ssd_chunked, 32, bf16=True)
        layers["ref64_bf16"] = lambda: step(ssd_chunked_reference, 64, bf16=True)
    try:
        top = interleaved_times(ops, rounds)
        tl = interleaved_times(layers, rounds)
    finally:
        torch.set_num_threads(threads)
    med = {k: statistics.median(v) for k, v in top.items()}
    lmed = {k: statistics.median(v) for k, v in tl.items()}
    res: dict[str, float | str | None] = {
        "skfm_ssd_op_fwd_bwd_speedup": median_ratio(top["ref64"], top["fast"]),
        "skfm_ssd_op_fwd_bwd_speedup_vs_best_plain": median_ratio(top["ref16"], top["fast"]),
        "skfm_ssd_op_fwd_bwd_speedup_vs_autograd": median_ratio(top["autograd"], top["fast"]),
        "skfm_ssd_op_fwd_bwd_speedup_autograd": median_ratio(top["ref64"], top["autograd"]),
        "skfm_ssd_op_reference_ms": med["ref64"] * 1000,
        "skfm_ssd_op_fast_ms": med["fast"] * 1000,
        "skfm_ssd_op_autograd_ms": med["autograd"] * 1000,
        "skfm_ssd_op_fast_torch_ms": med["fast_torch"] * 1000,
        "skfm_ssd_op_fused_loops": fused_status,
        "skfm_ssd_op_speedup_fused_vs_torch": median_ratio(top["fast_torch"], top["fast"]),
        "skfm_ssd_op_fast_torch_bf16_ms": None,
        "skfm_ssd_op_speedup_fused_vs_torch_bf16": None,
        "skfm_ssd_op_fast_bf16_ms": None,
        "skfm_ssd_op_reference_bf16_ms": None,
        "skfm_ssd_op_fwd_bwd_speedup_fast_bf16": None,
        "skfm_ssd_op_fwd_bwd_speedup_fast_bf16_vs_plain_bf16": None,
        "skfm_ssd_op_fwd_bwd_speedup_autograd_bf16": None,
        "skfm_train_scan_fast_bf16_ms": None,
        "skfm_train_scan_reference_bf16_ms": None,
        "skfm_train_scan_speedup_fast_bf16": None,
        "skfm_train_scan_speedup_fast_bf16_vs_plain_bf16": None,
        "skfm_ssd_op_bf16_note": bf16_why,
        "skfm_train_scan_reference_ms": lmed["ref64"] * 1000,
        "skfm_train_scan_reference_chunk16_ms": lmed["ref16"] * 1000,
        "skfm_train_scan_fast_ms": lmed["fast"] * 1000,
        "skfm_train_scan_autograd_ms": lmed["autograd"] * 1000,
        "skfm_train_scan_speedup": median_ratio(tl["ref64"], tl["fast"]),
        "skfm_train_scan_speedup_vs_best_plain": median_ratio(tl["ref16"], tl["fast"]),
        "skfm_train_scan_speedup_autograd": median_ratio(tl["ref64"], tl["autograd"]),
        "skfm_train_batch": float(batch),
        "skfm_rounds": float(rounds),
    }
    if bf16_ok:
        res["skfm_ssd_op_fast_bf16_ms"] = med["fast_bf16"] * 1000
        res["skfm_ssd_op_fast_torch_bf16_ms"] = med["fast_torch_bf16"] * 1000
        res["skfm_ssd_op_speedup_fused_vs_torch_bf16"] = median_ratio(top["fast_torch_bf16"], top["fast_bf16"])
        res["skfm_ssd_op_reference_bf16_ms"] = med["ref64_bf16"] * 1000
        res["skfm_ssd_op_fwd_bwd_speedup_fast_bf16"] = median_ratio(top["ref64"], top["fast_bf16"])
        res["skfm_ssd_op_fwd_bwd_speedup_fast_bf16_vs_plain_bf16"] = median_ratio(top["ref64_bf16"], top["fast_bf16"])
        res["skfm_ssd_op_fwd_bwd_speedup_autograd_bf16"] = median_ratio(top["ref64"], top["autograd_bf16"])
        res["skfm_train_scan_fast_bf16_ms"] = lmed["fast_bf16"] * 1000
        res["skfm_train_scan_reference_bf16_ms"] = lmed["ref64_bf16"] * 1000
        res["skfm_train_scan_speedup_fast_bf16"] = median_ratio(tl["ref64"], tl["fast_bf16"])
        res["skfm_train_scan_speedup_fast_bf16_vs_plain_bf16"] = median_ratio(tl["ref64_bf16"], tl["fast_bf16"])
    return res


def run_all(model: KineST | None = None, quick: bool = False) -> dict[str, Any]:
    """Every benchmark, as one flat dict of numbers (the keys ``benchmarks/run.py`` reuses)."""
    if model is None:
        model = KineST(KineSTConfig()).eval()
    res: dict[str, Any] = {
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "parameters": model.num_parameters(),
    }
    res.update(bench_inference(model, frames=600 if quick else 1800, repeats=1 if quick else 2))
    res.update(bench_scan(length=480 if quick else 960))
    res.update(bench_skfm_training_scan(batch=2 if quick else 8, repeats=1 if quick else 2))
    return res
