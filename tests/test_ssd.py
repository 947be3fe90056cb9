# SPDX-License-Identifier: GPL-3.0-or-later
"""The chunked SSD scans equal the step-by-step recurrence; Mamba2 matches mamba_ssm's layout."""

from __future__ import annotations

import pytest
import torch

from kinest_core.model.mamba2 import Mamba2
from kinest_core.model.ops import ssd_chunked, ssd_chunked_autograd, ssd_chunked_reference, ssd_recurrent
from kinest_core.model.ops import ssd_cpu as ssd_mod
from kinest_core.model.ops.ssd_cpu import FACTORISED_MAX_RANGE, _factorised_applies


def _inputs(b: int = 2, length: int = 77, h: int = 4, p: int = 8, n: int = 16, g: int = 1, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, h, p, generator=gen)
    dt = torch.rand(b, length, h, generator=gen) * 0.5 + 0.01
    A = -(torch.rand(h, generator=gen) * 4 + 0.1)
    B = torch.randn(b, length, g, n, generator=gen)
    C = torch.randn(b, length, g, n, generator=gen)
    D = torch.randn(h, generator=gen)
    return x, dt, A, B, C, D


@pytest.mark.parametrize("chunk", [8, 16, 32, 64])
@pytest.mark.parametrize("reverse", [False, True])
def test_chunked_scans_equal_recurrence(chunk: int, reverse: bool) -> None:
    x, dt, A, B, C, D = (t.double() for t in _inputs())
    if reverse:  # the backward scan of a bidirectional layer runs on the flipped sequence
        x, dt, B, C = (t.flip(1) for t in (x, dt, B, C))
    ref = ssd_recurrent(x, dt, A, B, C, D)
    fast = ssd_chunked(x, dt, A, B, C, D, chunk_size=chunk)
    plain = ssd_chunked_reference(x, dt, A, B, C, D, chunk_size=chunk)
    assert (fast - ref).abs().max().item() < 1e-5
    assert (plain - ref).abs().max().item() < 1e-5


def test_grouped_heads_and_gradients_match() -> None:
    x, dt, A, B, C, D = (t.double() for t in _inputs(h=4, g=2, length=40))
    ref = ssd_recurrent(x, dt, A, B, C, D)
    assert (ssd_chunked(x, dt, A, B, C, D, chunk_size=16) - ref).abs().max().item() < 1e-5
    x, dt, A, B, C, D = (t.double().requires_grad_(True) for t in _inputs(length=45, h=2, p=4, n=8))
    grads = []
    for fn in (lambda: ssd_recurrent(x, dt, A, B, C, D), lambda: ssd_chunked(x, dt, A, B, C, D, chunk_size=16)):
        for t in (x, dt, A, B, C, D):
            t.grad = None
        fn().pow(2).sum().backward()
        grads.append([t.grad.clone() for t in (x, dt, A, B, C, D)])
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-8)


def test_long_sequence_stays_finite_with_strong_decay() -> None:
    x, dt, A, B, C, D = _inputs(length=2112, h=8, p=16)
    dt = dt * 20  # decays of exp(-40) per step: nothing may overflow
    y = ssd_chunked(x, dt, A, B, C, D, chunk_size=16)
    assert torch.isfinite(y).all()


def test_mamba2_is_causal_and_has_mamba_ssm_parameter_layout() -> None:
    torch.manual_seed(0)
    m = Mamba2(64, d_state=16, headdim=16, expand=2)
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    d_inner, nheads = 128, 8
    assert shapes == {
        "in_proj.weight": (2 * d_inner + 2 * 16 + nheads, 64),
        "conv1d.weight": (d_inner + 32, 1, 4),
        "conv1d.bias": (d_inner + 32,),
        "dt_bias": (nheads,),
        "A_log": (nheads,),
        "D": (nheads,),
        "norm.weight": (d_inner,),
        "out_proj.weight": (64, d_inner),
    }
    u = torch.randn(2, 50, 64)
    y = m(u)
    u2 = u.clone()
    u2[:, 30:] += 1.0
    y2 = m(u2)
    assert torch.allclose(y[:, :30], y2[:, :30], atol=1e-6)  # the future does not leak back
    assert not torch.allclose(y[:, 30:], y2[:, 30:])
    outs = {}
    for name, scan in (("fast", ssd_chunked), ("reference", ssd_chunked_reference), ("recurrent", ssd_recurrent)):
        m.scan = scan
        outs[name] = m(u)
    assert torch.allclose(outs["fast"], outs["recurrent"], atol=1e-5, rtol=1e-4)
    assert torch.allclose(outs["reference"], outs["recurrent"], atol=1e-5, rtol=1e-4)


