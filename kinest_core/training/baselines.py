# SPDX-License-Identifier: GPL-3.0-or-later
"""Baselines measured in the same harness as KineST: a mean pose carried by the head, and a compact
AvatarPoser-style transformer.

Why: numbers on our own (small, open) data only mean something next to simple models
trained and evaluated the same way. Both map ``(batch, frames, 54) -> (batch, frames, 132)``
like :class:`~kinest_core.model.KineST`, so ``kinest train``/``evaluate`` treat them alike.
Checkpoints are written by :func:`kinest_core.model.save_checkpoint` like KineST's, with their own ``architecture`` name;
:func:`load_any_checkpoint` opens all three kinds.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor, nn

from kinest_core import rotations_torch as trot
from kinest_core.skeleton import NUM_JOINTS

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def heading(rotation: Tensor) -> Tensor:
    """Yaw angle (..., ) of a body-part rotation (..., 3, 3): its rest forward (-Y) turned into the ground plane."""
    fwd = -rotation[..., :, 1]  # R @ (0, -1, 0); Rz(psi) @ (0, -1, 0) = (sin psi, -cos psi, 0)
    return torch.atan2(fwd[..., 0], -fwd[..., 1])


def _rot_z(angle: Tensor) -> Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    z, o = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([c, -s, z, s, c, z, z, z, o], dim=-1).reshape(angle.shape + (3, 3))


@dataclass
class MeanPoseConfig:
    window: int = 96

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MeanPose(nn.Module):
    """The training set's mean pose; the pelvis turned to the head's heading. Not learned, just counted."""

    sums: Tensor
    count: Tensor
    mean: Tensor

    def __init__(self, config: MeanPoseConfig | None = None) -> None:
        super().__init__()
        self.config = config or MeanPoseConfig()
        self.register_buffer("sums", torch.zeros(NUM_JOINTS, 3, 3, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.eye(3).repeat(NUM_JOINTS, 1, 1))

    def accumulate(self, features: Tensor, target: Tensor) -> None:
        """Add windows: features (B, F, 54) for the head heading, targets (B, F, 132)."""
        mats = trot.sixd_to_matrix(target.reshape(target.shape[:-1] + (NUM_JOINTS, 6))).double()
        head = trot.sixd_to_matrix(features[..., 0:6]).double()
        mats = mats.clone()
        mats[..., 0, :, :] = _rot_z(-heading(head)) @ mats[..., 0, :, :]
        self.sums.add_(mats.reshape(-1, NUM_JOINTS, 3, 3).sum(0).to(self.sums))
        self.count.add_(float(mats.shape[0] * mats.shape[1]))
        u, _, vt = torch.linalg.svd(self.sums / self.count.clamp_min(1.0))
        d = torch.det(u @ vt)
        fix = torch.ones(NUM_JOINTS, 3, dtype=u.dtype, device=u.device)
        fix[:, 2] = torch.sign(d)
        self.mean.copy_(((u * fix[:, None, :]) @ vt).to(self.mean))

    def forward(self, features: Tensor) -> Tensor:
        head = trot.sixd_to_matrix(features[..., 0:6])
        mats = self.mean.to(features).expand(features.shape[:-1] + (NUM_JOINTS, 3, 3)).clone()
        mats[..., 0, :, :] = _rot_z(heading(head)) @ mats[..., 0, :, :]
        return trot.matrix_to_6d(mats).reshape(features.shape[:-1] + (NUM_JOINTS * 6,))

    def num_parameters(self) -> int:
        return 0


@dataclass
class AvatarPoserConfig:
    """A compact AvatarPoser-style model: linear embedding, transformer encoder over time, MLP head."""

    input_dim: int = 54
    window: int = 96
    width: int = 256
    layers: int = 3
    heads: int = 8
    ffn_width: int = 512
    dropout: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AvatarPoserConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class AvatarPoserLite(nn.Module):
    """``(batch, window, 54) -> (batch, window, 132)``: every frame attends to the whole window."""

    def __init__(self, config: AvatarPoserConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or AvatarPoserConfig()
        self.embed = nn.Linear(cfg.input_dim, cfg.width)
        self.position = nn.Parameter(torch.zeros(cfg.window, cfg.width))
        layer = nn.TransformerEncoderLayer(
            cfg.width, cfg.heads, cfg.ffn_width, cfg.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.width)
        self.head = nn.Sequential(nn.Linear(cfg.width, cfg.width), nn.SiLU(), nn.Linear(cfg.width, NUM_JOINTS * 6))
        last = self.head[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        with torch.no_grad():
            last.bias.copy_(torch.tensor(IDENTITY_6D).repeat(NUM_JOINTS))

    def forward(self, features: Tensor) -> Tensor:
        if features.shape[-2] != self.config.window:
            raise ValueError(
                f"AvatarPoserLite expects windows of {self.config.window} frames, got {features.shape[-2]}"
            )
        x = self.embed(features) + self.position
        return self.head(self.norm(self.encoder(x)))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


ARCHITECTURES = ("KineST", "AvatarPoserLite", "MeanPose")


def load_any_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any]]:
    """Open a KineST, AvatarPoserLite or MeanPose checkpoint by the ``architecture`` in its JSON."""
    from kinest_core.model.checkpoint import checkpoint_base, load_checkpoint, read_checkpoint_meta

    base = checkpoint_base(path)
    meta = read_checkpoint_meta(base)
    arch = meta.get("architecture", "KineST")
    if arch == "KineST":
        return load_checkpoint(base, device=device)
    model: nn.Module
    if arch == "AvatarPoserLite":
        model = AvatarPoserLite(AvatarPoserConfig.from_dict(meta.get("config", {})))
    elif arch == "MeanPose":
        model = MeanPose(MeanPoseConfig(**meta.get("config", {})))
    else:
        raise ValueError(
            f"{base.with_suffix('.json')}: unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})"
        )
    model.load_state_dict(load_file(str(base.with_suffix(".safetensors")), device="cpu"))
    model.to(device).eval()
    return model, meta
