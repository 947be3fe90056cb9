# SPDX-License-Identifier: GPL-3.0-or-later
"""The KineST network: sparse tracking features (54/frame) -> 22 local joint rotations (6D).

Embedding -> Temporal Flow Modules (bidirectional Mamba-2 over frames, local and global
motion aggregation, feed-forward) -> Spatiotemporal Kinematic Flow Modules (one token per
joint per frame in kinematic scanning order, time-major, scanned forward and reversed)
-> linear head. Configuration lives in :class:`KineSTConfig`; ``forward`` is pure.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, overload

import torch
from torch import Tensor, nn

from kinest_core.model.mamba2 import Mamba2
from kinest_core.model.ops import ScanFn
from kinest_core.skeleton import NUM_JOINTS, UKS_ORDER

IDENTITY_6D = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


@dataclass
class KineSTConfig:
    """Architecture hyper-parameters (defaults: the paper's model, about 11M parameters)."""

    input_dim: int = 54
    window: int = 96
    width: int = 256
    num_tfm: int = 2
    num_skfm: int = 2
    joint_width: int = 64
    num_joints: int = NUM_JOINTS
    d_state: int = 16
    d_conv: int = 4
    expand: int = 2
    tfm_headdim: int = 64
    skfm_headdim: int = 16
    ffn_width: int = 512
    attn_heads: int = 8
    attn_ffn_width: int = 2048
    dropout: float = 0.0
    tfm_chunk: int = 32
    skfm_chunk: int = 32
    uks_order: list[int] = field(default_factory=lambda: list(UKS_ORDER))
    #: Foot-contact output (left, right logits per frame) beside the rotations; checkpoints
    #: without it load with False and fall back to contacts detected from the predicted motion.
    contact_head: bool = False
    contact_width: int = 64

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> KineSTConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    @classmethod
    def tiny(cls) -> KineSTConfig:
        """A few-thousand-parameter variant for tests."""
        return cls(
            width=32,
            joint_width=8,
            tfm_headdim=16,
            skfm_headdim=8,
            ffn_width=32,
            attn_heads=2,
            attn_ffn_width=32,
            window=24,
        )


class BiMamba(nn.Module):
    """A forward scan plus a scan of the reversed sequence (flipped back), summed."""

    def __init__(self, d_model: int, cfg: KineSTConfig, headdim: int, chunk: int) -> None:
        super().__init__()
        kw = dict(d_state=cfg.d_state, d_conv=cfg.d_conv, expand=cfg.expand, headdim=headdim, chunk_size=chunk)
        self.forward_scan = Mamba2(d_model, **kw)  # type: ignore[arg-type]
        self.backward_scan = Mamba2(d_model, **kw)  # type: ignore[arg-type]

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_scan(x) + self.backward_scan(x.flip(1)).flip(1)


class MotionAggregation(nn.Module):
    """Local (1x1 conv across frame positions + SiLU, residual) then global (Linear, LayerNorm, Transformer layer)."""

    def __init__(self, cfg: KineSTConfig) -> None:
        super().__init__()
        self.local = nn.Conv1d(cfg.window, cfg.window, kernel_size=1)
        self.act = nn.SiLU()
        self.global_in = nn.Linear(cfg.width, cfg.width)
        self.global_norm = nn.LayerNorm(cfg.width)
        self.attention = nn.TransformerEncoderLayer(
            cfg.width,
            cfg.attn_heads,
            dim_feedforward=cfg.attn_ffn_width,
            dropout=cfg.dropout,
            batch_first=True,
            norm_first=True,
        )

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.act(self.local(x))  # (b, frames, width): frames are the conv's channels
        # Residual around the global branch too: without it the stream is re-normalised in every
        # block, and training collapsed to an input-independent mean pose (measured: the
        # across-window spread of the activations fell ~30x per block after 500 iterations).
        return x + self.attention(self.global_norm(self.global_in(x)))


class FeedForward(nn.Module):
    def __init__(self, d_in: int, d_hidden: int, d_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(d_in), nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class TemporalFlowModule(nn.Module):
    """TFM: bidirectional Mamba-2 over frames, motion aggregation, feed-forward (residuals around each)."""

    def __init__(self, cfg: KineSTConfig) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(cfg.width)
        self.scan = BiMamba(cfg.width, cfg, cfg.tfm_headdim, cfg.tfm_chunk)
        self.aggregate = MotionAggregation(cfg)
        self.ffn = FeedForward(cfg.width, cfg.ffn_width, cfg.width)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.scan(self.norm(x))
        x = self.aggregate(x)
        return x + self.ffn(x)


class KinematicFlowModule(nn.Module):
    """SKFM: per-joint tokens in kinematic scanning order, time-major, scanned both ways.

    The reversed scan flips the whole token sequence, so it runs through the joints in the
    opposite chain order and through time backwards.
    """

    def __init__(self, cfg: KineSTConfig) -> None:
        super().__init__()
        self.num_joints = cfg.num_joints
        self.joint_width = cfg.joint_width
        self.to_tokens = nn.Linear(cfg.width, cfg.num_joints * cfg.joint_width)
        self.token_norm = nn.LayerNorm(cfg.joint_width)
        self.scan = BiMamba(cfg.joint_width, cfg, cfg.skfm_headdim, cfg.skfm_chunk)
        self.mix = FeedForward(cfg.num_joints * cfg.joint_width, cfg.ffn_width, cfg.width)
        self.aggregate = MotionAggregation(cfg)
        self.ffn = FeedForward(cfg.width, cfg.ffn_width, cfg.width)

    def forward(self, x: Tensor) -> Tensor:
        b, t, _ = x.shape
        tokens = self.to_tokens(x).reshape(b, t * self.num_joints, self.joint_width)
        tokens = tokens + self.scan(self.token_norm(tokens))
        x = x + self.mix(tokens.reshape(b, t, self.num_joints * self.joint_width))
        x = self.aggregate(x)
        return x + self.ffn(x)


class KineST(nn.Module):
    """``(batch, window, 54) -> (batch, window, 22 * 6)`` local joint rotations in 6D (joint 0 global).

    The joint tokens inside the SKFMs are in UKS order; the output is in SMPL joint order.
    Windows must be exactly ``config.window`` frames (the local aggregation mixes frame positions).
    """

    def __init__(self, config: KineSTConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or KineSTConfig()
        if sorted(cfg.uks_order) != list(range(cfg.num_joints)):
            raise ValueError("uks_order must visit every joint exactly once")
        self.embed = nn.Linear(cfg.input_dim, cfg.width)
        self.tfm = nn.ModuleList(TemporalFlowModule(cfg) for _ in range(cfg.num_tfm))
        self.skfm = nn.ModuleList(KinematicFlowModule(cfg) for _ in range(cfg.num_skfm))
        self.out_norm = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.num_joints * 6)
        # Token k of a frame stands for joint uks_order[k]: its place in the scan is what ties
        # it to that joint. The head predicts SMPL order. Start at the rest pose (identity).
        nn.init.zeros_(self.head.weight)
        with torch.no_grad():
            self.head.bias.copy_(torch.tensor(IDENTITY_6D).repeat(cfg.num_joints))
        self.contact: nn.Module | None = None
        if cfg.contact_head:
            self.contact = nn.Sequential(
                nn.Linear(cfg.width, cfg.contact_width), nn.GELU(), nn.Linear(cfg.contact_width, 2)
            )

    def trunk(self, features: Tensor) -> Tensor:
        """``(batch, window, 54) -> (batch, window, width)``: the normalised per-frame features both heads read."""
        if features.shape[-2] != self.config.window:
            raise ValueError(f"KineST expects windows of {self.config.window} frames, got {features.shape[-2]}")
        x = self.embed(features)
        for block in self.tfm:
            x = block(x)
        for block in self.skfm:
            x = block(x)
        return self.out_norm(x)

    @overload
    def forward(self, features: Tensor, with_contacts: Literal[False] = False) -> Tensor: ...
    @overload
    def forward(self, features: Tensor, with_contacts: Literal[True]) -> tuple[Tensor, Tensor | None]: ...

    def forward(self, features: Tensor, with_contacts: bool = False) -> Tensor | tuple[Tensor, Tensor | None]:
        """Rotations; with ``with_contacts`` also the foot-contact logits ``(batch, window, 2)`` (left,
        right; > 0 means in contact), None when this model has no contact output."""
        x = self.trunk(features)
        if not with_contacts:
            return self.head(x)
        return self.head(x), (self.contact(x) if self.contact is not None else None)

    def set_scan(self, scan: ScanFn) -> None:
        """Use ``scan`` (any :data:`kinest_core.model.ops.ScanFn`) in every Mamba-2 layer."""
        for m in self.modules():
            if isinstance(m, Mamba2):
                m.scan = scan

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