def _value_and_grads(fn, inputs, gy_seed: int = 1):
    """fn's output and the gradients wrt every input of sum(y * g) for a fixed random g."""
    for t in inputs:
        t.grad = None
    y = fn()
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(gy_seed), dtype=torch.float64)
    (y * g.to(y.dtype)).sum().backward()
    return [y.detach()] + [t.grad.clone() for t in inputs]


@pytest.mark.parametrize("chunk", [8, 16, 32, 64])
@pytest.mark.parametrize("length", [77, 64, 5])
@pytest.mark.parametrize("with_d", [True, False])
def test_fused_scan_outputs_and_gradients_equal_recurrence_float64(chunk: int, length: int, with_d: bool) -> None:
    x, dt, A, B, C, D = (t.double().requires_grad_(True) for t in _inputs(length=length, h=3, p=4, n=8))
    inputs = [x, dt, A, B, C, D] if with_d else [x, dt, A, B, C]
    d_arg = D if with_d else None
    assert _factorised_applies(dt, A, B, chunk)  # the hand-written backward, not the fallback
    ref = _value_and_grads(lambda: ssd_recurrent(x, dt, A, B, C, d_arg), inputs)
    fast = _value_and_grads(lambda: ssd_chunked(x, dt, A, B, C, d_arg, chunk_size=chunk), inputs)
    plain = _value_and_grads(lambda: ssd_chunked_reference(x, dt, A, B, C, d_arg, chunk_size=chunk), inputs)
    for name, a, r, pl in zip(["y", "x", "dt", "A", "B", "C", "D"], fast, ref, plain, strict=False):
        scale = max(1.0, r.abs().max().item())
        assert (a - r).abs().max().item() < 1e-10 * scale, name
        assert (a - pl).abs().max().item() < 1e-10 * scale, name


def test_fused_scan_gradcheck() -> None:
    x, dt, A, B, C, D = (t.double().requires_grad_(True) for t in _inputs(b=2, length=13, h=2, p=3, n=4))
    for chunk in (4, 8):
        assert torch.autograd.gradcheck(
            lambda *a: ssd_chunked(*a, chunk_size=chunk),  # noqa: B023
            (x, dt, A, B, C, D),
            eps=1e-6,
            atol=1e-7,
        )


def test_fused_scan_float32_matches_reference_and_autograd_form() -> None:
    x, dt, A, B, C, D = (t.requires_grad_(True) for t in _inputs(b=2, length=300, h=8, p=16, n=16))
    inputs = [x, dt, A, B, C, D]
    xd = [t.detach().double().requires_grad_(True) for t in inputs]
    exact = _value_and_grads(lambda: ssd_chunked_reference(*xd, chunk_size=32), xd)
    fast = _value_and_grads(lambda: ssd_chunked(x, dt, A, B, C, D, chunk_size=32), inputs)
    old = _value_and_grads(lambda: ssd_chunked_autograd(x, dt, A, B, C, D, chunk_size=32), inputs)
    for name, a, o, r in zip(["y", "x", "dt", "A", "B", "C", "D"], fast, old, exact, strict=True):
        r = r.float()
        assert torch.allclose(a, r, atol=1e-5 * r.abs().max().item(), rtol=1e-4), name
        err_new = (a - r).norm() / r.norm()
        err_old = (o - r).norm() / r.norm()
        assert err_new < 1e-5 and err_new < 4 * err_old + 1e-7, (name, err_new.item(), err_old.item())


