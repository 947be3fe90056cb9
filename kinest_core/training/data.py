# SPDX-License-Identifier: GPL-3.0-or-later
"""Training windows from converted motions: augmentation, simulated tracking, model inputs and targets.

Why it is built this way: the model only ever sees what a VR importer delivers - head
and wrist *joint* world transforms - so inputs are made from the ground truth's own FK
of those joints, then disturbed the way real recordings are (calibration offsets, jitter,
a controller lost or frozen for a while). Whole batches are built in torch at once, so
augmentation costs little next to the network.

Normalisation shared with inference (:func:`canonicalize_window`): each window is moved
horizontally so the head's mean x, y over the window is 0; heights stay absolute (floor at
z = 0). Targets are the 22 local rotations as 6D (joint 0 global); the root translation
is never predicted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, TypeVar

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from kinest_core import rotations as rot
from kinest_core import rotations_torch as trot
from kinest_core.features import (
    HEAD_POSITION,
    canonicalize_positions,
    canonicalize_positions_torch,
    tracking_features_torch,
)
from kinest_core.skeleton import HEAD, MIRROR_JOINTS, NUM_JOINTS, TRACKED_JOINTS, forward_kinematics_torch
from kinest_core.training.augment import (
    apply_joint_errors,
    bone_factors,
    device_offset_errors,
    draw_speeds,
    headset_offset_errors,
    scale_bones,
    time_warp,
    warp_source_length,
)
from kinest_core.types import Motion

WINDOW = 96
#: Calibration families whose wrist offsets ``AugmentConfig.device_families`` may name.
_OFFSET_FAMILIES = ("generic", "quest", "vive", "index")
ArrayOrTensor = TypeVar("ArrayOrTensor", NDArray[Any], Tensor)
_MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))  # left is +X: mirror across the x = 0 plane


def canonicalize_window(rotations: ArrayOrTensor, positions: ArrayOrTensor) -> ArrayOrTensor:
    """Move tracked positions (..., F, 3, 3) so the head's (device 0) mean x, y over the window is 0.

    The one normalisation training and inference share (it defers to
    :func:`kinest_core.features.canonicalize_positions`). ``rotations`` (..., F, 3, 3, 3)
    are unchanged (kept so a future heading normalisation does not change callers).
    NumPy or torch in, the same kind out.
    """
    del rotations
    if isinstance(positions, Tensor):
        return canonicalize_positions_torch(positions)
    return canonicalize_positions(positions)


@dataclass
class AugmentConfig:
    """Augmentation switches and sizes (probabilities per window; 0 turns a part off)."""

    yaw: bool = True  # random rotation about the vertical axis
    mirror: float = 0.5  # probability of a left/right mirror
    scale_range: tuple[float, float] = (0.85, 1.15)  # body size factor
    calib_position_m: float = 0.01  # constant per-window offset of each tracked joint (std)
    calib_rotation_deg: float = 3.0  # constant per-window rotation offset (std)
    # Per-frame noise (std). Real headset/controller tracking is smooth (median jitter of the
    # shared VR recordings 0.4-2 x 100 m/s^3, mocap joints 10-20): keep this small.
    jitter_position_m: float = 0.0005
    jitter_rotation_deg: float = 0.2
    drop_hand: float = 0.1  # probability per hand of a frozen stretch
    drop_max_frames: int = 48
    # Real devices and bodies (kinest_core.training.augment), all off unless set:
    # wrist offsets drawn within the box the calibration families' offsets span (e.g. ["generic",
    # "quest", "vive", "index"]), widened by device_margin_m, with a grip angle (std) per hand
    device_families: tuple[str, ...] = ()
    device_margin_m: float = 0.01
    device_rotation_deg: float = 0.0
    headset_offset_m: float = 0.0  # head joint moved up to this along each axis of the headset (uniform)
    headset_rotation_deg: float = 0.0  # headset tilt on the face (std)
    bone_length_std: float = 0.0  # per-segment bone length factor, log-normal std (limb proportions)
    time_warp: float = 0.0  # largest speed change (0.2: windows played at 0.8-1.2x)
    drop_min_frames: int = 4  # shortest frozen stretch of a dropped hand

    def __post_init__(self) -> None:
        self.device_families = tuple(self.device_families)
        for fam in self.device_families:
            if fam not in _OFFSET_FAMILIES:
                raise ValueError(f"augment device_families: unknown family {fam!r}; use {', '.join(_OFFSET_FAMILIES)}")
        if not 0.0 <= self.time_warp < 0.5:
            raise ValueError(f"augment time_warp must be in [0, 0.5) (0.2: +/- 20 % speed), got {self.time_warp}")
        if self.drop_hand > 0 and not 1 <= self.drop_min_frames <= self.drop_max_frames:
            raise ValueError(
                f"augment drop_min_frames must be in [1, drop_max_frames] (got {self.drop_min_frames}, "
                f"{self.drop_max_frames})"
            )
        for name in ("device_margin_m", "device_rotation_deg", "headset_offset_m", "headset_rotation_deg"):
            if getattr(self, name) < 0:
                raise ValueError(f"augment {name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.bone_length_std <= 0.3:
            raise ValueError(f"augment bone_length_std must be in [0, 0.3], got {self.bone_length_std}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AugmentConfig:
        known = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        if "scale_range" in known:
            known["scale_range"] = tuple(known["scale_range"])
        return cls(**known)

    @classmethod
    def none(cls) -> AugmentConfig:
        return cls(False, 0.0, (1.0, 1.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0)


@dataclass
class Batch:
    """Model input and targets for a batch of windows."""

    features: Tensor  # (B, F, 54)
    target: Tensor  # (B, F, 132) local 6D, joint 0 global
    rest_offsets: Tensor  # (B, 22, 3)
    positions: Tensor  # (B, F, 22, 3) ground-truth joints, canonicalised like the features
    local: Tensor  # (B, F, 22, 3, 3)

    def tracked_head_error(self) -> Tensor:
        """(B, F, 3) tracked head minus true head: the simulated tracking noise the body is placed by."""
        return self.features[..., HEAD_POSITION] - self.positions[..., HEAD, :]

    def tensors(self) -> tuple[Tensor, ...]:
        """The fields in order (what the constructor takes)."""
        return tuple(getattr(self, f.name) for f in fields(self))

    @staticmethod
    def cat(first: Batch, second: Batch) -> Batch:
        """The windows of both, first's then second's."""
        return Batch(*(torch.cat([a, b]) for a, b in zip(first.tensors(), second.tensors(), strict=True)))

    def to(self, device: torch.device | str) -> Batch:
        return Batch(*(t.to(device, non_blocking=True) for t in self.tensors()))


class MotionWindows:
    """All motions in memory as float32 tensors; samples random windows of ``window`` frames."""

    def __init__(self, motions: Sequence[Motion], window: int = WINDOW) -> None:
        self.window = window
        keep = [m for m in motions if m.num_frames >= window]
        if not keep:
            raise ValueError(f"no motion is at least {window} frames long ({len(motions)} given)")
        self.names = [str(m.info.get("source", i)) for i, m in enumerate(keep)]
        self.local = [torch.from_numpy(rot.quat_to_matrix(m.local_rotations).astype(np.float32)) for m in keep]
        self.root = [torch.from_numpy(m.root_translation.astype(np.float32)) for m in keep]
        self.rest = torch.from_numpy(np.stack([m.rest_offsets for m in keep]).astype(np.float32))
        self.lengths = np.array([m.num_frames for m in keep])
        starts = self.lengths - window + 1
        self.weights = starts / starts.sum()
        self.frames = int(self.lengths.sum())
        self.skipped = len(motions) - len(keep)

    def __len__(self) -> int:
        return len(self.local)

    def sample(
        self, batch: int, rng: np.random.Generator, length: int | None = None, time_warp: float = 0.0
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Random windows: local (B, F, 22, 3, 3), root (B, F, 3), rest (B, 22, 3).

        ``length`` (default: the window) may be longer, e.g. for two overlapping windows; motions
        shorter than it are skipped. ``time_warp`` > 0 plays each window at a random speed within
        ``1 +/- time_warp`` (:func:`kinest_core.training.augment.time_warp`; slower where a motion
        is too short for the speed drawn).
        """
        if time_warp > 0:
            return self._sample_warped(batch, rng, self.window if length is None else length, time_warp)
        n = self.window if length is None else length
        weights = self.weights
        if n != self.window:
            starts = np.maximum(self.lengths - n + 1, 0)
            if not starts.any():
                raise ValueError(f"no motion is {n} frames long (longest {int(self.lengths.max())})")
            weights = starts / starts.sum()
        idx = rng.choice(len(self.local), size=batch, p=weights)
        loc, root = [], []
        for i in idx:
            s = int(rng.integers(0, self.lengths[i] - n + 1))
            loc.append(self.local[i][s : s + n])
            root.append(self.root[i][s : s + n])
        return torch.stack(loc), torch.stack(root), self.rest[torch.from_numpy(idx)]

    def _sample_warped(
        self, batch: int, rng: np.random.Generator, n: int, max_change: float
    ) -> tuple[Tensor, Tensor, Tensor]:
        starts = np.maximum(self.lengths - n + 1, 0)
        if not starts.any():
            raise ValueError(f"no motion is {n} frames long (longest {int(self.lengths.max())})")
        idx = rng.choice(len(self.local), size=batch, p=starts / starts.sum())
        speeds = draw_speeds(batch, max_change, rng)
        loc, root = [], []
        for i, speed in zip(idx, speeds, strict=True):
            length = int(self.lengths[i])
            speed = min(float(speed), (length - 1) / max(n - 1, 1))  # a short motion plays slower
            src = min(warp_source_length(n, speed), length)
            s = int(rng.integers(0, length - src + 1))
            wl, wr = time_warp(self.local[i][s : s + src], self.root[i][s : s + src], speed, n)
            loc.append(wl)
            root.append(wr)
        return torch.stack(loc), torch.stack(root), self.rest[torch.from_numpy(idx)]


