# SPDX-License-Identifier: GPL-3.0-or-later
"""The fused C loops of the SSD op give the PyTorch twin's values, build once, and fail politely."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from kinest_core.model.ops import ssd_chunked, ssd_fused_cpu, ssd_recurrent

HAVE_CC = bool(os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang"))
needs_cc = pytest.mark.skipif(not HAVE_CC, reason="no C compiler: the fused loops cannot be built here")


@pytest.fixture
def fused() -> None:
    """The loops on (a build failure with a compiler present fails the test, it is not skipped)."""
    ssd_fused_cpu.enable()


def _inputs(b: int, length: int, h: int, p: int, n: int = 16, strided: bool = False, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    if strided:  # as in Mamba2: x is a column slice of a wider projection
        x = torch.randn(b, length, h * p + 40, generator=gen)[..., 8 : 8 + h * p].unflatten(-1, (h, p))
    else:
        x = torch.randn(b, length, h, p, generator=gen)
    dt = torch.rand(b, length, h, generator=gen) * 0.3 + 0.01
    A = -(torch.rand(h, generator=gen) * 3 + 0.1)
    B = torch.randn(b, length, 1, n, generator=gen)
    C = torch.randn(b, length, 1, n, generator=gen)
    D = torch.randn(h, generator=gen)
    return x, dt, A, B, C, D


def _run(args, fused: bool, mm: torch.dtype, with_d: bool, grad: str):
    leaves = [t.detach().clone().requires_grad_() for t in args]
    x, dt, A, B, C, D = leaves
    if args[0].stride() != leaves[0].stride():  # keep x's strided layout
        x = args[0].detach().clone()
        x = torch.empty_strided(x.shape, args[0].stride()).copy_(x).requires_grad_()
        leaves[0] = x
    y = ssd_chunked(x, dt, A, B, C, D if with_d else None, chunk_size=32, matmul_dtype=mm, fused=fused)
    if grad == "expanded":  # autograd hands a sum's gradient over as a stride-0 tensor
        y.sum().backward()
    else:
        y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(1)))
    return [y.detach()] + [t.grad for t in leaves[: 6 if with_d else 5]]


@needs_cc
@pytest.mark.parametrize("p", [16, 64, 8])  # 16: SKFM (vector path on AVX-512); 64: TFM; 8: plain loops
@pytest.mark.parametrize("mm", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize(
    ("length", "strided", "with_d", "grad"),
    [
        (160, True, True, "random"),
        (150, False, False, "expanded"),
        (20, False, True, "random"),
        (96, True, False, "random"),
    ],
)
def test_fused_loops_equal_the_pytorch_twin(
    fused: None, p: int, mm: torch.dtype, length: int, strided: bool, with_d: bool, grad: str
) -> None:
    args = _inputs(2, length, 4, p, strided=strided)
    calls: list[str] = []
    real_run = ssd_fused_cpu.run

    def spy(name: str, *a: object) -> None:
        calls.append(name)
        real_run(name, *a)

    ssd_fused_cpu.run = spy  # type: ignore[assignment]
    try:
        got = _run(args, True, mm, with_d, grad)
    finally:
        ssd_fused_cpu.run = real_run  # type: ignore[assignment]
    want = _run(args, False, mm, with_d, grad)
    assert calls == [
        "scale_rows",
        "states_forward",
        "scale_add_rows",
        "grad_in_rows",
        "states_backward",
        "scale_add_rows",
    ]
    for name, a, b in zip(("y", "dx", "ddt", "dA", "dB", "dC", "dD"), got, want, strict=False):
        scale = b.abs().max().item()
        assert (a - b).abs().max().item() <= 2e-6 * scale, name


@needs_cc
def test_fused_loops_equal_the_recurrence(fused: None) -> None:
    x, dt, A, B, C, D = _inputs(2, 100, 4, 16, strided=True)
    y = ssd_chunked(x, dt, A, B, C, D, chunk_size=32, matmul_dtype=torch.float32)
    ref = ssd_recurrent(*(t.double() for t in (x, dt, A, B, C, D)))
    assert (y.double() - ref).abs().max().item() < 2e-5 * ref.abs().max().item()


@needs_cc
def test_threads_split_the_work_without_changing_the_result(fused: None) -> None:
    args = _inputs(3, 200, 4, 16)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _run(args, True, torch.bfloat16, True, "random")
        torch.set_num_threads(3)
        three = _run(args, True, torch.bfloat16, True, "random")
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, three, strict=True):
        assert torch.allclose(a, b, rtol=1e-6, atol=1e-6)


@needs_cc
@pytest.mark.parametrize("p", [16, 8])
def test_bfloat16_stores_round_like_pytorch(fused: None, p: int) -> None:
    """Ties to even, overflow to inf, subnormals, NaN stays NaN: the C cast is PyTorch's, bit for bit."""
    N, q, h = 2, 4, 2
    gen = torch.Generator().manual_seed(3)
    src = torch.randn(N, q, h, p, generator=gen) * 10.0 ** torch.randint(-30, 30, (N, q, h, p), generator=gen)
    flat = src.view(-1)
    flat[:6] = torch.tensor([1.0 + 2.0**-8, 1.0 + 3 * 2.0**-8, float("nan"), float("inf"), -3.4e38, 1e-40])
    ones = torch.ones(N, q, h)
    dst = torch.zeros(N, q, h * p, dtype=torch.bfloat16)
    dense = torch.zeros(N, q, h * p, dtype=torch.bfloat16)
    ssd_fused_cpu.run("scale_rows", True, N, q, h, p, src, h * p, ones, dst, q * h * p, dense)
    want = src.reshape(N, q, h * p).to(torch.bfloat16)
    nan = want.isnan()
    assert nan.sum() == 1
    for got in (dst, dense):
        assert torch.equal(got.isnan(), nan)  # NaN payloads may differ (PyTorch's vector cast keeps them)
        assert torch.equal(got.view(torch.int16)[~nan], want.view(torch.int16)[~nan])


@needs_cc
def test_build_is_cached_and_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KINEST_KERNEL_CACHE", str(tmp_path))
    first = ssd_fused_cpu.build()
    stamp = first.stat().st_mtime_ns
    assert ssd_fused_cpu.build() == first and first.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left behind
    assert ssd_fused_cpu.build(force=True) == first


def test_missing_compiler_or_switch_leaves_the_pytorch_op(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssd_fused_cpu, "_LIB", None)
    monkeypatch.setenv("KINEST_KERNEL_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    with pytest.raises(ssd_fused_cpu.FusedKernelError, match="does not run"):
        ssd_fused_cpu.enable()
    status = ssd_fused_cpu.try_enable()
    assert status.startswith("PyTorch ops (fused CPU loops off: ") and not ssd_fused_cpu.active()
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\necho 'cc: error: something failed' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    with pytest.raises(ssd_fused_cpu.FusedKernelError, match="something failed"):
        ssd_fused_cpu.build()
    assert list(tmp_path.glob("*.so")) == []
    monkeypatch.setenv("KINEST_FUSED_CPU", "0")
    with pytest.raises(ssd_fused_cpu.FusedKernelError, match="KINEST_FUSED_CPU=0"):
        ssd_fused_cpu.enable()
    # the op itself still runs (its PyTorch twin)
    x, dt, A, B, C, D = _inputs(1, 40, 2, 8)
    y = ssd_chunked(x, dt, A, B, C, D, chunk_size=16)
    assert (y.double() - ssd_recurrent(*(t.double() for t in (x, dt, A, B, C, D)))).abs().max() < 1e-4
