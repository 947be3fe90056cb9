# SPDX-License-Identifier: GPL-3.0-or-later
"""The Mamba-2 block (state space duality), with its scan passed in as a function.

:class:`Mamba2` matches ``mamba_ssm.modules.mamba2_simple.Mamba2Simple`` parameter names and
shapes (``in_proj``, ``conv1d``, ``dt_bias``, ``A_log``, ``D``, ``norm.weight``, ``out_proj``) so
weights load in either. The scan implementations live in :mod:`kinest_core.model.ops`; on CUDA
with ``mamba_ssm`` importable the block calls ``mamba_chunk_scan_combined`` (the
``use_mem_eff_path=False`` path, no ``causal-conv1d`` needed) unless ``use_kernels`` is False.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from kinest_core.model.ops import ScanFn, ssd_chunked
from kinest_core.model.ops.ssd_cuda import mamba_ssm_scan


class RMSNormGated(nn.Module):
    """RMSNorm of ``y * silu(z)`` (mamba_ssm's ``norm_before_gate=False``)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, y: Tensor, z: Tensor) -> Tensor:
        y = y * F.silu(z)
        return y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


class Mamba2(nn.Module):
    """Mamba-2 block, ``(batch, length, d_model) -> (batch, length, d_model)``, causal in length.

    ``scan`` is the SSD implementation, any :data:`~kinest_core.model.ops.ScanFn` (default: the fast
    CPU scan :func:`~kinest_core.model.ops.ssd_chunked`); on CUDA the ``mamba_ssm`` kernel is used
    when available unless ``use_kernels`` is False.
    """

    def __init__(
        self,
        d_model: int,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        headdim: int = 64,
        ngroups: int = 1,
        chunk_size: int = 32,
        A_init_range: tuple[float, float] = (1.0, 16.0),
        dt_min: float = 0.001,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        scan: ScanFn = ssd_chunked,
    ) -> None:
        super().__init__()
        self.d_model = d_model
        self.d_state = d_state
        self.d_conv = d_conv
        self.d_inner = expand * d_model
        if self.d_inner % headdim:
            raise ValueError(f"expand*d_model={self.d_inner} must be a multiple of headdim={headdim}")
        self.headdim = headdim
        self.nheads = self.d_inner // headdim
        self.ngroups = ngroups
        self.chunk_size = chunk_size
        self.scan: ScanFn = scan
        self.use_kernels = True
        d_in_proj = 2 * self.d_inner + 2 * ngroups * d_state + self.nheads
        self.in_proj = nn.Linear(d_model, d_in_proj, bias=False)
        conv_dim = self.d_inner + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, kernel_size=d_conv, groups=conv_dim, padding=d_conv - 1, bias=True)
        dt = torch.exp(torch.rand(self.nheads) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(*A_init_range)))
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = RMSNormGated(self.d_inner)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=False)

    def forward(self, u: Tensor) -> Tensor:
        batch, length, _ = u.shape
        zxbcdt = self.in_proj(u)
        z, xbc, dt = torch.split(
            zxbcdt, [self.d_inner, self.d_inner + 2 * self.ngroups * self.d_state, self.nheads], dim=-1
        )
        dt = F.softplus(dt + self.dt_bias)
        # Causal depthwise conv: pad on the left only, so the output is contiguous and exactly
        # ``length`` long (same weights and result as mamba_ssm's padded conv + slice). On CPU it
        # runs in the weights' dtype even under autocast: a CPU depthwise conv is 1.4x slower in bf16.
        xbc_t = F.pad(xbc.transpose(1, 2), (self.d_conv - 1, 0))
        cpu_autocast = u.device.type == "cpu" and torch.is_autocast_enabled("cpu")
        with torch.autocast("cpu", enabled=False) if cpu_autocast else contextlib.nullcontext():
            if cpu_autocast:
                xbc_t = xbc_t.to(self.conv1d.weight.dtype)
            conv = F.conv1d(xbc_t, self.conv1d.weight, self.conv1d.bias, groups=self.conv1d.groups)
        xbc = F.silu(conv).transpose(1, 2)
        x, B, C = torch.split(xbc, [self.d_inner, self.ngroups * self.d_state, self.ngroups * self.d_state], dim=-1)
        A = -torch.exp(self.A_log.float())
        xh = x.reshape(batch, length, self.nheads, self.headdim)
        Bg = B.reshape(batch, length, self.ngroups, self.d_state)
        Cg = C.reshape(batch, length, self.ngroups, self.d_state)
        kernel = mamba_ssm_scan() if (u.is_cuda and self.use_kernels) else None
        if kernel is not None:
            y = kernel(xh, dt, A, Bg, Cg, chunk_size=max(self.chunk_size, 64), D=self.D, z=None)
        else:
            y = self.scan(xh, dt, A, Bg, Cg, self.D, self.chunk_size)
        y = y.reshape(batch, length, self.d_inner)
        return self.out_proj(self.norm(y, z))
