# SPDX-License-Identifier: GPL-3.0-or-later
"""Motion-tracking metrics of the AGRoL / AvatarPoser protocol, plus foot skating and ground penetration.

Why one module: training validation, ``kinest evaluate`` and the Blender jitter view must
measure the same thing. Conventions (the protocol's):

- positions come from forward kinematics on the ground truth's own skeleton, the
  prediction placed so that its head joint lands on the ground-truth head;
- ``mpjre_deg``: mean absolute difference of the local axis-angle vectors' components,
  wrapped to [-180, 180) degrees, over all 22 joints (as AGRoL computes it);
- ``mpjpe_cm`` and the hand/upper/lower/root variants: mean joint distance (cm);
- ``mpjve_cms``: mean norm of the velocity difference (cm/s);
- ``jitter``/``gt_jitter``: mean norm of the third time difference of positions times
  fps^3, divided by 100 (so in 100 m/s^3);
- ``foot_skate_cm``: mean horizontal travel (cm per frame at 60 fps) of the foot joints
  (ankles and feet) between frames where that joint is within ``CONTACT_HEIGHT`` of the floor;
- ``ground_penetration_cm``: mean over frames of how far the lowest joint is below z = 0 (cm).

Where a prediction is stitched from windows (``seams``: the frames where a new window's output
starts), ``jitter_seams`` and ``jitter_interior`` split ``jitter`` into the third differences that
straddle a seam and the rest, so that shake inside windows and jumps between them can be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from kinest_core import rotations as rot
from kinest_core.skeleton import HAND_JOINTS, HEAD, LOWER_BODY_JOINTS, UPPER_BODY_JOINTS, forward_kinematics

Array = NDArray[np.float64]

METRIC_KEYS: tuple[str, ...] = (
    "mpjre_deg",
    "mpjpe_cm",
    "hand_pe_cm",
    "upper_pe_cm",
    "lower_pe_cm",
    "root_pe_cm",
    "mpjve_cms",
    "jitter",
    "gt_jitter",
    "foot_skate_cm",
    "ground_penetration_cm",
)
#: Keys present only when :meth:`MetricAccumulator.add` is given window seams.
SEAM_KEYS: tuple[str, ...] = ("jitter_seams", "jitter_interior")
FOOT_JOINTS: tuple[int, ...] = (7, 8, 10, 11)
#: A foot joint this close to the floor (m) counts as in contact.
CONTACT_HEIGHT = 0.05


def place_by_head(pred_positions: NDArray, gt_positions: NDArray) -> Array:
    """Translate predicted joints (F, 22, 3) per frame so the head matches the ground truth's head."""
    p = np.asarray(pred_positions, dtype=np.float64)
    g = np.asarray(gt_positions, dtype=np.float64)
    return p + (g[..., HEAD : HEAD + 1, :] - p[..., HEAD : HEAD + 1, :])


def jitter_per_joint(positions: NDArray, fps: float = 60.0) -> Array:
    """Per frame and joint: norm of the third difference of positions * fps^3 (m/s^3), shape (F, J).

    Frame t holds the difference of frames t-3..t; the first three frames repeat frame 3
    (zeros for clips shorter than 4 frames). For showing where a motion shakes.
    """
    p = np.asarray(positions, dtype=np.float64)
    f = p.shape[0]
    out = np.zeros(p.shape[:-1])
    if f < 4:
        return out
    d3 = p[3:] - 3 * p[2:-1] + 3 * p[1:-2] - p[:-3]
    out[3:] = np.linalg.norm(d3, axis=-1) * fps**3
    out[:3] = out[3]
    return out


def foot_skate(positions: NDArray, fps: float = 60.0, contact_height: float = CONTACT_HEIGHT) -> tuple[float, int]:
    """(summed horizontal travel in cm per 60 fps frame, number of contact steps) for the foot joints."""
    p = np.asarray(positions, dtype=np.float64)[:, FOOT_JOINTS]
    if p.shape[0] < 2:
        return 0.0, 0
    contact = p[..., 2] < contact_height
    both = contact[1:] & contact[:-1]
    travel = np.linalg.norm(p[1:, :, :2] - p[:-1, :, :2], axis=-1) * (fps / 60.0) * 100.0
    return float(travel[both].sum()), int(both.sum())


def seam_frames(num_frames: int, seams: Sequence[int]) -> NDArray[np.bool_]:
    """(F,) True where a frame's third difference (frames t-3..t) spans a seam s (t-3 < s <= t)."""
    out = np.zeros(num_frames, dtype=bool)
    for s in seams:
        if 0 < s < num_frames:
            out[s : s + 3] = True
    return out


