# SPDX-License-Identifier: GPL-3.0-or-later
"""Checkpoints as ``NAME.safetensors`` (weights) + ``NAME.json`` (config, training facts, metrics).

No pickles: loading a checkpoint never runs code from the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from kinest_core.errors import CheckpointError
from kinest_core.model.kinest import KineST, KineSTConfig
from kinest_core.outputs import staged_outputs
from kinest_core.skeleton import NUM_JOINTS

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


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    meta: dict[str, Any] | None = None,
    weights_dtype: torch.dtype | None = None,
) -> Path:
    """Write weights and JSON side by side (any of our models: KineST or a baseline); returns the base path.

    ``weights_dtype=torch.float16`` stores floating-point weights in half precision (half the
    file; :func:`load_checkpoint` loads them back as float32): for shipped checkpoints, whose
    metrics it moves by well under 0.01 cm. Training checkpoints keep float32 (the default).
    """
    if weights_dtype not in (None, torch.float32, torch.float16, torch.bfloat16):
        raise ValueError(f"weights_dtype must be float32, float16 or bfloat16, got {weights_dtype}")
    base = checkpoint_base(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.to(weights_dtype) if weights_dtype is not None and v.is_floating_point() else v)
        .detach()
        .cpu()
        .contiguous()
        for k, v in model.state_dict().items()
    }
    config = getattr(model, "config", None)
    doc: dict[str, Any] = {
        "architecture": type(model).__name__,
        "config": config.to_dict() if config is not None else {},
        "parameters": int(sum(p.numel() for p in model.parameters())),
    }
    doc.update(meta or {})
    doc["weights_dtype"] = str(weights_dtype or torch.float32).removeprefix("torch.")
    text = json.dumps(doc, indent=2) + "\n"
    with staged_outputs(base.with_suffix(".safetensors"), base.with_suffix(".json")) as (weights_tmp, json_tmp):
        save_file(state, str(weights_tmp), metadata={"format": "kinest"})
        json_tmp.write_text(text)
    return base


#: Bounds on what a checkpoint may ask for (the shipped model: width 256, window 96, 11M parameters).
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_PARAMETERS = 500_000_000
CONFIG_INT_RANGES: dict[str, tuple[int, int]] = {
    "input_dim": (1, 4096),
    "window": (2, 4096),
    "width": (1, 8192),
    "num_tfm": (0, 64),
    "num_skfm": (0, 64),
    "joint_width": (1, 4096),
    "num_joints": (NUM_JOINTS, NUM_JOINTS),
    "d_state": (1, 1024),
    "d_conv": (1, 64),
    "expand": (1, 16),
    "tfm_headdim": (1, 4096),
    "skfm_headdim": (1, 4096),
    "ffn_width": (1, 65536),
    "attn_heads": (1, 256),
    "attn_ffn_width": (1, 65536),
    "tfm_chunk": (1, 4096),
    "skfm_chunk": (1, 4096),
}
_FIX = "use the .safetensors and .json saved together by kinest train, or the shipped model"


def read_checkpoint_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The checkpoint's JSON document (a JSON object), or a :class:`CheckpointError` saying what is wrong."""
    base = checkpoint_base(path)
    js = base.with_suffix(".json")
    if not js.is_file():
        raise CheckpointError(
            str(js), "not found; a checkpoint is NAME.safetensors + NAME.json side by side", hint=_FIX
        )
    try:
        size = js.stat().st_size
        if size > MAX_JSON_BYTES:
            raise CheckpointError(str(js), f"is {size / 1e6:.0f} MB; a checkpoint's config is a few kB", hint=_FIX)
        doc = json.loads(js.read_bytes().decode("utf-8"))
    except CheckpointError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CheckpointError(str(js), f"is not readable JSON ({exc})", hint=_FIX) from exc
    if not isinstance(doc, dict):
        raise CheckpointError(str(js), f"holds a JSON {type(doc).__name__}, not an object with a 'config'", hint=_FIX)
    return doc


