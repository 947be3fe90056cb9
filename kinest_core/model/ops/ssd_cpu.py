# SPDX-License-Identifier: GPL-3.0-or-later
"""The fast SSD scan for CPU training and inference: one autograd node with a hand-written backward.

:func:`ssd_chunked` is the model's default scan: with one group of B/C the decay between tokens
factorises, every head shares one masked C.B^T matrix per chunk, and the op's elementwise steps
run as fused C loops (:mod:`.ssd_fused_cpu`) where they have been built, or as their PyTorch twin.
:func:`ssd_chunked_autograd` is the same arithmetic differentiated by autograd (a benchmark
comparison). Both fall back to :func:`.ssd_reference.ssd_chunked_masked` where the factorised form
would overflow in float32.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from . import ssd_fused_cpu
from .ssd_reference import causal_mask, pad_to_chunks, pass_states, ssd_chunked_masked

#: Largest decay (sum of |dt * A|) inside one chunk for which the factorised form is exact in
#: float32: exp(+-range/2) times the inputs, summed over a chunk, must stay far from overflow (3.4e38 ~ e^88),
#: in the backward pass too; e^40 leaves ample room.
FACTORISED_MAX_RANGE = 80.0


def _factorised_applies(dt: Tensor, A: Tensor, B: Tensor, chunk_size: int) -> bool:
    """One group of B/C, and every chunk's decay range under :data:`FACTORISED_MAX_RANGE`."""
    if B.shape[-2] != 1:
        return False
    q = chunk_size
    dts = pad_to_chunks(dt, q)
    c = dts.shape[1] // q
    a = (dts.detach() * A.detach()).reshape(dts.shape[0], c, q, -1)
    return float((-a.sum(dim=2)).max()) < FACTORISED_MAX_RANGE


def ssd_chunked(
    x: Tensor,
    dt: Tensor,
    A: Tensor,
    B: Tensor,
    C: Tensor,
    D: Tensor | None = None,
    chunk_size: int = 32,
    matmul_dtype: torch.dtype | None = None,
    fused: bool = True,
) -> Tensor:
    """Chunked SSD for CPU speed: the fastest exact form for the inputs given.

    With one group, the decay between tokens i >= j of a chunk, exp(cum_i - cum_j), factors
    into exp(cum_i - cum_mid) * exp(cum_mid - cum_j). The per-head factors then move onto the
    inputs and outputs, and all heads share one masked (q x q) C.B^T matrix: the intra-chunk
    term becomes a single matmul per chunk with every head side by side, and no per-head
    (q x q) decay tensor is ever built. That form runs as one autograd node with a hand-written
    backward (:class:`_FactorisedSSD`). Under autocast it computes in float32 (inputs cast,
    float32 out) except for its large matmuls, whose operands are rounded to the autocast dtype
    (bfloat16: 5x the float32 matmul speed where the CPU has native bf16; a float16 autocast gets
    float32, as float16 cannot hold the factorised scalings), as autocast
    does for every other matmul of the model; decays, the chunk-to-chunk state pass and all
    accumulations stay float32. ``matmul_dtype`` overrides that choice (float32 under autocast
    gives the exact float32 op). Where a chunk's decay range is too large for the factorised
    form in float32, or with several groups, the masked per-head form runs instead (same result).
    On CPU, once :func:`ssd_fused_cpu.enable` has run (``kinest train`` does), its elementwise steps
    and the state pass run as fused C loops; ``fused=False`` keeps the PyTorch twin (same values).
    """
    if matmul_dtype not in (None, torch.float32, torch.float64, torch.bfloat16):
        raise ValueError(
            f"matmul_dtype must be float32, float64 or bfloat16 (float16 overflows here), got {matmul_dtype}"
        )
    if _factorised_applies(dt, A, B, chunk_size):
        dev = x.device.type
        # Whether a backward can follow (ctx.needs_input_grad says True under no_grad too).
        grads = torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in (x, dt, A, B, C, D))
        if torch.is_autocast_enabled(dev):
            # bf16 keeps float32's exponent range, which the factorised scalings (up to e^40) need;
            # float16 would overflow, so a float16 autocast gets float32 matmuls.
            mm = matmul_dtype or (torch.bfloat16 if torch.get_autocast_dtype(dev) == torch.bfloat16 else torch.float32)
            with torch.autocast(dev, enabled=False):
                f32 = [t.float() for t in (x, dt, A, B, C)]
                d32 = None if D is None else D.float()
                return _FactorisedSSD.apply(*f32, d32, chunk_size, mm, grads, fused)  # type: ignore[no-any-return]
        return _FactorisedSSD.apply(x, dt, A, B, C, D, chunk_size, matmul_dtype or x.dtype, grads, fused)  # type: ignore[no-any-return]
    return ssd_chunked_masked(x, dt, A, B, C, D, chunk_size)


