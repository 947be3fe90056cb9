# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``mamba_ssm`` CUDA kernel for the SSD scan, where that package is installed (optional)."""

from __future__ import annotations

from typing import Any

_MAMBA_SCAN: Any = None
_MAMBA_CHECKED = False


def mamba_ssm_scan() -> Any:
    """``mamba_ssm``'s fused SSD scan if that package imports, else None (checked once)."""
    global _MAMBA_SCAN, _MAMBA_CHECKED
    if not _MAMBA_CHECKED:
        _MAMBA_CHECKED = True
        try:
            from mamba_ssm.ops.triton.ssd_combined import mamba_chunk_scan_combined

            _MAMBA_SCAN = mamba_chunk_scan_combined
        except Exception:  # ImportError, or a broken CUDA build: fall back to torch
            _MAMBA_SCAN = None
    return _MAMBA_SCAN