def protocol_windows(num_frames: int, window: int = WINDOW) -> list[int]:
    """Start frames of the evaluation windows: non-overlapping, the last re-aligned to end on the last frame."""
    if num_frames < window:
        return []
    starts = list(range(0, num_frames - window + 1, window))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    return starts


def protocol_seams(num_frames: int, window: int = WINDOW) -> list[int]:
    """Frames where a protocol prediction switches windows: each window's end (the re-aligned last
    window takes over where the one before it ends)."""
    starts = protocol_windows(num_frames, window)
    return [s + window for s in starts[:-1]]


def _rot_z(angle: Tensor) -> Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    z, o = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack([c, -s, z, s, c, z, z, z, o], dim=-1).reshape(angle.shape + (3, 3))


def augment_motion(
    local: Tensor,
    root: Tensor,
    rest: Tensor,
    config: AugmentConfig,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor, Tensor]:
    """Yaw, mirror, size and limb-proportion augmentation of whole bodies: returns new (local, root, rest)."""
    b = local.shape[0]
    dev, dt = local.device, local.dtype
    if config.mirror > 0:
        flip = torch.rand(b, generator=generator) < config.mirror
        if bool(flip.any()):
            m = _MIRROR.to(dev, dt)
            perm = list(MIRROR_JOINTS)
            ml = m @ local[:, :, perm] @ m
            mr = rest[:, perm] @ m
            mroot = root @ m
            f = flip.to(dev)
            local = torch.where(f[:, None, None, None, None], ml, local)
            rest = torch.where(f[:, None, None], mr, rest)
            root = torch.where(f[:, None, None], mroot, root)
    if config.yaw:
        rz = _rot_z(torch.rand(b, generator=generator) * (2 * math.pi)).to(dev, dt)
        local = local.clone()
        local[:, :, 0] = rz[:, None] @ local[:, :, 0]
        pelvis = root + rest[:, None, 0]
        root = (pelvis @ rz.transpose(-1, -2)) - rest[:, None, 0]
    lo, hi = config.scale_range
    if (lo, hi) != (1.0, 1.0):
        s = (lo + (hi - lo) * torch.rand(b, generator=generator)).to(dev, dt)
        rest = rest * s[:, None, None]
        root = root * s[:, None, None]
    if config.bone_length_std > 0:
        rest, root = scale_bones(rest, root, bone_factors(b, config.bone_length_std, generator).to(dev, dt))
    return local, root, rest


