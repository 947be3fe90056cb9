# SPDX-License-Identifier: GPL-3.0-or-later
"""Reference SSD scans: the definitions the fast scans are tested against and benchmarked by.

The recurrence, per head h with a scalar decay ``a_t = dt_t * A_h`` (A < 0):

    S_t = exp(a_t) S_{t-1} + dt_t x_t B_t^T        (state: headdim x d_state)
    y_t = S_t C_t + D_h x_t

- :func:`ssd_recurrent`: the step-by-step loop. Slow; the definition.
- :func:`ssd_chunked_reference`: the textbook chunked form (one big masked decay tensor per
  chunk pair, contracted with a multi-operand einsum): the benchmarks' "plain chunked scan".
- :func:`ssd_chunked_masked`: the chunked form with an explicit per-head masked decay matrix and
  plain batched matmuls; exact for any decay range (the fast scan falls back to it).

Every scan takes ``(x, dt, A, B, C, D, chunk_size)``: x (b,l,h,p), dt (b,l,h), A (h,),
B/C (b,l,g,n) with g dividing h, D (h,) or None; see :data:`kinest_core.model.ops.ScanFn`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def ssd_recurrent(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None, chunk_size: int | None = None
) -> Tensor:
    """Step-by-step SSD (``chunk_size`` is accepted for a uniform scan signature; the loop has no chunks). x (b,l,h,p), dt (b,l,h), A (h,), B/C (b,l,g,n) with g dividing h."""
    b, length, h, p = x.shape
    g, n = B.shape[-2:]
    rep = h // g
    Bh = B.repeat_interleave(rep, dim=2)
    Ch = C.repeat_interleave(rep, dim=2)
    state = x.new_zeros(b, h, p, n)
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t] * A)  # (b,h)
        state = state * decay[..., None, None] + (dt[:, t, :, None, None] * x[:, t, :, :, None]) * Bh[:, t, :, None, :]
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ch[:, t]))
    y = torch.stack(ys, dim=1)
    if D is not None:
        y = y + x * D[:, None]
    return y


def pad_to_chunks(t: Tensor, chunk: int) -> Tensor:
    pad = (-t.shape[1]) % chunk
    if pad == 0:
        return t
    shape = list(t.shape)
    shape[1] = pad
    return torch.cat([t, t.new_zeros(shape)], dim=1)


def _segsum(a: Tensor) -> Tensor:
    """exp-ready segment sums: out[..., i, j] = sum(a[..., j+1:i+1]) for i >= j, -inf above."""
    q = a.shape[-1]
    cum = torch.cumsum(a, dim=-1)
    diff = cum[..., :, None] - cum[..., None, :]
    mask = torch.tril(torch.ones(q, q, dtype=torch.bool, device=a.device))
    return diff.masked_fill(~mask, float("-inf"))


def ssd_chunked_reference(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None, chunk_size: int = 64
) -> Tensor:
    """The plain chunked scan (benchmark baseline): masked decay tensors and einsum contractions."""
    b, length, h, p = x.shape
    g = B.shape[2]
    rep = h // g
    Bh = B.repeat_interleave(rep, dim=2)
    Ch = C.repeat_interleave(rep, dim=2)
    q = chunk_size
    xs, dts, Bs, Cs = (pad_to_chunks(t, q) for t in (x, dt, Bh, Ch))
    c = xs.shape[1] // q
    xs = xs.reshape(b, c, q, h, p)
    Bs = Bs.reshape(b, c, q, h, -1)
    Cs = Cs.reshape(b, c, q, h, -1)
    a = (dts * A).reshape(b, c, q, h).permute(0, 3, 1, 2)  # b h c q
    xdt = xs * dts.reshape(b, c, q, h, 1)
    a_cum = torch.cumsum(a, dim=-1)
    L = torch.exp(_segsum(a))  # b h c q q
    y_diag = torch.einsum("bclhn,bcshn,bhcls,bcshp->bclhp", Cs, Bs, L, xdt)
    decay_states = torch.exp(a_cum[..., -1:] - a_cum)
    states = torch.einsum("bclhn,bhcl,bclhp->bchpn", Bs, decay_states, xdt)
    init = torch.zeros_like(states[:, :1])
    states = torch.cat([init, states], dim=1)
    decay_chunk = torch.exp(_segsum(F.pad(a_cum[..., -1], (1, 0))))
    new_states = torch.einsum("bhzc,bchpn->bzhpn", decay_chunk, states)
    states = new_states[:, :-1]
    state_decay_out = torch.exp(a_cum)
    y_off = torch.einsum("bclhn,bchpn,bhcl->bclhp", Cs, states, state_decay_out)
    y = (y_diag + y_off).reshape(b, c * q, h, p)[:, :length]
    if D is not None:
        y = y + x * D[:, None]
    return y


_MASKS: dict[tuple[int, str], Tensor] = {}


def causal_mask(q: int, device: torch.device) -> Tensor:
    key = (q, str(device))
    m = _MASKS.get(key)
    if m is None:
        m = torch.tril(torch.ones(q, q, dtype=torch.bool, device=device))
        _MASKS[key] = m
    return m


def pass_states(states: Tensor, totals: Tensor) -> Tensor:
    """State entering each chunk: S_in[z] = sum_{k<z} exp(sum of totals k+1..z-1) states[k].

    ``states`` (b, c, h, m), ``totals`` (b, c, h) the decay sums of each chunk. One masked
    (c x c) decay matrix per head and one matmul, instead of a loop of tiny steps over chunks.
    """
    b, c, h, m = states.shape
    inc = torch.cumsum(totals, dim=1).transpose(1, 2)  # b h c: sum of totals 0..k
    exc = inc - totals.transpose(1, 2)  # sum of totals 0..z-1
    diff = exc[..., :, None] - inc[..., None, :]  # [z, k] = sum of totals k+1..z-1
    strict = torch.tril(torch.ones(c, c, dtype=torch.bool, device=states.device), diagonal=-1)
    decay = torch.exp(diff.masked_fill(~strict, float("-inf")))
    return (decay @ states.transpose(1, 2)).transpose(1, 2)  # b c h m


def ssd_chunked_masked(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None, chunk_size: int = 32
) -> Tensor:
    """Chunked SSD with an explicit per-head masked decay matrix (any decay range).

    With one group, C.B^T is computed once and shared by all heads, and the state terms
    fold the heads into the matrix dimension, so every contraction is one plain batched
    matmul on contiguous (or simply transposed) blocks: no broadcast matmuls, whose
    backward falls back to one small GEMM per matrix.
    """
    b, length, h, p = x.shape
    g, n = B.shape[-2:]
    if g != 1:
        return ssd_chunked_reference(x, dt, A, B, C, D=D, chunk_size=chunk_size)
    q = chunk_size
    xs, dts, Bs, Cs = (pad_to_chunks(t, q) for t in (x, dt, B, C))
    c = xs.shape[1] // q
    xc = xs.reshape(b, c, q, h, p)
    Bc = Bs.reshape(b, c, q, n)
    Cc = Cs.reshape(b, c, q, n)
    dtc = dts.reshape(b, c, q, h).transpose(-1, -2)  # b c h q
    cum = torch.cumsum(dtc * A[:, None], dim=-1)  # b c h q
    # Intra-chunk: y_i = sum_{j<=i} (C_i . B_j) exp(cum_i - cum_j) dt_j x_j
    cb = Cc @ Bc.transpose(-1, -2)  # b c q q
    diff = cum[..., :, None] - cum[..., None, :]
    decay = torch.exp(diff.masked_fill(~causal_mask(q, x.device), float("-inf")))
    m = decay * cb[:, :, None] * dtc[..., None, :]  # b c h q q
    y = (m @ xc.permute(0, 1, 3, 2, 4)).permute(0, 1, 3, 2, 4)  # b c q h p
    # Chunk states: sum_j exp(cum_end - cum_j) dt_j x_j B_j^T, heads folded: (b c h*p n)
    w = (torch.exp(cum[..., -1:] - cum) * dtc).transpose(-1, -2)  # b c q h
    states = (xc * w[..., None]).reshape(b, c, q, h * p).transpose(-1, -2) @ Bc
    # Pass states along chunks: S_in[k+1] = exp(sum a_k) S_in[k] + states[k]. Unbind once:
    # indexing inside the loop makes autograd write a full-size zero gradient per chunk.
    chunk_decay = torch.exp(cum[..., -1]).repeat_interleave(p, dim=-1).unbind(dim=1)  # c x (b, h*p)
    per_chunk = states.unbind(dim=1)
    s_in = [states.new_zeros(b, h * p, n)]
    for k in range(c - 1):
        s_in.append(s_in[-1] * chunk_decay[k][..., None] + per_chunk[k])
    s_prev = torch.stack(s_in, dim=1)  # b c h*p n
    y_off = (Cc @ s_prev.transpose(-1, -2)).reshape(b, c, q, h, p) * torch.exp(cum).transpose(-1, -2)[..., None]
    y = (y + y_off).reshape(b, c * q, h, p)[:, :length]
    if D is not None:
        y = y + x * D[:, None]
    return y
