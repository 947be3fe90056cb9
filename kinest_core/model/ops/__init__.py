# SPDX-License-Identifier: GPL-3.0-or-later
"""SSD scan implementations for :class:`kinest_core.model.mamba2.Mamba2` (the block calls one).

A scan is a function ``(x, dt, A, B, C, D, chunk_size) -> y`` with x (b,l,h,p), dt (b,l,h),
A (h,), B/C (b,l,g,n), D (h,) or None, y like x. Choose one by passing it to the block
(``Mamba2(..., scan=ssd_recurrent)`` or :meth:`KineST.set_scan`).

- :func:`ssd_chunked`: the fast CPU scan (default; fused C loops where built).
- :func:`ssd_chunked_unfused`: the same op with the fused loops' PyTorch twin.
- :func:`ssd_chunked_autograd`: the same arithmetic through autograd (comparisons).
- :func:`ssd_chunked_reference`, :func:`ssd_chunked_masked`, :func:`ssd_recurrent`: references.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from torch import Tensor

from .ssd_cpu import clear_ssd_scratch, ssd_chunked, ssd_chunked_autograd
from .ssd_reference import ssd_chunked_masked, ssd_chunked_reference, ssd_recurrent

ScanFn = Callable[[Tensor, Tensor, Tensor, Tensor, Tensor, "Tensor | None", int], Tensor]

#: :func:`ssd_chunked` without the fused C loops (their PyTorch twin; same values).
ssd_chunked_unfused: ScanFn = functools.partial(ssd_chunked, fused=False)

__all__ = [
    "ScanFn",
    "clear_ssd_scratch",
    "ssd_chunked",
    "ssd_chunked_autograd",
    "ssd_chunked_masked",
    "ssd_chunked_reference",
    "ssd_chunked_unfused",
    "ssd_recurrent",
]
