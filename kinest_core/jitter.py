# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a motion shakes: per-joint, per-frame jitter, a summary, and what a viewer draws.

Jitter is the evaluation metric's quantity (``kinest_core.metrics.jitter_per_joint``: the norm
of the third time difference of joint positions times fps^3, m/s^3), so what the Blender
panel shows is the number ``kinest evaluate`` reports. ``JITTER_UNIT`` (100 m/s^3) is the
metric's unit: values in it are the m/s^3 values / 100, the scale papers quote (the KineST
paper reports a mean of about 6 on AMASS).

The colour scale and the trail data live here (pure NumPy) so the add-on's viewport drawing
stays a thin loop over arrays that are tested without a GPU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.metrics import jitter_per_joint
from kinest_core.skeleton import JOINT_NAMES, NUM_JOINTS

Array = NDArray[np.float64]

#: The metric's unit in m/s^3 (jitter is reported in 100 m/s^3).
JITTER_UNIT = 100.0
#: Where the colour scale turns fully red, in the metric's unit. For scale: the KineST paper's mean
#: is about 6; the repository's three mocap fixtures (ground truth) measure 5 to 22 (a walk 19,
#: a run 22), their shakiest joints 8 to 48.
DEFAULT_SHAKY = 30.0


def joint_jitter(positions: NDArray, fps: float = 60.0) -> Array:
    """Jitter (frames, joints) in the metric's unit (100 m/s^3); see ``metrics.jitter_per_joint``."""
    return jitter_per_joint(positions, fps) / JITTER_UNIT


@dataclass
class JitterSummary:
    """Jitter of one motion in the metric's unit (100 m/s^3).

    - ``per_frame_joint``: (frames, 22), frame t from frames t-3..t (first three repeat frame 3)
    - ``mean``: over all joints and the frames with a full third difference (the metric)
    - ``per_joint``: (22,) mean per joint; ``per_frame``: (frames,) mean over joints
    - ``worst_joints``: joint indices, shakiest first; ``worst_frames``: frame indices (0-based,
      at least ``min_gap`` apart so that one shaky moment is not listed five times), shakiest first
    """

    per_frame_joint: Array
    mean: float
    per_joint: Array
    per_frame: Array
    worst_joints: list[int] = field(default_factory=list)
    worst_frames: list[int] = field(default_factory=list)

    @property
    def num_frames(self) -> int:
        return int(self.per_frame_joint.shape[0])

    def worst_joint_names(self) -> list[str]:
        return [JOINT_NAMES[j] for j in self.worst_joints]

    def as_dict(self) -> dict[str, Any]:
        """The summary figures (not the per-frame arrays) as JSON-ready values."""
        return {
            "mean": self.mean,
            "unit": "100 m/s^3",
            "worst_joints": [
                {"joint": int(j), "name": JOINT_NAMES[j], "mean": float(self.per_joint[j])} for j in self.worst_joints
            ],
            "worst_frames": [{"frame": int(f), "mean": float(self.per_frame[f])} for f in self.worst_frames],
        }


def _peaks(values: NDArray, count: int, min_gap: int) -> list[int]:
    """Indices of the ``count`` largest values, each at least ``min_gap`` from those picked before."""
    picked: list[int] = []
    for i in np.argsort(-np.asarray(values), kind="stable"):
        if len(picked) >= count:
            break
        if all(abs(int(i) - p) >= min_gap for p in picked):
            picked.append(int(i))
    return picked


def jitter_summary(
    positions: NDArray, fps: float = 60.0, top_joints: int = 3, top_frames: int = 5, min_gap: int | None = None
) -> JitterSummary:
    """Per-joint per-frame jitter of joint positions (frames, 22, 3) in metres, and its summary."""
    pfj = joint_jitter(positions, fps)
    f = pfj.shape[0]
    body = pfj[3:] if f >= 4 else pfj[:0]
    mean = float(body.mean()) if body.size else 0.0
    per_joint = body.mean(axis=0) if body.size else np.zeros(pfj.shape[1])
    per_frame = pfj.mean(axis=1) if f else np.zeros(0)
    gap = max(1, round(fps / 4)) if min_gap is None else max(1, min_gap)
    worst_frames = _peaks(per_frame, top_frames, gap) if f >= 4 else []
    worst_joints = [int(j) for j in np.argsort(-per_joint, kind="stable")[:top_joints]] if body.size else []
    return JitterSummary(pfj, mean, per_joint, per_frame, worst_joints, worst_frames)


