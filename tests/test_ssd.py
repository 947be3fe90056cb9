# SPDX-License-Identifier: GPL-3.0-or-later
"""The chunked SSD scans equal the step-by-step recurrence; Mamba2 matches mamba_ssm's layout."""

from __future__ import annotations

import pytest
import torch

from kinest_core.model.ssd import Mamba2, ssd_chunked, ssd_chunked_reference, ssd_recurrent


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
    for scan in ("fast", "reference", "recurrent"):
        m.scan = scan
        outs[scan] = m(u)
    assert torch.allclose(outs["fast"], outs["recurrent"], atol=1e-5, rtol=1e-4)
    assert torch.allclose(outs["reference"], outs["recurrent"], atol=1e-5, rtol=1e-4)