def _wrap_deg(a: Array) -> Array:
    return (a + 180.0) % 360.0 - 180.0


@dataclass
class MetricAccumulator:
    """Sums and counts per metric, so metrics of many sequences combine frame-weighted."""

    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(METRIC_KEYS + SEAM_KEYS, 0.0))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(METRIC_KEYS + SEAM_KEYS, 0))
    seams_given: bool = False
    frames: int = 0

    def add(
        self,
        pred_local: NDArray,
        gt_local: NDArray,
        rest_offsets: NDArray,
        gt_positions: NDArray | None = None,
        gt_root_translation: NDArray | None = None,
        fps: float = 60.0,
        seams: Sequence[int] | None = None,
    ) -> None:
        """Add one sequence: local rotation matrices (F, 22, 3, 3) of prediction and ground truth.

        ``seams``: frames where the prediction switches to another window (for the seam/interior split).
        """
        pred_local = np.asarray(pred_local, dtype=np.float64)
        gt_local = np.asarray(gt_local, dtype=np.float64)
        f = pred_local.shape[0]
        if gt_positions is None:
            gt_positions = forward_kinematics(gt_local, rest_offsets, gt_root_translation)[1]
        gt = np.asarray(gt_positions, dtype=np.float64)
        pred = place_by_head(forward_kinematics(pred_local, rest_offsets)[1], gt)
        self.frames += f

        def put(key: str, values: NDArray) -> None:
            self.sums[key] += float(np.sum(values))
            self.counts[key] += int(np.size(values))

        aa_p = np.degrees(rot.matrix_to_axis_angle(pred_local))
        aa_g = np.degrees(rot.matrix_to_axis_angle(gt_local))
        put("mpjre_deg", np.abs(_wrap_deg(aa_p - aa_g)))
        err = np.linalg.norm(pred - gt, axis=-1) * 100.0
        put("mpjpe_cm", err)
        put("hand_pe_cm", err[:, list(HAND_JOINTS)])
        put("upper_pe_cm", err[:, list(UPPER_BODY_JOINTS)])
        put("lower_pe_cm", err[:, list(LOWER_BODY_JOINTS)])
        put("root_pe_cm", err[:, 0])
        if f >= 2:
            put("mpjve_cms", np.linalg.norm(np.diff(pred, axis=0) - np.diff(gt, axis=0), axis=-1) * fps * 100.0)
        if f >= 4:
            jit = jitter_per_joint(pred, fps)[3:] / 100.0
            put("jitter", jit)
            put("gt_jitter", jitter_per_joint(gt, fps)[3:] / 100.0)
            if seams is not None:
                self.seams_given = True
                at = seam_frames(f, seams)[3:]
                put("jitter_seams", jit[at])
                put("jitter_interior", jit[~at])
        s, n = foot_skate(pred, fps)
        self.sums["foot_skate_cm"] += s
        self.counts["foot_skate_cm"] += n
        put("ground_penetration_cm", np.maximum(0.0, -pred[..., 2].min(axis=-1)) * 100.0)

    def merge(self, other: MetricAccumulator) -> None:
        for k in METRIC_KEYS + SEAM_KEYS:
            self.sums[k] += other.sums[k]
            self.counts[k] += other.counts[k]
        self.frames += other.frames
        self.seams_given = self.seams_given or other.seams_given

    def result(self) -> dict[str, float | int]:
        """The metrics (keys :data:`METRIC_KEYS` and ``frames``); 0.0 where nothing was counted."""
        out: dict[str, float | int] = {
            k: (self.sums[k] / self.counts[k] if self.counts[k] else 0.0) for k in METRIC_KEYS
        }
        if self.seams_given:
            for k in SEAM_KEYS:
                out[k] = self.sums[k] / self.counts[k] if self.counts[k] else 0.0
        out["frames"] = self.frames
        return out


def compute_metrics(
    pred_local: NDArray,
    gt_local: NDArray,
    rest_offsets: NDArray,
    gt_root_translation: NDArray | None = None,
    fps: float = 60.0,
) -> dict[str, float | int]:
    """All metrics of one sequence (see the module doc); rotations are (F, 22, 3, 3) local matrices."""
    acc = MetricAccumulator()
    acc.add(pred_local, gt_local, rest_offsets, gt_root_translation=gt_root_translation, fps=fps)
    return acc.result()