def reduction_percent(before: float, after: float) -> float:
    """How much lower ``after`` is than ``before``, in percent (positive = less jitter)."""
    return 100.0 * (before - after) / before if before > 0 else 0.0


# Calm (teal) -> notable (yellow) -> shaking (red), as RGB in 0..1.
_STOPS = np.array([0.0, 0.5, 1.0])
_COLOURS = np.array([[0.10, 0.75, 0.65], [0.95, 0.85, 0.15], [0.90, 0.10, 0.10]])


def jitter_colors(values: NDArray, shaky: float = DEFAULT_SHAKY) -> Array:
    """RGB colours (..., 3) for jitter values in the metric's unit: calm 0 -> ``shaky`` and above red.

    The scale is a square root of value / shaky, so the calm range (most of a good take) still
    shows shades instead of one flat colour.
    """
    x = np.sqrt(np.clip(np.asarray(values, dtype=np.float64) / max(shaky, 1e-9), 0.0, 1.0))
    return np.stack([np.interp(x, _STOPS, _COLOURS[:, c]) for c in range(3)], axis=-1)


@dataclass
class TrailData:
    """Line segments for a viewport overlay: ``points`` (2 * segments, 3), ``colors`` (2 * segments, 4) RGBA."""

    points: NDArray[np.float32]
    colors: NDArray[np.float32]

    @property
    def num_segments(self) -> int:
        return int(self.points.shape[0] // 2)


def trail_segments(
    positions: NDArray,
    jitter: NDArray,
    frame: int,
    before: int = 30,
    after: int = 0,
    joints: tuple[int, ...] | list[int] | None = None,
    shaky: float = DEFAULT_SHAKY,
    matrix: NDArray | None = None,
) -> TrailData:
    """Joint trails around ``frame`` (0-based into the arrays) coloured by jitter, as line segments.

    ``positions`` (frames, 22, 3) m and ``jitter`` (frames, 22) in the metric's unit; the
    trail of each joint runs from ``frame - before`` to ``frame + after`` (clipped), each
    segment coloured by the jitter at its later end and fading out towards the old end.
    ``matrix`` (4, 4) moves the points into the world (the armature object's matrix).
    Frames outside the motion give no segments.
    """
    pos = np.asarray(positions, dtype=np.float64)
    jit = np.asarray(jitter, dtype=np.float64)
    f = pos.shape[0]
    sel = list(range(NUM_JOINTS if pos.shape[1] == NUM_JOINTS else pos.shape[1])) if joints is None else list(joints)
    lo, hi = max(0, frame - before), min(f - 1, frame + after)
    if f < 2 or hi <= lo or frame < 0 or frame >= f or not sel:
        return TrailData(np.zeros((0, 3), np.float32), np.zeros((0, 4), np.float32))
    p = pos[lo : hi + 1][:, sel]  # (n, J, 3)
    if matrix is not None:
        m = np.asarray(matrix, dtype=np.float64)
        p = p @ m[:3, :3].T + m[:3, 3]
    n = p.shape[0]
    a, b = p[:-1], p[1:]  # (n-1, J, 3)
    seg = np.stack([a, b], axis=2).transpose(1, 0, 2, 3).reshape(-1, 3)  # joint-major, segment pairs
    rgb = jitter_colors(jit[lo + 1 : hi + 1][:, sel], shaky)  # (n-1, J, 3) at each segment's later end
    age = np.abs(frame - np.arange(lo + 1, hi + 1)) / max(before, after, 1)  # 0 at the current frame
    alpha = np.clip(1.0 - 0.85 * age, 0.15, 1.0)[:, None].repeat(len(sel), axis=1)
    rgba = np.concatenate([rgb, alpha[..., None]], axis=-1)  # (n-1, J, 4)
    cols = np.repeat(rgba.transpose(1, 0, 2), 2, axis=1).reshape(-1, 4)
    assert seg.shape[0] == 2 * (n - 1) * len(sel)
    return TrailData(seg.astype(np.float32), cols.astype(np.float32))
