# SPDX-License-Identifier: GPL-3.0-or-later
"""How real tracking and real bodies differ from mocap joints, as batched torch operations.

Training windows are made from mocap joints; a headset and two controllers are not joints.
These pieces make windows look like what the importer delivers for a real person:

- **device offsets** (:func:`device_offset_errors`): the importer turns a device pose into a
  joint pose with a calibration family's fixed offset (:mod:`kinest_core.io.calibration`);
  the true offset depends on the device and the grip. The tracked joint is then the true joint
  times ``inverse(true offset) @ assumed offset``, a constant per take and hand;
- **headset offsets**: the same for the head (how the headset sits on a face);
- **limb proportions** (:func:`scale_bones`): per-segment bone lengths scaled before forward
  kinematics, the root moved with the legs so feet keep meeting the floor;
- **speed changes** (:func:`time_warp`): windows resampled from a longer or shorter stretch.

Mirroring, yaw, body size, per-frame noise and dropped controllers live in
:mod:`kinest_core.training.data` beside the window maker that calls all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from kinest_core import rotations_torch as trot
from kinest_core.io.calibration import Calibration

#: Bone segments scaled together (left and right alike: people are near symmetric). Each joint
#: listed has its rest offset (from its parent) scaled by the segment's factor.
BONE_SEGMENTS: dict[str, tuple[int, ...]] = {
    "hips": (1, 2),
    "thigh": (4, 5),
    "shin": (7, 8),
    "foot": (10, 11),
    "spine": (3, 6, 9),
    "neck": (12, 13, 14),
    "head": (15,),
    "collar": (16, 17),
    "upper_arm": (18, 19),
    "forearm": (20, 21),
}
_LEG_JOINTS = (4, 7)  # thigh, shin of the left leg: the pelvis height follows them


def family_offsets(families: Sequence[str]) -> tuple[Tensor, Tensor]:
    """Wrist offsets (joint pose in the device frame) of calibration families, left hand's frame:
    rotations (N, 3, 3) and translations (N, 3). Left and right are mirror images in every family."""
    rs, ts = [], []
    for fam in families:
        off = Calibration.for_family(fam).left
        rs.append(torch.tensor(off.rotation, dtype=torch.float64))
        ts.append(torch.tensor(off.translation, dtype=torch.float64))
    return torch.stack(rs), torch.stack(ts)


def _inverse_times(r_true: Tensor, t_true: Tensor, r_assumed: Tensor, t_assumed: Tensor) -> tuple[Tensor, Tensor]:
    """``inverse(true) @ assumed`` of poses given as rotation (..., 3, 3) and translation (..., 3)."""
    rt = r_true.transpose(-1, -2)
    return rt @ r_assumed, (rt @ (t_assumed - t_true).unsqueeze(-1)).squeeze(-1)


def device_offset_errors(
    batch: int,
    families: Sequence[str],
    margin_m: float,
    rotation_deg: float,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Per window and hand, the error a family calibration leaves: rotations (B, 2, 3, 3) and
    translations (B, 2, 3) in the joint frame, to apply as ``joint @ error``.

    The importer assumes one of ``families`` (drawn uniformly); the hand's true offset lies anywhere
    in the box the families' translations span, widened by ``margin_m`` on each side, and is turned
    by a grip angle of ``rotation_deg`` (std, in the device frame). Left and right hands draw apart.
    """
    r_fam, t_fam = family_offsets(families)
    pick = torch.randint(0, len(families), (batch, 2), generator=generator)
    r_assumed, t_assumed = r_fam[pick], t_fam[pick]
    lo = t_fam.min(dim=0).values - margin_m
    hi = t_fam.max(dim=0).values + margin_m
    t_true = lo + (hi - lo) * torch.rand(batch, 2, 3, generator=generator, dtype=torch.float64)
    r_true = r_assumed
    if rotation_deg > 0:
        grip = torch.randn(batch, 2, 3, generator=generator, dtype=torch.float64) * math.radians(rotation_deg)
        r_true = trot.axis_angle_to_matrix(grip) @ r_assumed
    r_err, t_err = _inverse_times(r_true, t_true, r_assumed, t_assumed)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    # the right hand's offsets are the left's mirrored across x = 0 (in the device and joint frames)
    r_err = torch.stack([r_err[:, 0], mirror @ r_err[:, 1] @ mirror], dim=1)
    t_err = torch.stack([t_err[:, 0], t_err[:, 1] @ mirror], dim=1)
    return r_err, t_err


