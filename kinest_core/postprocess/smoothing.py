# SPDX-License-Identifier: GPL-3.0-or-later
"""An optional smoothing pass against shaking, with strength per body part and numbers to show for it.

Why on rotations: the motion is joint rotations on a fixed skeleton, so filtering them keeps
bone lengths exact (filtering positions would not). Quaternions are made sign-continuous
before the filter (q and -q are one rotation, but a filter averages numbers) and
renormalised after it. Two filters:

- ``savgol`` (default, offline): a Savitzky-Golay fit (cubic) over a window that grows with
  the strength (up to ``max_window_s``); no lag, keeps the peaks of fast swings.
- ``one_euro``: the One Euro filter run forwards and backwards (zero lag); it smooths slow
  motion strongly and fast motion little, so swings stay sharp.

The root is then placed so that the head lands on the original head path smoothed with the
head's strength: the body stays on the tracked head (within millimetres for small
strengths) instead of drifting, and the root does not inherit the shake the filter removed.
A motion whose feet were planted (``info["plant_feet"]``, with its ``contacts``) is planted again
after the filter, with the same spans and options, so smoothing never unlocks a foot.
With head strength 0 the head keeps its path exactly, so any shake in that path (a noisy
headset) moves the whole body: give the head some strength when the head itself shakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.signal import savgol_filter

from kinest_core import rotations as rot
from kinest_core.jitter import JitterSummary, jitter_summary, reduction_percent
from kinest_core.postprocess.foot_planting import plant_feet, planting_options
from kinest_core.skeleton import HEAD, NUM_JOINTS, forward_kinematics
from kinest_core.types import Motion

Array = NDArray[np.float64]

#: Joints per body part (the pelvis goes with the spine; collars with the arms).
BODY_PARTS: dict[str, tuple[int, ...]] = {
    "legs": (1, 2, 4, 5, 7, 8, 10, 11),
    "spine": (0, 3, 6, 9),
    "arms": (13, 14, 16, 17, 18, 19, 20, 21),
    "head": (12, 15),
}
METHODS = ("savgol", "one_euro")
DEFAULT_STRENGTHS: dict[str, float] = {"legs": 0.5, "spine": 0.5, "arms": 0.3, "head": 0.3}


@dataclass
class SmoothingOptions:
    """Filter choice and strengths (0 = off, 1 = strongest) per body part in ``BODY_PARTS``."""

    method: str = "savgol"
    strengths: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STRENGTHS))
    max_window_s: float = 0.5

    @classmethod
    def uniform(cls, strength: float, method: str = "savgol") -> SmoothingOptions:
        return cls(method=method, strengths=dict.fromkeys(BODY_PARTS, float(strength)))

    def check(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown smoothing method {self.method!r}; use one of {', '.join(METHODS)}")
        unknown = set(self.strengths) - set(BODY_PARTS)
        if unknown:
            raise ValueError(f"unknown body part(s) {', '.join(sorted(unknown))}; use {', '.join(BODY_PARTS)}")
        for part, s in self.strengths.items():
            if not 0.0 <= s <= 1.0:
                raise ValueError(f"smoothing strength for {part} is {s}; it must lie in 0..1")

    def joint_strengths(self) -> Array:
        """Strength per joint (22,)."""
        out = np.zeros(NUM_JOINTS)
        for part, joints in BODY_PARTS.items():
            out[list(joints)] = self.strengths.get(part, 0.0)
        return out


@dataclass
class SmoothingResult:
    """The smoothed motion and jitter before and after (metric unit, 100 m/s^3)."""

    motion: Motion
    before: JitterSummary
    after: JitterSummary
    head_shift_max_m: float  # how far the head moved from where it was at most
    joint_shift_mean_m: float = 0.0  # how far joints moved on average (how much the motion changed)

    @property
    def reduction_percent(self) -> float:
        return reduction_percent(self.before.mean, self.after.mean)

    def as_dict(self) -> dict[str, Any]:
        return {
            "jitter_before": self.before.mean,
            "jitter_after": self.after.mean,
            "reduction_percent": self.reduction_percent,
            "head_shift_max_m": self.head_shift_max_m,
            "joint_shift_mean_m": self.joint_shift_mean_m,
        }


def _window(strength: float, fps: float, max_window_s: float, frames: int, polyorder: int) -> int:
    """Odd Savitzky-Golay window for a strength; 0 when too short to filter."""
    if strength <= 0:
        return 0
    w = int(round(strength * max_window_s * fps))
    w = max(w, polyorder + 2)
    w = min(w, frames if frames % 2 else frames - 1)
    if w % 2 == 0:
        w -= 1
    return w if w > polyorder else 0


def _one_euro(x: Array, fps: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> Array:
    """One Euro filter along axis 0 of ``x`` (frames, ...), forward only."""

    def alpha(cutoff: Array | float) -> Array:
        tau = 1.0 / (2 * np.pi * np.asarray(cutoff))
        return 1.0 / (1.0 + tau * fps)

    out = np.empty_like(x)
    out[0] = x[0]
    dx = np.zeros_like(x[0])
    a_d = alpha(d_cutoff)
    for t in range(1, x.shape[0]):
        raw_dx = (x[t] - out[t - 1]) * fps
        dx = dx + a_d * (raw_dx - dx)
        speed = np.linalg.norm(dx, axis=-1, keepdims=True)
        a = alpha(min_cutoff + beta * speed)
        out[t] = out[t - 1] + a * (x[t] - out[t - 1])
    return out


def _filter(x: Array, strength: float, opts: SmoothingOptions, fps: float) -> Array:
    """Smooth ``x`` (frames, joints, dims) along time with one strength."""
    f = x.shape[0]
    if opts.method == "savgol":
        w = _window(strength, fps, opts.max_window_s, f, 3)
        return savgol_filter(x, w, 3, axis=0, mode="interp") if w else x
    if strength <= 0 or f < 3:
        return x
    # strength 0 -> 10 Hz cutoff (hardly any change), 1 -> 0.5 Hz at rest; beta lets fast motion through
    min_cutoff = 10.0 * (0.05 ** float(strength))
    beta = 0.5
    fwd = _one_euro(x, fps, min_cutoff, beta)
    return _one_euro(fwd[::-1], fps, min_cutoff, beta)[::-1].copy()


def smooth_quaternions(quats: NDArray, strengths: NDArray, opts: SmoothingOptions, fps: float) -> Array:
    """Smooth (frames, joints, 4) wxyz quaternions, each joint with its strength; unit, sign-continuous output."""
    q = rot.quat_make_continuous(np.asarray(quats, dtype=np.float64), axis=0)
    out = q.copy()
    s = np.asarray(strengths, dtype=np.float64)
    for value in np.unique(s):
        if value <= 0:
            continue
        idx = np.flatnonzero(s == value)
        out[:, idx] = _filter(q[:, idx], float(value), opts, fps)
    out = rot.quat_normalize(out)
    return rot.quat_make_continuous(out, axis=0)


def smooth_motion(motion: Motion, options: SmoothingOptions | None = None) -> SmoothingResult:
    """A smoothed copy of ``motion`` and its jitter before and after (the input is not changed)."""
    opts = options or SmoothingOptions()
    opts.check()
    fps = float(motion.fps)
    local_q = smooth_quaternions(motion.local_rotations, opts.joint_strengths(), opts, fps)
    local = rot.quat_to_matrix(local_q)
    _, fk = forward_kinematics(local, motion.rest_offsets)
    head_before = np.asarray(motion.joint_positions, dtype=np.float64)[:, HEAD]
    head_target = _filter(head_before[:, None, :], opts.strengths.get("head", 0.0), opts, fps)[:, 0]
    root = head_target - fk[:, HEAD]
    positions = fk + root[:, None, :]
    info = dict(motion.info)
    info["smoothing"] = {"method": opts.method, "strengths": dict(opts.strengths)}
    out = Motion(
        local_rotations=local_q,
        root_translation=root,
        joint_positions=positions,
        rest_offsets=np.array(motion.rest_offsets, dtype=np.float64, copy=True),
        fps=fps,
        info=info,
        contacts=motion.contacts,
    )
    planted = motion.info.get("plant_feet")
    if planted and motion.contacts is not None:
        # The filter moves the legs too: plant again in the same spans, so locked feet stay locked.
        out = plant_feet(out, options=planting_options(planted))
        info, positions = out.info, out.joint_positions
    before = jitter_summary(motion.joint_positions, fps)
    after = jitter_summary(positions, fps)
    moved = np.linalg.norm(positions - np.asarray(motion.joint_positions, dtype=np.float64), axis=-1)
    shift = float(moved[:, HEAD].max()) if len(positions) else 0.0
    info["smoothing"].update(jitter_before=before.mean, jitter_after=after.mean)
    return SmoothingResult(out, before, after, shift, float(moved.mean()) if moved.size else 0.0)
