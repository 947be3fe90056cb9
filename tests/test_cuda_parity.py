# SPDX-License-Identifier: GPL-3.0-or-later
"""Where CUDA is: the CPU twin, the torch scan on GPU and the mamba_ssm kernel agree."""

from __future__ import annotations

import pytest
import torch

from kinest_core.model import KineST, KineSTConfig
from kinest_core.model.mamba2 import Mamba2
from kinest_core.model.ops.ssd_cuda import mamba_ssm_scan

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_torch_scan_on_gpu_matches_cpu() -> None:
    torch.manual_seed(0)
    layer = Mamba2(64, headdim=16)
    layer.use_kernels = False
    u = torch.randn(2, 300, 64)
    cpu = layer(u)
    gpu = layer.cuda()(u.cuda()).cpu()
    assert (cpu - gpu).abs().max().item() < 1e-4


@cuda
@pytest.mark.skipif(mamba_ssm_scan() is None, reason="mamba_ssm is not installed")
def test_mamba_ssm_kernel_matches_torch_scan() -> None:
    torch.manual_seed(0)
    model = KineST(KineSTConfig()).cuda().eval()
    x = torch.randn(4, 96, 54, device="cuda")
    with torch.no_grad():
        with_kernels = model(x)
        for m in model.modules():
            if isinstance(m, Mamba2):
                m.use_kernels = False
        without = model(x)
    assert (with_kernels - without).abs().max().item() <= 1e-3
