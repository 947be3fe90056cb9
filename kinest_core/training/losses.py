# SPDX-License-Identifier: GPL-3.0-or-later
"""The KineST training loss: local 6D rotations, root orientation, geometric angular velocity, optional FK.

Why the angular-velocity term: a per-frame rotation loss alone lets predictions shake
around the right pose; comparing the frame-to-frame rotation change (the so(3) log of
``R_{t+1} R_t^T``) with L1 is what keeps jitter low (the paper's main loss idea).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from kinest_core import rotations_torch as trot
from kinest_core.postprocess.contacts import CONTACT_HEIGHT, CONTACT_TRAVEL, FOOT_CONTACT_JOINTS
from kinest_core.skeleton import HEAD, NUM_JOINTS, forward_kinematics_torch


@dataclass
class LossConfig:
    """Weights of the loss terms (0 switches a term off)."""

    rotation: float = 1.0  # L2 on all 22 local 6D rotations (joint 0 global)
    root: float = 0.02  # extra L2 on the pelvis (global) 6D orientation
    angular_velocity: float = 1.0  # L1 on so3_log(R_{t+1} R_t^T) per joint
    fk_position: float = 0.0  # L1 (m) on joint positions from FK relative to the pelvis (needs rest offsets)
    fk_velocity: float = 0.0  # L1 (m/frame) on frame-to-frame moves of the joints relative to the head (FK)
    fk_acceleration: float = 0.0  # L1 (m/frame^2) on their second differences: frame-to-frame shake costs most here
    fk_jerk: float = 0.0  # L1 (m/frame^3) on their third differences: what the jitter metric measures
    # L1 (m/frame^2) on second differences of the joint error with the body placed on the *tracked* head,
    # its simulated noise included, as the protocol and the extension place it: a shaking head input
    # should move the neck, not carry the whole body along (needs tracked_head_error).
    placed_acceleration: float = 0.0
    # L1 (m) between head-relative joints of two overlapping windows on their shared frames: a frame's
    # pose should not depend on which window it is in (window seams). Training then draws window pairs.
    window_consistency: float = 0.0
    # Share of each batch drawn as overlapping pairs for that loss (1: all of it). Pairs repeat their motion,
    # so a smaller share keeps more distinct motion per batch.
    window_consistency_share: float = 1.0
    # Binary cross-entropy on the foot-contact logits of a model with a contact output, against
    # window_contact_labels of the ground truth.
    contact: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LossConfig:
        return cls(**{k: float(v) for k, v in d.items() if k in cls.__dataclass_fields__})


def angular_velocity(rotations: Tensor) -> Tensor:
    """(..., F, J, 3, 3) rotation matrices -> (..., F-1, J, 3) axis-angle of ``R_{t+1} R_t^T``."""
    rel = rotations[..., 1:, :, :, :] @ rotations[..., :-1, :, :, :].transpose(-1, -2)
    return trot.matrix_to_axis_angle(rel)


def head_relative(pred: Tensor, target: Tensor) -> Tensor:
    """Difference of two joint-position sets (..., F, 22, 3), each taken relative to its own head:
    the protocol places the body by the head, so this is what MPJVE and jitter see."""
    return (pred - pred[..., HEAD : HEAD + 1, :]) - (target - target[..., HEAD : HEAD + 1, :])


def window_consistency(first: Tensor, second: Tensor, offset: int, rest_offsets: Tensor) -> Tensor:
    """L1 (m, summed over x, y, z, mean over joints and frames) between the head-relative FK joints of
    ``first`` and ``second`` (batch, frames, 132) on the frames they share: ``second`` starts ``offset``
    frames after ``first``; both are posed on the same bodies ``rest_offsets`` (batch, 22, 3)."""
    b, f, _ = first.shape
    shared = f - offset
    if shared <= 0:
        raise ValueError(f"windows of {f} frames offset by {offset} share no frame")
    a = trot.sixd_to_matrix(first[:, offset:].reshape(b, shared, NUM_JOINTS, 6))
    c = trot.sixd_to_matrix(second[:, :shared].reshape(b, shared, NUM_JOINTS, 6))
    _, pa = forward_kinematics_torch(a, rest_offsets[:, None].expand(b, shared, NUM_JOINTS, 3))
    _, pc = forward_kinematics_torch(c, rest_offsets[:, None].expand(b, shared, NUM_JOINTS, 3))
    return head_relative(pa, pc).abs().sum(-1).mean()


def kinest_loss(
    pred: Tensor,
    target: Tensor,
    config: LossConfig | None = None,
    rest_offsets: Tensor | None = None,
    tracked_head_error: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Total loss and its parts.

    ``pred``/``target``: (batch, frames, 132) local 6D rotations in SMPL joint order;
    ``rest_offsets``: (batch, 22, 3) the bodies, needed by the FK terms;
    ``tracked_head_error``: (batch, frames, 3) tracked minus true head, needed by ``placed_acceleration``.
    """
    cfg = config or LossConfig()
    b, f, _ = pred.shape
    p6 = pred.reshape(b, f, NUM_JOINTS, 6)
    t6 = target.reshape(b, f, NUM_JOINTS, 6)
    parts: dict[str, Tensor] = {}
    if cfg.rotation:
        parts["rotation"] = ((p6 - t6) ** 2).mean()
    if cfg.root:
        parts["root"] = ((p6[:, :, 0] - t6[:, :, 0]) ** 2).mean()
    need_fk = bool(cfg.fk_position or cfg.fk_velocity or cfg.fk_acceleration or cfg.fk_jerk or cfg.placed_acceleration)
    need_mats = bool(cfg.angular_velocity) or need_fk
    if need_mats:
        pm = trot.sixd_to_matrix(p6)
        tm = trot.sixd_to_matrix(t6)
        if cfg.angular_velocity and f > 1:
            parts["angular_velocity"] = (angular_velocity(pm) - angular_velocity(tm)).abs().mean()
        if need_fk:
            if rest_offsets is None:
                raise ValueError("the FK position and velocity losses need rest_offsets (batch, 22, 3)")
            off = rest_offsets[:, None].expand(b, f, NUM_JOINTS, 3)
            _, pp = forward_kinematics_torch(pm, off)
            _, tp = forward_kinematics_torch(tm, off)
            if cfg.fk_position:
                parts["fk_position"] = (pp - tp).abs().sum(-1).mean()
            rel_err = head_relative(pp, tp)
            if cfg.fk_velocity and f > 1:
                parts["fk_velocity"] = torch.diff(rel_err, dim=1).abs().sum(-1).mean()
            if cfg.fk_acceleration and f > 2:
                parts["fk_acceleration"] = torch.diff(rel_err, n=2, dim=1).abs().sum(-1).mean()
            if cfg.fk_jerk and f > 3:
                parts["fk_jerk"] = torch.diff(rel_err, n=3, dim=1).abs().sum(-1).mean()
            if cfg.placed_acceleration and f > 2:
                if tracked_head_error is None:
                    raise ValueError("placed_acceleration needs tracked_head_error (batch, frames, 3)")
                placed_err = rel_err + tracked_head_error[:, :, None, :]
                parts["placed_acceleration"] = torch.diff(placed_err, n=2, dim=1).abs().sum(-1).mean()
    weights = cfg.to_dict()
    total = sum((weights[k] * v for k, v in parts.items()), torch.zeros((), device=pred.device, dtype=pred.dtype))
    return total, {k: float(v.detach()) for k, v in parts.items()}


