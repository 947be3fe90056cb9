# SPDX-License-Identifier: GPL-3.0-or-later
"""The number format KineST's network runs in at inference, and the context that applies it.

On CPUs with native bfloat16 (AVX512-BF16 or AMX on x86, BF16 on Arm;
:func:`kinest_core.hardware.cpu_bf16_support`) reconstruction runs the network under bf16
autocast by default: its matrix products (linear layers, attention, the SSD scan's matmuls)
take bf16 operands, while the scan's decays and state pass, the depthwise convolution, the
normalisations and everything after the network (blending, hand pinning, forward
kinematics) stay float32 or float64. Measured on the mocap validation subjects (offline,
hands pinned) this moves MPJPE by about 0.001 cm and makes the network about 1.4x faster on
2 cores (``docs/benchmarks.md``). Elsewhere bf16 would be emulated and slower, so ``auto``
means float32 there, and on CUDA.

Rejected after measuring (``docs/benchmarks.md``): dynamic int8 quantisation of the linear
layers (no faster here, and its outputs move 7x more than under bf16), replacing the
depthwise convolution and the frame-mixing convolution by hand-written equivalents (slower
than PyTorch's own kernels).
"""

from __future__ import annotations

import contextlib
import copy
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

from kinest_core.hardware import cpu_bf16_support
from kinest_core.model import KineST
from kinest_core.model.kinest import MotionAggregation

__all__ = ["PRECISIONS", "inference_precision", "resolve_precision"]

#: ``auto``: bfloat16 where the CPU computes it natively, else float32; ``float32``: always float32;
#: ``bfloat16``: always bf16 autocast on the CPU (emulated, and slower, without native support).
PRECISIONS = ("auto", "float32", "bfloat16")


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """The format the network runs in on ``device`` (``"bfloat16"`` or ``"float32"``), and why."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
    if precision == "float32":
        return "float32", "float32 asked for"
    if device.type != "cpu":
        return "float32", f"{device.type}: bf16 inference is only used on the CPU"
    if precision == "bfloat16":
        return "bfloat16", "bfloat16 asked for"
    ok, why = cpu_bf16_support()
    return ("bfloat16" if ok else "float32"), f"auto: {why}"


@contextlib.contextmanager
def inference_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Run the network calls inside in ``precision`` (a resolved one: ``bfloat16`` or ``float32``)."""
    if precision == "bfloat16" and device.type == "cpu":
        with torch.autocast("cpu", dtype=torch.bfloat16):
            yield
    elif precision in ("bfloat16", "float32"):
        yield
    else:
        raise ValueError(f"precision {precision!r} is not resolved; pass it through resolve_precision first")


class Float32Island(nn.Module):
    """Runs ``inner`` in float32 inside a bf16 autocast region (input cast up, autocast off)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self.inner(x.float())  # type: ignore[no-any-return]


_VIEWS: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()


def inference_view(net: KineST, precision: str) -> KineST:
    """``net`` itself for float32; for bfloat16 a view of it (the same parameter tensors, cached per
    model) whose output heads and frame-mixing convolutions run in float32 (:class:`Float32Island`)."""
    if precision != "bfloat16" or not isinstance(net, KineST):
        return net  # float32, or a stand-in network (tests): autocast alone
    view = _VIEWS.get(net)
    if view is None:
        shared: dict[int, Any] = {id(t): t for t in (*net.parameters(), *net.buffers())}
        view = copy.deepcopy(net, memo=shared)
        for mod in view.modules():
            if isinstance(mod, MotionAggregation):
                setattr(mod, "local", Float32Island(mod.local))  # noqa: B010 (a module of another type)
        setattr(view, "head", Float32Island(view.head))  # noqa: B010
        if view.contact is not None:
            view.contact = Float32Island(view.contact)
        _VIEWS[net] = view
    return view  # type: ignore[return-value]