def _small_rotations(shape: tuple[int, ...], std_deg: float, generator: torch.Generator, like: Tensor) -> Tensor:
    aa = torch.randn(shape + (3,), generator=generator).to(like) * math.radians(std_deg)
    return trot.axis_angle_to_matrix(aa)


def simulate_tracking(
    glob: Tensor,
    pos: Tensor,
    config: AugmentConfig,
    generator: torch.Generator | None,
) -> tuple[Tensor, Tensor]:
    """Tracked joints from FK (B, F, 22, ...) -> rotations (B, F, 3, 3, 3), positions (B, F, 3, 3), disturbed."""
    r = glob[:, :, list(TRACKED_JOINTS)]
    p = pos[:, :, list(TRACKED_JOINTS)]
    if generator is None:
        return r, p
    b, f = r.shape[:2]
    if config.headset_offset_m > 0 or config.headset_rotation_deg > 0:
        hr, ht = headset_offset_errors(b, config.headset_offset_m, config.headset_rotation_deg, generator)
        head_r, head_p = apply_joint_errors(r[:, :, :1], p[:, :, :1], hr[:, None], ht[:, None])
        r, p = torch.cat([head_r, r[:, :, 1:]], dim=2), torch.cat([head_p, p[:, :, 1:]], dim=2)
    if config.device_families:
        wr, wt = device_offset_errors(
            b, config.device_families, config.device_margin_m, config.device_rotation_deg, generator
        )
        hand_r, hand_p = apply_joint_errors(r[:, :, 1:], p[:, :, 1:], wr, wt)
        r, p = torch.cat([r[:, :, :1], hand_r], dim=2), torch.cat([p[:, :, :1], hand_p], dim=2)
    if config.calib_rotation_deg > 0:
        r = r @ _small_rotations((b, 1, 3), config.calib_rotation_deg, generator, r)
    if config.jitter_rotation_deg > 0:
        r = r @ _small_rotations((b, f, 3), config.jitter_rotation_deg, generator, r)
    if config.calib_position_m > 0:
        p = p + torch.randn(b, 1, 3, 3, generator=generator).to(p) * config.calib_position_m
    if config.jitter_position_m > 0:
        p = p + torch.randn(b, f, 3, 3, generator=generator).to(p) * config.jitter_position_m
    if config.drop_hand > 0 and config.drop_max_frames > 0:
        r, p = r.clone(), p.clone()
        for i in range(b):
            for dev in (1, 2):
                if float(torch.rand(1, generator=generator)) >= config.drop_hand:
                    continue
                n = int(torch.randint(config.drop_min_frames, config.drop_max_frames + 1, (1,), generator=generator))
                a = int(torch.randint(0, max(1, f - n), (1,), generator=generator))
                hold = max(a - 1, 0)  # a lost controller: the reader holds the last good pose
                r[i, a : a + n, dev] = r[i, hold, dev]
                p[i, a : a + n, dev] = p[i, hold, dev]
    return r, p