def ssd_chunked_autograd(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None = None, chunk_size: int = 32
) -> Tensor:
    """:func:`ssd_chunked` as it was before :class:`_FactorisedSSD`: the same factorised form as
    plain tensor ops differentiated by autograd (kept for benchmarks)."""
    if _factorised_applies(dt, A, B, chunk_size):
        return _ssd_chunked_factorised(x, dt, A, B, C, D, chunk_size, x.shape[1])
    return ssd_chunked_masked(x, dt, A, B, C, D, chunk_size)


def _ssd_chunked_factorised(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None, q: int, length: int
) -> Tensor:
    b, _, h, p = x.shape
    n = B.shape[-1]
    xs, dts, Bs, Cs = (pad_to_chunks(t, q) for t in (x, dt, B, C))
    c = xs.shape[1] // q
    xc = xs.reshape(b, c, q, h, p)
    Bc = Bs.reshape(b, c, q, n)
    Cc = Cs.reshape(b, c, q, n)
    dtc = dts.reshape(b, c, q, h)
    cum = torch.cumsum(dtc * A, dim=2)  # b c q h, decreasing along q
    mid = cum[:, :, q // 2 : q // 2 + 1]
    e_out = torch.exp(cum - mid)  # b c q h
    f_in = torch.exp(mid - cum) * dtc
    cb = (Cc @ Bc.transpose(-1, -2)).masked_fill(~causal_mask(q, x.device), 0.0)  # b c q q
    xw = (xc * f_in[..., None]).reshape(b, c, q, h * p)
    y = (cb @ xw).reshape(b, c, q, h, p) * e_out[..., None]
    # Chunk states: sum_j exp(cum_end - cum_j) dt_j x_j B_j^T, heads folded: (b c h*p n)
    w = torch.exp(cum[:, :, -1:] - cum) * dtc  # b c q h
    states = (xc * w[..., None]).reshape(b, c, q, h * p).transpose(-1, -2) @ Bc
    s_prev = pass_states(states.reshape(b, c, h, p * n), cum[:, :, -1]).reshape(b, c, h * p, n)
    y = y + (Cc @ s_prev.transpose(-1, -2)).reshape(b, c, q, h, p) * torch.exp(cum)[..., None]
    y = y.reshape(b, c * q, h, p)[:, :length]
    if D is not None:
        y = y + x * D[:, None]
    return y


def _bc(t: Tensor) -> Tensor:
    """(N, q, h) per-head scalars as (N, q, h, 1), to scale (N, q, h, p) blocks."""
    return t.unsqueeze(-1)


# Per thread, so buffers go away with the thread (the add-on runs each reconstruction on a new one).
_SCRATCH = threading.local()


def _scratch(slot: str, shape: tuple[int, ...], like: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """A reusable CPU buffer for a temporary of :class:`_FactorisedSSD` (one per thread, slot and dtype).

    A fresh multi-megabyte tensor costs more in page faults (glibc's defaults map large blocks anew
    on every allocation) than the arithmetic that fills it, so temporaries that never leave the op
    live here between calls. Not for anything saved or returned.
    """
    numel = math.prod(shape)
    dtype = dtype or like.dtype
    if like.device.type != "cpu":
        return like.new_empty(shape, dtype=dtype)
    key = (slot, dtype)
    buffers: dict[tuple[str, torch.dtype], Tensor] = _SCRATCH.__dict__.setdefault("buffers", {})
    buf = buffers.get(key)
    if buf is None or buf.numel() < numel:
        with torch.inference_mode(False):  # a normal tensor: writable in and out of inference mode
            buf = torch.empty(numel, dtype=dtype, device=like.device)
        buffers[key] = buf
    return buf[:numel].view(shape)


def _scale_into(dst: Tensor, a: Tensor, s: Tensor, slot: str) -> None:
    """``dst = a * s``; into a bf16 ``dst`` via a float32 scratch (two fast passes beat one mixed-dtype one)."""
    if dst.dtype == a.dtype:
        torch.mul(a, s, out=dst)
    else:
        dst.copy_(torch.mul(a, s, out=_scratch(slot, tuple(a.shape), a)))


def _as_dtype(t: Tensor, dtype: torch.dtype, slot: str) -> Tensor:
    """``t`` itself if already ``dtype``, else a copy in a scratch buffer (see :func:`_scratch`)."""
    if t.dtype == dtype:
        return t
    return _scratch(slot, tuple(t.shape), t, dtype).copy_(t)


def clear_ssd_scratch() -> None:
    """Free this thread's reusable buffers (:func:`_scratch`)."""
    _SCRATCH.__dict__.pop("buffers", None)


def _stack_states(xs_: Tensor, s_out: Tensor, pm: Tensor, b: int, c: int) -> None:
    """Write (exp(m) S_in)^T below X~ in ``xs_`` (N, q + n, h*p): S_in[0] = 0, S_in[k] = s_out[k-1]."""
    _, _, n, h, p = s_out.shape
    q = xs_.shape[1] - n
    sp = xs_[:, q:].view(b, c, n, h, p)
    sp[:, 0].zero_()
    torch.mul(s_out[:, :-1], pm.view(b, c, 1, h, 1)[:, 1:], out=sp[:, 1:])


def _token_stride(t: Tensor) -> int | None:
    """Element stride between the (h, p) rows of an (N, q, h, p) tensor whose rows are contiguous
    and evenly spaced (as the fused loops read them), else None."""
    N, q, h, p = t.shape
    st = t.stride()
    if st[3] != 1 or st[2] != p or st[0] != q * st[1]:
        return None
    return st[1]


def _fused_rows(xc: Tensor, mm: torch.dtype) -> tuple[bool, int] | None:
    """(bf16 operands?, x's token stride) when :mod:`ssd_fused_cpu` loops can run this op, else None."""
    if not ssd_fused_cpu.active() or xc.device.type != "cpu" or xc.dtype != torch.float32:
        return None
    if mm not in (torch.float32, torch.bfloat16):
        return None
    tok = _token_stride(xc)
    if tok is None:
        return None
    return mm == torch.bfloat16, tok


def _states_backward(
    gsp: Tensor, sp: Tensor, gsraw: Tensor, s_out: Tensor, pm: Tensor, decay: Tensor, t_end: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Backward of the chunk-to-chunk state pass (PyTorch twin of the fused ``states_backward``).

    ``gsp`` (N, n, h*p) float32 = d(P S_in)^T, overwritten; ``sp`` = (P S_in)^T; writes d states into
    ``gsraw`` and returns (gpp, gtot, gtt): d m through P, d tot through exp(tot - m) and exp(tot),
    and d tot through exp(tot - m) only.
    """
    b, c, n, h, p = s_out.shape
    N = b * c
    tmp = _scratch("tmp", (b, c, n, h, p), gsp)
    gpp = torch.mul(gsp, sp, out=tmp.view(N, n, h * p)).view(N, n, h, p).sum((1, 3))  # N h
    # Reverse state pass, in place: R[k] = dS_in[k] + exp(tot_k) R[k+1]; d states[k] = R[k+1].
    r = gsp.view(b, c, n, h, p).mul_(pm.view(b, c, 1, h, 1))
    chunks, decs = r.unbind(1), decay.view(b, c, 1, h, 1).unbind(1)
    for k in range(c - 2, -1, -1):
        torch.addcmul(chunks[k], chunks[k + 1], decs[k], out=chunks[k])
    gtot = gsp.new_zeros((b, c, h))
    gtt = torch.zeros_like(gtot)
    gsraw = gsraw.view(b, c, n, h, p)
    gsraw[:, -1].zero_()
    if c > 1:
        # sum R[k+1] S_in[k+1]; states[k] = S_in[k+1] - exp(tot_k) S_in[k]
        gtot[:, :-1] = torch.mul(r[:, 1:], s_out[:, :-1], out=tmp[:, 1:]).sum((2, 4))
        gtt.copy_(gtot)
        if c > 2:
            rs = torch.mul(r[:, 2:], s_out[:, :-2], out=tmp[:, 2:]).sum((2, 4))
            gtt[:, 1:-1] -= rs * decay.view(b, c, h)[:, 1:-1]
        torch.mul(r[:, 1:], t_end.view(b, c, 1, h, 1)[:, :-1], out=gsraw[:, :-1])
    return gpp, gtot, gtt


class _FactorisedSSD(torch.autograd.Function):
    """The factorised chunked SSD (one group) with a hand-written backward.

    Same arithmetic as :func:`_ssd_chunked_factorised`, but autograd sees one node. Per chunk
    (N = batch * chunks of q positions, h heads of p, state n), with cum_i the within-chunk
    cumulative sum of dt*A, m = cum_mid, tot = cum_last:

        E_i = exp(cum_i - m), F_i = exp(m - cum_i) dt_i, X~ = F x, G = tril(C B^T) (all heads)
        states = exp(tot - m) B^T X~,  S_in[k+1] = exp(tot_k) S_in[k] + states[k]
        y = E ([G | C] [X~; (exp(m) S_in)^T]) + D x

    so the output is one matmul per chunk with all heads side by side, and the backward's
    three large products are matmuls of the same stacked operands:
    [G^T | B] [dW; dS^T] = dX~, and [X~; (exp(m) S_in)^T] [dW; dS^T]^T, which holds dG^T,
    (dW exp(m) S_in)^T and X~ dS. The per-head factors scale matmul operands; no per-head
    (q x q) tensor exists; the state pass runs in place along chunks, forward and reverse.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        dt: Tensor,
        A: Tensor,
        B: Tensor,
        C: Tensor,
        D: Tensor | None,
        q: int,
        mm: torch.dtype,
        grads: bool,
        use_fused: bool = True,
    ) -> Tensor:
        b, length, h, p = x.shape
        n = B.shape[-1]
        hp = h * p
        xs, dts, Bs, Cs = (pad_to_chunks(t, q) for t in (x, dt, B, C))
        c = xs.shape[1] // q
        N = b * c
        xc = xs.reshape(N, q, h, p)
        dtc = dts.reshape(N, q, h)
        Bc = Bs.reshape(N, q, n)
        Cc = Cs.reshape(N, q, n)
        cum = torch.cumsum(dtc * A, dim=1)  # N q h
        m = cum[:, q // 2]  # N h
        tot = cum[:, -1]
        einv = torch.exp(m[:, None] - cum)  # exp(m - cum_i) <= exp(range / 2)
        e = torch.exp(cum - m[:, None])
        f = einv * dtc
        t_end = torch.exp(tot - m)  # N h
        decay = torch.exp(tot)
        pm = torch.exp(m)
        # Matmul operands are in ``mm`` (x's dtype, or bf16 under autocast); everything else in x's.
        # [X~; (P S_in)^T]: saved for the backward when there is one, else a scratch buffer.
        xs_ = x.new_empty((N, q + n, hp), dtype=mm) if grads else _scratch("xs", (N, q + n, hp), x, mm)
        xt = xs_[:, :q]
        fused = _fused_rows(xc, mm) if use_fused else None
        if fused is not None:
            bf, xtok = fused
            block = (q + n) * hp
            xt = _scratch("xt", (N, q, hp), x, mm)  # X~ again, contiguous: bmm copies a strided slice
            ssd_fused_cpu.run("scale_rows", bf, N, q, h, p, xc, xtok, f, xs_, block, xt)
        else:
            _scale_into(xt.view(N, q, h, p), xc, _bc(f), "scaled")
        gc = torch.cat([torch.bmm(Cc, Bc.transpose(1, 2)).tril_(), Cc], dim=2).to(mm)  # [G | C]
        # s_out[k] = state leaving chunk k (= S_in[k+1]), built in place from the chunk's own states.
        raw = torch.bmm(Bc.to(mm).transpose(1, 2), xt)
        if fused is not None:
            s_out = x.new_empty((b, c, n, h, p))
            ssd_fused_cpu.run("states_forward", bf, b, c, n, h, p, raw, t_end, decay, pm, s_out, xs_, block, q * hp)
            y = x.new_empty((N, q, h, p))
            Dc = None if D is None else D.contiguous()
            ssd_fused_cpu.run("scale_add_rows", bf, N, q, h, p, torch.bmm(gc, xs_), e, Dc, xc, xtok, y, None, 0, None)
        else:
            s_out = raw.to(x.dtype).view(b, c, n, h, p)
            s_out.mul_(t_end.view(b, c, 1, h, 1))
            chunks, decs = s_out.unbind(1), decay.view(b, c, 1, h, 1).unbind(1)
            for k in range(1, c):
                torch.addcmul(chunks[k], chunks[k - 1], decs[k], out=chunks[k])
            _stack_states(xs_, s_out, pm, b, c)
            y = torch.bmm(gc, xs_).view(N, q, h, p)
            y = y.to(x.dtype).mul_(_bc(e))
            if D is not None:
                y.addcmul_(xc, D[:, None])
        # The backward needs y without the D term only in sum_p(dy * y): it takes D x back out there.
        ctx.save_for_backward(xc, dtc, A, Bc, Cc, D, e, einv, f, gc, y, s_out, decay, t_end, pm, xs_ if grads else None)
        ctx.shape = (b, length, c, q)
        ctx.mm = mm
        ctx.fused = fused
        return y.view(b, c * q, h, p)[:, :length]

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, gy: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        xc, dtc, A, Bc, Cc, D, e, einv, f, gc, y, s_out, decay, t_end, pm, xs_ = ctx.saved_tensors
        b, length, c, q = ctx.shape
        mm = ctx.mm
        N, _, h, p = xc.shape
        n = Bc.shape[-1]
        hp = h * p
        gyc = pad_to_chunks(gy, q).reshape(N, q, h, p)
        with torch.autocast(gy.device.type, enabled=False):
            fused = ctx.fused
            gws = _scratch("gws", (N, q + n, hp), gy, mm)  # [dW; dS^T], dW = dy * E
            gw = gws[:, :q]
            if fused is not None:
                bf, xtok = fused
                gtok = _token_stride(gyc)
                if gtok is None:
                    gyc = gyc.contiguous()
                    gtok = hp
                block = (q + n) * hp
                Dc = None if D is None else D.contiguous()
                gee = gy.new_empty((N, q, h))  # d/d cum_i through E (times E): sum_p dy * (y - D x)
                gyx = None if D is None else gy.new_empty((N, q, h))
                gw = _scratch("gw", (N, q, hp), gy, mm)  # dW again, contiguous (see forward)
                ssd_fused_cpu.run(
                    "grad_in_rows", bf, N, q, h, p, gyc, gtok, y, e, Dc, xc, xtok, gee, gyx, gws, block, gw
                )  # fmt: skip
                gD = None if gyx is None else gyx.sum((0, 1))
                gsp = torch.bmm(Cc.to(mm).transpose(1, 2), gw)  # d(P S_in)^T
                gpp = gy.new_empty((N, h))
                gtot = gy.new_empty((b, c, h))  # d tot via exp(tot - m) and exp(tot)
                gtt = gy.new_empty((b, c, h))  # d tot via exp(tot - m) only
                rbuf = _scratch("rbuf", (b, 2, n * hp), gy)
                ssd_fused_cpu.run(
                    "states_backward", bf, b, c, n, h, p, gsp, xs_, block, q * hp, pm, decay, t_end, s_out,
                    gpp, gtot, gtt, gws, block, q * hp, rbuf,
                )  # fmt: skip
            else:
                # d/d cum_i through E (times E): sum_p dy * E W = sum_p dy * (y - D x)
                gee = torch.einsum("nqhp,nqhp->nqh", gyc, y)
                gD = None
                if D is not None:
                    gyx = torch.einsum("nqhp,nqhp->nqh", gyc, xc)
                    gD = gyx.sum((0, 1))
                    gee -= gyx * D
                _scale_into(gw.view(N, q, h, p), gyc, _bc(e), "scaled")
                gsp = torch.bmm(Cc.to(mm).transpose(1, 2), gw, out=_scratch("gsp", (N, n, hp), gy, mm))
                gsp = _as_dtype(gsp, gy.dtype, "gsp_acc")  # d(P S_in)^T
                gpp, gtot, gtt = _states_backward(gsp, xs_[:, q:], gws[:, q:], s_out, pm, decay, t_end)
            gbt = _scratch("gbt", (N, q, q + n), gy, mm)  # [G^T | B]
            gbt[..., :q] = gc[..., :q].transpose(1, 2)
            gbt[..., q:] = Bc
            if fused is not None:
                gx = gy.new_empty((N, q, h, p))  # dX~ f + D dy
                gf = gy.new_empty((N, q, h))
                gxt = torch.bmm(gbt, gws)
                ssd_fused_cpu.run("scale_add_rows", bf, N, q, h, p, gxt, f, Dc, gyc, gtok, gx, xc, xtok, gf)
            else:
                gx = torch.bmm(gbt, gws).to(gy.dtype).view(N, q, h, p)  # dX~
                gf = torch.einsum("nqhp,nqhp->nqh", gx, xc)
                gx.mul_(_bc(f))
                if D is not None:
                    gx.addcmul_(gyc, D[:, None])
            m2 = torch.bmm(xs_, gws.transpose(1, 2), out=_scratch("m2", (N, q + n, q + n), gy, mm))
            m2 = _as_dtype(m2, gy.dtype, "m2_acc")
            ggt = m2[:, :q, :q].triu_()  # dG^T (G is lower triangular)
            gC = torch.baddbmm(m2[:, q:, :q].transpose(1, 2), ggt.transpose(1, 2), Bc)
            gB = torch.baddbmm(m2[:, :q, q:], ggt, Cc)
            gcum = gee - gf * f
            gm = gpp - gtt.view(N, h) - gcum.sum(1)
            gcum[:, q // 2] += gm
            gcum[:, -1] += gtot.view(N, h)
            ga = gcum.flip(1).cumsum(1).flip(1)
            gdt = ga * A + gf * einv
            gA = (ga * dtc).sum((0, 1))
        length_p = c * q
        gx = gx.view(b, length_p, h, p)[:, :length]
        gdt = gdt.view(b, length_p, h)[:, :length]
        gB = gB.reshape(b, length_p, 1, n)[:, :length]
        gC = gC.reshape(b, length_p, 1, n)[:, :length]
        return gx, gdt, gA, gB, gC, gD, None, None, None, None