def test_large_decay_range_falls_back_with_equal_gradients() -> None:
    x, dt, A, B, C, D = (t.double() for t in _inputs(length=50, h=2, p=4, n=8))
    dt = dt * 20  # a chunk of 16 then spans more than FACTORISED_MAX_RANGE
    assert not _factorised_applies(dt, A, B, 16)
    assert float((dt * A).sum(1).neg().max()) > FACTORISED_MAX_RANGE
    inputs = [t.requires_grad_(True) for t in (x, dt, A, B, C, D)]
    ref = _value_and_grads(lambda: ssd_recurrent(*inputs), inputs)
    fast = _value_and_grads(lambda: ssd_chunked(*inputs, chunk_size=16), inputs)
    for a, r in zip(fast, ref, strict=True):
        assert (a - r).abs().max().item() < 1e-8 * max(1.0, r.abs().max().item())


def test_fused_scan_under_bf16_autocast_takes_bf16_inputs_and_returns_float32() -> None:
    x, dt, A, B, C, D = (t.requires_grad_(True) for t in _inputs(length=70, h=4, p=8, n=16))
    inputs = [x, dt, A, B, C, D]
    ref = _value_and_grads(lambda: ssd_chunked_reference(x, dt, A, B, C, D, chunk_size=16), inputs)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        xb, dtb, Bb, Cb = (t.to(torch.bfloat16) for t in (x, dt, B, C))  # as a bf16 autocast layer hands them over
        y = ssd_chunked(xb, dtb, A, Bb, Cb, D, chunk_size=16)
    assert y.dtype == torch.float32
    for t in inputs:
        t.grad = None
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (y * g.float()).sum().backward()
    got = [y.detach()] + [t.grad for t in inputs]
    for name, a, r in zip(["y", "x", "dt", "A", "B", "C", "D"], got, ref, strict=True):
        assert torch.isfinite(a).all(), name
        assert ((a - r).norm() / r.norm()).item() < 0.05, name  # inputs rounded to bf16: loose


@pytest.mark.parametrize("with_d", [True, False])
def test_fused_scan_bf16_matmuls_are_within_bf16_rounding_of_float64(with_d: bool) -> None:
    """The bf16-matmul form (autocast's default) keeps every output and gradient within bf16 rounding
    (2^-8 = 0.4 % per operand) of the exact scan, and really is the bf16 form (its error is not float32's)."""
    x, dt, A, B, C, D = (t.requires_grad_(True) for t in _inputs(b=2, length=300, h=8, p=16, n=16))
    inputs = [x, dt, A, B, C, D] if with_d else [x, dt, A, B, C]
    d_arg = D if with_d else None
    assert _factorised_applies(dt, A, B, 32)
    xd = [t.detach().double().requires_grad_(True) for t in inputs]
    exact = _value_and_grads(lambda: ssd_recurrent(*xd) if with_d else ssd_recurrent(*xd, None), xd)
    bf16 = _value_and_grads(lambda: ssd_chunked(x, dt, A, B, C, d_arg, 32, torch.bfloat16), inputs)
    f32 = _value_and_grads(lambda: ssd_chunked(x, dt, A, B, C, d_arg, 32, torch.float32), inputs)
    for name, a, f, r in zip(["y", "x", "dt", "A", "B", "C", "D"], bf16, f32, exact, strict=False):
        assert a.dtype == torch.float32, name
        r = r.float()
        err = ((a - r).norm() / r.norm()).item()
        # dA sums differences of per-token terms over every token: its relative error is larger
        # (3.6 % here, as for the autograd form under autocast); Adam rescales it anyway.
        assert err < (0.05 if name == "A" else 0.01), (name, err)
        assert ((f - r).norm() / r.norm()).item() < 1e-5, name
        if name != "D":  # D's gradient is sum(dy * x): no matmul in it
            assert err > 1e-4, (name, err)