def headset_offset_errors(
    batch: int, offset_m: float, rotation_deg: float, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Per window, the head joint's error from a headset sitting differently than the calibration
    assumes: rotation (B, 3, 3) and translation (B, 3) in the joint frame. The true head offset is the
    assumed one moved by up to ``offset_m`` along each axis (uniform) and tilted by ``rotation_deg`` (std)."""
    assumed = Calibration().head
    r_a = torch.tensor(assumed.rotation, dtype=torch.float64).expand(batch, 3, 3)
    t_a = torch.tensor(assumed.translation, dtype=torch.float64).expand(batch, 3)
    t_true = t_a + (2.0 * torch.rand(batch, 3, generator=generator, dtype=torch.float64) - 1.0) * offset_m
    r_true = r_a
    if rotation_deg > 0:
        tilt = torch.randn(batch, 3, generator=generator, dtype=torch.float64) * math.radians(rotation_deg)
        r_true = trot.axis_angle_to_matrix(tilt) @ r_a
    return _inverse_times(r_true, t_true, r_a, t_a)


def apply_joint_errors(r: Tensor, p: Tensor, r_err: Tensor, t_err: Tensor) -> tuple[Tensor, Tensor]:
    """Tracked joints (B, F, D, 3, 3) / (B, F, D, 3) moved by constant errors (B, D, 3, 3) / (B, D, 3)
    given in each joint's own frame: ``joint @ error``."""
    r_e, t_e = r_err.to(r)[:, None], t_err.to(p)[:, None]
    return r @ r_e, p + (r @ t_e.unsqueeze(-1)).squeeze(-1)


def bone_factors(batch: int, std: float, generator: torch.Generator) -> Tensor:
    """Random per-segment length factors (B, len(BONE_SEGMENTS)): log-normal around 1 with ``std``."""
    return torch.exp(torch.randn(batch, len(BONE_SEGMENTS), generator=generator) * std)


def scale_bones(rest: Tensor, root: Tensor, factors: Tensor) -> tuple[Tensor, Tensor]:
    """Rest offsets (B, 22, 3) with each :data:`BONE_SEGMENTS` segment scaled by ``factors`` (B, S), and
    the root translations (B, F, 3) scaled about the origin by the leg's length change, so the pelvis
    stands as much higher (and strides as much longer) as the legs grew."""
    scale = torch.ones(rest.shape[:2], dtype=rest.dtype, device=rest.device)
    f = factors.to(rest)
    for k, joints in enumerate(BONE_SEGMENTS.values()):
        scale[:, list(joints)] = f[:, k : k + 1]
    new_rest = rest * scale[..., None]
    leg = list(_LEG_JOINTS)
    before = torch.linalg.vector_norm(rest[:, leg], dim=-1).sum(-1)
    after = torch.linalg.vector_norm(new_rest[:, leg], dim=-1).sum(-1)
    leg_scale = after / before.clamp_min(1e-9)
    pelvis = root + rest[:, None, 0]
    return new_rest, pelvis * leg_scale[:, None, None] - rest[:, None, 0]


def _slerp(q0: Tensor, q1: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation of unit quaternions (..., 4), ``t`` broadcast to (..., 1)."""
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    theta = torch.acos(dot)
    s = torch.sin(theta)
    small = s < 1e-6
    w0 = torch.where(small, 1.0 - t, torch.sin((1.0 - t) * theta) / torch.where(small, 1.0, s))
    w1 = torch.where(small, t, torch.sin(t * theta) / torch.where(small, 1.0, s))
    return trot.quat_normalize(w0 * q0 + w1 * q1)


def warp_source_length(frames: int, speed: float) -> int:
    """Source frames a window of ``frames`` needs at ``speed`` (times 0, speed, 2 speed, ...)."""
    return int(math.floor((frames - 1) * speed + 1e-9)) + 2


def time_warp(local: Tensor, root: Tensor, speed: float, frames: int) -> tuple[Tensor, Tensor]:
    """A stretch of motion (S, 22, 3, 3) / (S, 3) played at ``speed`` (1.2: 20 % faster), ``frames`` long:
    frame k is the source at time ``k * speed`` (slerp of local rotations, linear root)."""
    t = torch.arange(frames, dtype=torch.float64) * speed
    if float(t[-1]) > local.shape[0] - 1 + 1e-6:
        raise ValueError(f"a source of {local.shape[0]} frames is too short for {frames} frames at speed {speed}")
    i0 = torch.clamp(torch.floor(t + 1e-9).long(), max=local.shape[0] - 1)
    i1 = torch.clamp(i0 + 1, max=local.shape[0] - 1)
    a = (t - i0.to(t.dtype)).clamp(0.0, 1.0)
    q = trot.matrix_to_quat(local.double())
    qw = _slerp(q[i0], q[i1], a[:, None, None])
    rw = root.double()[i0] + (root.double()[i1] - root.double()[i0]) * a[:, None]
    return trot.quat_to_matrix(qw).to(local.dtype), rw.to(root.dtype)


def draw_speeds(batch: int, max_change: float, rng: np.random.Generator) -> NDArray[np.float64]:
    """Speed factors, uniform in ``[1 - max_change, 1 + max_change]``."""
    return rng.uniform(1.0 - max_change, 1.0 + max_change, size=batch)