def make_batch(
    local: Tensor,
    root: Tensor,
    rest: Tensor,
    config: AugmentConfig | None = None,
    generator: torch.Generator | None = None,
) -> Batch:
    """Whole-body windows -> model features and targets (augmented when a generator is given)."""
    local, rest, r, p, pos = _simulate(local, root, rest, config, generator)
    return _window_batch(local, rest, r, p, pos)


def make_overlapping_batches(
    local: Tensor,
    root: Tensor,
    rest: Tensor,
    window: int,
    offset: int,
    config: AugmentConfig | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Batch, Batch]:
    """Long windows (B, window + offset, ...) -> the windows starting at frame 0 and at ``offset``.

    They are cut after augmentation and simulated tracking, so the two see the same body, motion and
    tracking noise on the frames they share; each is then normalised like any window. For the
    window-consistency loss: one frame should get the same pose whichever window it falls in.
    """
    if not 0 < offset < window or local.shape[1] != window + offset:
        raise ValueError(f"need 0 < offset < {window} and windows of {window} + offset frames")
    local, rest, r, p, pos = _simulate(local, root, rest, config, generator)
    a, b = slice(0, window), slice(offset, offset + window)
    return (
        _window_batch(local[:, a], rest, r[:, a], p[:, a], pos[:, a]),
        _window_batch(local[:, b], rest, r[:, b], p[:, b], pos[:, b]),
    )


def _simulate(
    local: Tensor, root: Tensor, rest: Tensor, config: AugmentConfig | None, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Augmented bodies, FK and simulated tracking: (local, rest, tracked rot, tracked pos, joint positions)."""
    cfg = config or AugmentConfig.none()
    if generator is not None:
        local, root, rest = augment_motion(local, root, rest, cfg, generator)
    b, f = local.shape[:2]
    glob, pos = forward_kinematics_torch(local, rest[:, None].expand(b, f, NUM_JOINTS, 3), root)
    r, p = simulate_tracking(glob, pos, cfg, generator)
    return local, rest, r, p, pos


def _window_batch(local: Tensor, rest: Tensor, r: Tensor, p: Tensor, pos: Tensor) -> Batch:
    """One normalised window per row: features of the tracked joints, targets, ground-truth joints."""
    b, f = local.shape[:2]
    canon = canonicalize_window(r, p)
    pos = pos + (canon[:, :1, :1] - p[:, :1, :1])  # the same horizontal shift moves the ground truth
    feats = tracking_features_torch(r, canon)
    target = trot.matrix_to_6d(local).reshape(b, f, NUM_JOINTS * 6)
    return Batch(feats, target, rest, pos, local)


def tracked_joints(motion: Motion) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Head and wrist world rotations (F, 3, 3, 3) and positions (F, 3, 3) of a motion, by FK."""
    loc = torch.from_numpy(rot.quat_to_matrix(motion.local_rotations))
    glob, pos = forward_kinematics_torch(
        loc, torch.from_numpy(motion.rest_offsets), torch.from_numpy(motion.root_translation)
    )
    return glob[:, list(TRACKED_JOINTS)].numpy(), pos[:, list(TRACKED_JOINTS)].numpy()


def window_features(
    tracked_rot: NDArray, tracked_pos: NDArray, start: int, window: int = WINDOW
) -> NDArray[np.float32]:
    """Features of one window: positions canonicalised within the window, then the 54 numbers."""
    r = torch.from_numpy(np.asarray(tracked_rot[start : start + window], dtype=np.float64))
    p = canonicalize_window(r, torch.from_numpy(np.asarray(tracked_pos[start : start + window], dtype=np.float64)))
    return tracking_features_torch(r, p).numpy().astype(np.float32)