def test_fused_scan_under_autocast_uses_bf16_matmuls_unless_told_otherwise() -> None:
    x, dt, A, B, C, D = _inputs(length=200, h=8, p=16, n=16)
    exact = ssd_recurrent(*(t.double() for t in (x, dt, A, B, C, D))).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        default = ssd_chunked(x, dt, A, B, C, D, chunk_size=32)
        exact32 = ssd_chunked(x, dt, A, B, C, D, chunk_size=32, matmul_dtype=torch.float32)
    assert default.dtype == exact32.dtype == torch.float32
    assert 1e-4 < ((default - exact).norm() / exact.norm()).item() < 0.01
    assert ((exact32 - exact).norm() / exact.norm()).item() < 1e-5


def test_fused_scan_scratch_buffers_do_not_leak_between_calls() -> None:
    """Two scans before either backward (as in a model) and repeated calls give the same gradients."""
    ssd_mod.clear_ssd_scratch()
    a_in = [t.double().requires_grad_(True) for t in _inputs(length=40, h=2, p=4, n=8, seed=1)]
    b_in = [t.double().requires_grad_(True) for t in _inputs(length=40, h=2, p=4, n=8, seed=2)]
    solo = [_value_and_grads(lambda inp=inp: ssd_chunked(*inp, chunk_size=8), inp) for inp in (a_in, b_in)]
    for t in a_in + b_in:
        t.grad = None
    ya = ssd_chunked(*a_in, chunk_size=8)
    yb = ssd_chunked(*b_in, chunk_size=8)
    ga = torch.randn(ya.shape, generator=torch.Generator().manual_seed(1), dtype=ya.dtype)
    gb = torch.randn(yb.shape, generator=torch.Generator().manual_seed(1), dtype=yb.dtype)
    ((ya * ga).sum() + (yb * gb).sum()).backward()
    for inp, ref in zip((a_in, b_in), solo, strict=True):
        for t, r in zip(inp, ref[1:], strict=True):
            assert torch.equal(t.grad, r)


def test_fused_scan_works_after_and_inside_inference_mode() -> None:
    ssd_mod.clear_ssd_scratch()
    x, dt, A, B, C, D = (t.double() for t in _inputs(length=40, h=2, p=4, n=8))
    ref = ssd_recurrent(x, dt, A, B, C, D)
    with torch.inference_mode():  # the first call makes the scratch buffers
        assert torch.allclose(ssd_chunked(x, dt, A, B, C, D, chunk_size=8), ref, atol=1e-10)
    inputs = [t.requires_grad_(True) for t in (x, dt, A, B, C, D)]
    want = _value_and_grads(lambda: ssd_recurrent(*inputs), inputs)
    got = _value_and_grads(lambda: ssd_chunked(*inputs, chunk_size=8), inputs)
    for a, r in zip(got, want, strict=True):
        assert (a - r).abs().max().item() < 1e-10 * max(1.0, r.abs().max().item())
    with torch.inference_mode():
        assert torch.allclose(ssd_chunked(x, dt, A, B, C, D, chunk_size=8), ref, atol=1e-10)


def test_mamba2_fast_scan_gradients_match_reference_scan() -> None:
    torch.manual_seed(0)
    m = Mamba2(32, d_state=16, headdim=16, chunk_size=16).double()
    u = torch.randn(2, 45, 32, dtype=torch.float64)
    grads = {}
    for name, scan in (
        ("fast", ssd_chunked),
        ("fast_autograd", ssd_chunked_autograd),
        ("reference", ssd_chunked_reference),
    ):
        m.scan = scan
        m.zero_grad(set_to_none=True)
        m(u).square().mean().backward()
        grads[name] = {k: v.grad.clone() for k, v in m.named_parameters()}
    for k, ref in grads["reference"].items():
        assert torch.allclose(grads["fast"][k], ref, atol=1e-10), k
        assert torch.allclose(grads["fast_autograd"][k], ref, atol=1e-10), k