def contact_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Binary cross-entropy of contact logits (..., 2) against 0/1 labels of the same shape."""
    return torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def window_contact_labels(positions: Tensor, rest_offsets: Tensor, fps: float = 60.0) -> Tensor:
    """(B, F, 2) 0/1 foot contacts of ground-truth windows (B, F, 22, 3) by the rule of
    :mod:`kinest_core.postprocess.contacts`, with each joint's standing height (from ``rest_offsets``
    (B, 22, 3)) in place of its 2nd-percentile height in the take: the training data's floor is
    set from the feet, so the two agree, and a window alone cannot know the take."""
    joints = [j for foot in FOOT_CONTACT_JOINTS for j in foot]
    b, f = positions.shape[:2]
    rest_local = torch.eye(3, dtype=positions.dtype, device=positions.device).expand(b, NUM_JOINTS, 3, 3)
    _, rest_pos = forward_kinematics_torch(rest_local, rest_offsets.to(positions))
    p = positions[:, :, joints]
    low = p[..., 2] <= rest_pos[:, None, joints, 2] + CONTACT_HEIGHT
    travel = torch.zeros_like(p[..., 0])
    travel[:, 1:] = torch.linalg.vector_norm(p[:, 1:, :, :2] - p[:, :-1, :, :2], dim=-1) * (fps / 60.0)
    travel[:, 0] = travel[:, 1]
    contact = (low & (travel < CONTACT_TRAVEL)).reshape(b, f, 2, 2).any(dim=-1)
    return contact.to(positions.dtype)
