# SPDX-License-Identifier: GPL-3.0-or-later
"""Checkpoints as ``NAME.safetensors`` (weights) + ``NAME.json`` (config, training facts, metrics).

No pickles: loading a checkpoint never runs code from the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kinest_core.model.kinest import KineST, KineSTConfig

CHECKPOINT_DIR = Path(__file__).resolve().parent.parent / "checkpoints"
DEFAULT_NAME = "kinest_default"


def default_checkpoint_path() -> Path | None:
    """The shipped trained checkpoint (without extension), or None if this install has none."""
    base = CHECKPOINT_DIR / DEFAULT_NAME
    return base if base.with_suffix(".safetensors").exists() else None


def checkpoint_base(path: str | os.PathLike[str]) -> Path:
    """NAME for NAME, NAME.safetensors or NAME.json: the two files' common base path."""
    p = Path(path)
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def save_checkpoint(path: str | os.PathLike[str], model: nn.Module, meta: dict[str, Any] | None = None) -> Path:
    """Write weights and JSON side by side (any of our models: KineST or a baseline); returns the base path."""
    base = checkpoint_base(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = base.with_suffix(".safetensors.part")
    save_file(state, str(tmp), metadata={"format": "kinest"})
    os.replace(tmp, base.with_suffix(".safetensors"))
    config = getattr(model, "config", None)
    doc: dict[str, Any] = {
        "architecture": type(model).__name__,
        "config": config.to_dict() if config is not None else {},
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }
    doc.update(meta or {})
    base.with_suffix(".json").write_text(json.dumps(doc, indent=2) + "\n")
    return base


def read_checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    base = checkpoint_base(path)
    js = base.with_suffix(".json")
    if not js.exists():
        raise FileNotFoundError(f"checkpoint config {js} not found; a checkpoint is NAME.safetensors + NAME.json")
    return dict(json.loads(js.read_text()))


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[KineST, dict[str, Any]]:
    """Build the model its JSON describes and load its weights (strictly: names and shapes must match)."""
    base = checkpoint_base(path)
    weights = base.with_suffix(".safetensors")
    if not weights.exists():
        raise FileNotFoundError(f"checkpoint weights {weights} not found")
    meta = read_checkpoint_meta(base)
    if meta.get("architecture", "KineST") != "KineST":
        raise ValueError(f"{weights}: architecture {meta.get('architecture')!r} is not KineST")
    model = KineST(KineSTConfig.from_dict(meta.get("config", {})))
    state = load_file(str(weights), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{weights}: weights do not fit the config in {base.with_suffix('.json').name} "
            f"(missing {len(missing)}, unexpected {len(unexpected)}, e.g. {(missing or unexpected)[0]})"
        )
    model.to(device).eval()
    return model, meta