def test_scan_scratch_buffers_belong_to_their_thread() -> None:
    """A worker thread's scratch buffers are its own and are freed when it ends (no growth per job)."""
    import gc
    import threading
    import weakref

    from kinest_core.model.ops import ssd_cpu as ssd

    x = torch.randn(1, 40, 2, 4, requires_grad=True)
    dt = torch.rand(1, 40, 2) * 0.1
    A = -torch.rand(2)
    B, C = torch.randn(1, 40, 1, 8), torch.randn(1, 40, 1, 8)
    grads: list[torch.Tensor] = []
    refs: list[weakref.ref] = []

    def run() -> None:
        y = ssd.ssd_chunked(x, dt, A, B, C, chunk_size=8)
        grads.append(torch.autograd.grad(y.sum(), x)[0])
        buffers = ssd._SCRATCH.__dict__.get("buffers", {})
        assert buffers, "the fast backward used no scratch buffer"
        refs.extend(weakref.ref(t) for t in buffers.values())

    ssd.clear_ssd_scratch()
    t = threading.Thread(target=run)
    t.start()
    t.join()
    del t
    gc.collect()
    assert refs and all(r() is None for r in refs)
    assert not ssd._SCRATCH.__dict__.get("buffers")  # the main thread never saw them
    ref = torch.autograd.grad(ssd_chunked_reference(x, dt, A, B, C, chunk_size=8).sum(), x)[0]
    assert torch.allclose(grads[0], ref, atol=1e-5)


def test_mamba2_under_bf16_autocast_tracks_float32_with_its_conv_in_float32(monkeypatch: pytest.MonkeyPatch) -> None:
    """Autocast is how CPU training runs by default: the layer stays close to float32, and its depthwise
    conv (1.4x slower in bf16 on CPU) gets float32 inputs."""
    torch.manual_seed(0)
    m = Mamba2(32, d_state=16, headdim=16, chunk_size=16)
    u = torch.randn(2, 45, 32)
    ref = m(u)
    seen: list[torch.dtype] = []
    conv1d = torch.nn.functional.conv1d

    def spy(x: torch.Tensor, *args: object, **kw: object) -> torch.Tensor:
        seen.append(x.dtype)
        return conv1d(x, *args, **kw)

    monkeypatch.setattr(torch.nn.functional, "conv1d", spy)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m(u)
    assert seen == [torch.float32]
    assert ((out.float() - ref).norm() / ref.norm()).item() < 0.03
    out.float().square().mean().backward()
    assert m.conv1d.weight.grad is not None and m.conv1d.weight.grad.dtype == torch.float32
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_fused_scan_keeps_its_stacked_operand_only_when_a_backward_can_follow() -> None:
    """Training saves the stacked operand for the backward; inference (no_grad, inference_mode) reuses the
    thread's scratch buffer instead of mapping a fresh one per call, even with parameters that require grad."""
    x, dt, A, B, C, D = _inputs(length=40, h=2, p=4, n=8)
    A.requires_grad_(True)
    for ctx in (torch.no_grad, torch.inference_mode):
        ssd_mod.clear_ssd_scratch()
        with ctx():
            ssd_chunked(x, dt, A, B, C, D, chunk_size=8)
        assert ("xs", torch.float32) in ssd_mod._SCRATCH.__dict__.get("buffers", {}), ctx
    ssd_mod.clear_ssd_scratch()
    y = ssd_chunked(x, dt, A, B, C, D, chunk_size=8)
    assert ("xs", torch.float32) not in ssd_mod._SCRATCH.__dict__.get("buffers", {})
    y.sum().backward()
    assert A.grad is not None and torch.isfinite(A.grad).all()


def test_fused_scan_never_takes_float16_matmuls() -> None:
    """The factorised scalings reach e^40: float16 (max 65,504) would overflow, so a float16 autocast
    gets float32 matmuls and an explicit float16 is refused."""
    x, dt, A, B, C, D = _inputs(length=200, h=4, p=8, n=16)
    dt = dt * 3  # chunk decay ranges near 60: scalings near e^30
    assert _factorised_applies(dt, A, B, 32)
    exact = ssd_recurrent(*(t.double() for t in (x, dt, A, B, C, D))).float()
    with torch.autocast("cpu", dtype=torch.float16):
        y = ssd_chunked(x, dt, A, B, C, D, chunk_size=32)
    assert torch.isfinite(y).all()
    assert ((y.float() - exact).norm() / exact.norm()).item() < 1e-4
    with pytest.raises(ValueError, match="float16"):
        ssd_chunked(x, dt, A, B, C, D, chunk_size=32, matmul_dtype=torch.float16)