def config_from_meta(meta: dict[str, Any], where: str) -> KineSTConfig:
    """The :class:`KineSTConfig` of a checkpoint's JSON, each value's type and range checked."""
    cfg = meta.get("config", {})
    if not isinstance(cfg, dict):
        raise CheckpointError(where, f"'config' is a JSON {type(cfg).__name__}, not an object", hint=_FIX)
    for key, (lo, hi) in CONFIG_INT_RANGES.items():
        if key in cfg:
            v = cfg[key]
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise CheckpointError(where, f"config {key!r} is {v!r}; it must be a whole number {lo}-{hi}", hint=_FIX)
    if "dropout" in cfg and not (isinstance(cfg["dropout"], (int, float)) and 0.0 <= float(cfg["dropout"]) < 1.0):
        raise CheckpointError(where, f"config 'dropout' is {cfg['dropout']!r}; it must be 0 <= p < 1", hint=_FIX)
    if "uks_order" in cfg:
        order = cfg["uks_order"]
        if not (isinstance(order, list) and sorted(order) == list(range(NUM_JOINTS))):
            raise CheckpointError(
                where, f"config 'uks_order' must list the joints 0-{NUM_JOINTS - 1} once each", hint=_FIX
            )
    try:
        return KineSTConfig.from_dict(cfg)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(where, f"config cannot build the model ({exc})", hint=_FIX) from exc


def _weights_header(weights: Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """name -> (shape, dtype) from the .safetensors header, without loading the tensors."""
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as f:
            return {k: (tuple(f.get_slice(k).get_shape()), str(f.get_slice(k).get_dtype())) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise CheckpointError(
            str(weights), f"is not a readable .safetensors file ({_one_line(exc)}): truncated or damaged", hint=_FIX
        ) from exc


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def load_checkpoint(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[KineST, dict[str, Any]]:
    """Build the model its JSON describes and load its weights (strictly: names and shapes must match).

    Everything is checked before memory is spent: the JSON's values, the weights' header against
    a model built on the ``meta`` device (no memory), then the loaded tensors for NaN or inf.
    Raises :class:`CheckpointError` with one line naming the file and the fix.
    """
    base = checkpoint_base(path)
    weights = base.with_suffix(".safetensors")
    if not weights.is_file():
        raise CheckpointError(
            str(weights),
            "not found",
            hint="give the path of a KineST NAME.safetensors (with NAME.json beside it): --checkpoint on the command "
            "line, Model in the Blender panel",
        )
    meta = read_checkpoint_meta(base)
    if meta.get("architecture", "KineST") != "KineST":
        raise CheckpointError(str(weights), f"architecture {meta.get('architecture')!r} is not KineST", hint=_FIX)
    js = str(base.with_suffix(".json"))
    config = config_from_meta(meta, js)
    header = _weights_header(weights)
    try:
        with torch.device("meta"):
            shapes = {k: tuple(v.shape) for k, v in KineST(config).state_dict().items()}
    except Exception as exc:  # a config whose parts do not fit together (e.g. a width not divisible by the heads)
        raise CheckpointError(js, f"config cannot build the model ({_one_line(exc)})", hint=_FIX) from exc
    if sum(int(np.prod(s)) for s in shapes.values()) > MAX_PARAMETERS:
        raise CheckpointError(js, f"config asks for over {MAX_PARAMETERS:,} parameters", hint=_FIX)
    missing = sorted(set(shapes) - set(header))
    unexpected = sorted(set(header) - set(shapes))
    wrong = [k for k in shapes if k in header and header[k][0] != shapes[k]]
    if missing or unexpected or wrong:
        k = (wrong or missing or unexpected)[0]
        detail = f"{k} is {header[k][0]} in the weights but {shapes[k]} in the config" if wrong else f"e.g. {k}"
        raise CheckpointError(
            str(weights),
            f"weights do not fit the config in {Path(js).name} (missing {len(missing)}, unexpected {len(unexpected)}, "
            f"wrong shape {len(wrong)}; {detail})",
            hint=_FIX,
        )
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as exc:
        raise CheckpointError(
            str(weights), f"is not a readable .safetensors file ({_one_line(exc)}): truncated or damaged", hint=_FIX
        ) from exc
    for k, v in state.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise CheckpointError(
                str(weights), f"tensor {k} holds NaN or inf: the training diverged or the file is damaged", hint=_FIX
            )
    model = KineST(config)
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    return model, meta
