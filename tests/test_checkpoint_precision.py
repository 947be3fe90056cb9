# SPDX-License-Identifier: GPL-3.0-or-later
"""Checkpoints stored in half precision load as float32; the shipped one is stored that way."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open

from kinest_core.model import KineST, KineSTConfig, default_checkpoint_path, load_checkpoint, save_checkpoint

TINY = KineSTConfig(
    width=32, joint_width=8, ffn_width=64, attn_heads=2, attn_ffn_width=64, tfm_headdim=16, skfm_headdim=8
)


def _stored_dtypes(weights: Path) -> set[str]:
    with safe_open(str(weights), framework="pt") as f:
        return {str(f.get_slice(k).get_dtype()) for k in f.keys()}  # noqa: SIM118


def test_half_precision_weights_load_as_float32_within_rounding(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = KineST(TINY).eval()
    base = save_checkpoint(tmp_path / "half", model, {"name": "t"}, weights_dtype=torch.float16)
    assert _stored_dtypes(base.with_suffix(".safetensors")) == {"F16"}
    loaded, meta = load_checkpoint(base)
    assert meta["weights_dtype"] == "float16"
    for (name, p), q in zip(loaded.state_dict().items(), model.state_dict().values(), strict=True):
        assert p.dtype == torch.float32, name
        assert torch.allclose(p, q, rtol=2e-3, atol=1e-4), name  # float16 keeps 11 significant bits
    x = torch.randn(2, TINY.window, TINY.input_dim)
    with torch.no_grad():
        assert torch.allclose(loaded(x), model(x), atol=5e-3)


def test_float32_stays_the_default_for_training_checkpoints(tmp_path: Path) -> None:
    base = save_checkpoint(tmp_path / "full", KineST(TINY), {})
    assert _stored_dtypes(base.with_suffix(".safetensors")) == {"F32"}


def test_shipped_checkpoint_is_half_precision_and_runs_in_float32() -> None:
    base = default_checkpoint_path()
    assert base is not None
    assert _stored_dtypes(base.with_suffix(".safetensors")) == {"F16"}  # 22 MB, not 43 MB, per commit
    model, meta = load_checkpoint(base)
    assert meta["weights_dtype"] == "float16"
    assert all(p.dtype == torch.float32 for p in model.parameters())
