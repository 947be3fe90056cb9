# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot contacts: labels from full-body motion, detection on a predicted motion, and their scores.

Why one module: training labels, the contacts the foot-locking pass uses when a checkpoint has
no contact output, and the figures ``kinest evaluate`` reports must agree on what "in contact"
means. All heights are metres above the floor (z = 0 unless told), positions Z-up, per
60 fps frame travel (other rates are scaled to it).

The rule (per joint, ankle and toe of each foot): a joint is in contact in frame t when

- its height is within ``CONTACT_HEIGHT`` (5 cm) of its own 2nd-percentile height in the take
  (the take's floor for that joint, so a floor a few centimetres off or a thick sole does not
  matter), and
- its horizontal travel into frame t (``|p_t - p_{t-1}|`` in x, y; frame 0 takes frame 1's)
  is under ``CONTACT_TRAVEL`` (1 cm per 60 fps frame, 0.6 m/s).

A foot is in contact where its ankle or its toe joint is. :func:`contact_truth` is this rule
as it stands (what contacts are scored against); :func:`contact_labels` adds hysteresis for
training and for planting: a span starts only where the strict rule holds and lasts while a
looser one (``STAY_HEIGHT``, ``STAY_TRAVEL``) does, then gaps of under ``MIN_GAP`` frames are
closed and spans of under ``MIN_SPAN`` frames dropped, so short blips neither start nor end a
span. :func:`detect_contacts` runs the same labelling on a predicted motion with thresholds of
its own (:data:`DETECTION`), chosen on a validation split of the training subjects.

Metrics (keys of :meth:`ContactAccumulator.result`):

- ``foot_slide_cm``: mean horizontal travel (cm per 60 fps frame) of the ankle and toe joints
  of a motion over the frames where the ground truth has that joint in contact;
- ``contact_precision``, ``contact_recall``, ``contact_f1``: per foot and frame, predicted
  contact against :func:`contact_truth`, pooled over both feet and all frames;
  ``contact_f1_always``: the F1 of a predictor that always says "in contact";
- ``floor_gap_cm``: median, over the foot-frames a motion's contacts mark, of the height of
  that foot's lowest joint above where it rests when the body stands on the floor (its height
  in the skeleton's rest pose, :func:`standing_heights`): 0 when the sole is on the floor.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.skeleton import NUM_JOINTS, forward_kinematics
from kinest_core.types import Motion

Array = NDArray[np.float64]
Mask = NDArray[np.bool_]

__all__ = [
    "CONTACT_HEIGHT",
    "CONTACT_TRAVEL",
    "DETECTION",
    "FOOT_CONTACT_JOINTS",
    "ContactAccumulator",
    "ContactThresholds",
    "ProbabilityThresholds",
    "contact_labels",
    "contact_spans",
    "contact_truth",
    "contacts_from_probabilities",
    "detect_contacts",
    "floor_gaps",
    "foot_slide",
    "horizontal_travel",
    "joint_contacts",
    "motion_contacts",
    "standing_heights",
]

#: (ankle, toe) joints of the left and the right foot.
FOOT_CONTACT_JOINTS: tuple[tuple[int, int], tuple[int, int]] = ((7, 10), (8, 11))
CONTACT_HEIGHT = 0.05  # m above the joint's 2nd-percentile height in the take
CONTACT_TRAVEL = 0.01  # m of horizontal travel per 60 fps frame
HEIGHT_PERCENTILE = 2.0
STAY_HEIGHT = 0.06  # a started span lasts while the joint stays this low ...
STAY_TRAVEL = 0.015  # ... and this slow
MIN_GAP = 4  # frames: shorter breaks inside a span are closed
MIN_SPAN = 4  # frames: shorter spans are dropped


@dataclass(frozen=True)
class ContactThresholds:
    """Thresholds of the labelling (metres, metres per 60 fps frame, frames); see the module doc."""

    height: float = CONTACT_HEIGHT
    travel: float = CONTACT_TRAVEL
    stay_height: float = STAY_HEIGHT
    stay_travel: float = STAY_TRAVEL
    min_gap: int = MIN_GAP
    min_span: int = MIN_SPAN
    percentile: float = HEIGHT_PERCENTILE


#: Thresholds for contacts detected on a predicted motion, chosen on validation subjects of the
#: training data (CMU 08 and 14): the lowest foot slide after planting among the settings with
#: contact precision >= 0.9 and MPJPE no worse than unplanted (docs/feet.md). A predicted foot
#: moves up and down with the whole body's errors, so its height says little and its speed much.
DETECTION = ContactThresholds(height=0.03, travel=0.008, stay_height=0.036, stay_travel=0.012, min_gap=4, min_span=4)


def standing_heights(rest_offsets: NDArray) -> Array:
    """(22,) height of every joint above the floor when the body stands in its rest pose (m)."""
    _, pos = forward_kinematics(np.tile(np.eye(3), (NUM_JOINTS, 1, 1)), np.asarray(rest_offsets, dtype=np.float64))
    return pos[:, 2]


def horizontal_travel(positions: NDArray, fps: float = 60.0) -> Array:
    """(F, J) horizontal distance (m) each joint moved into each frame, scaled to a 60 fps frame."""
    p = np.asarray(positions, dtype=np.float64)
    f = p.shape[0]
    out = np.zeros(p.shape[:-1])
    if f < 2:
        return out
    out[1:] = np.linalg.norm(p[1:, ..., :2] - p[:-1, ..., :2], axis=-1) * (fps / 60.0)
    out[0] = out[1]
    return out


def joint_contacts(
    positions: NDArray,
    fps: float = 60.0,
    height: float = CONTACT_HEIGHT,
    travel: float = CONTACT_TRAVEL,
    percentile: float = HEIGHT_PERCENTILE,
) -> NDArray[np.bool_]:
    """(F, 2, 2) the rule of the module doc per foot (left, right) and joint (ankle, toe)."""
    p = np.asarray(positions, dtype=np.float64)[:, [j for foot in FOOT_CONTACT_JOINTS for j in foot]]
    p = p.reshape(p.shape[0], 2, 2, 3)
    if p.shape[0] == 0:
        return np.zeros((0, 2, 2), dtype=bool)
    z = p[..., 2]
    low = z <= np.percentile(z, percentile, axis=0) + height
    still = horizontal_travel(p, fps) < travel
    return low & still


def contact_truth(positions: NDArray, fps: float = 60.0) -> NDArray[np.bool_]:
    """(F, 2) per foot: its ankle or its toe joint is in contact by the rule (no hysteresis)."""
    return joint_contacts(positions, fps).any(axis=-1)


def _runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) of every run of True in a 1-D mask."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(m[1:] != m[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def contact_spans(contacts: NDArray) -> list[list[tuple[int, int]]]:
    """Per foot, the [start, end) frame spans of a (F, 2) contact mask."""
    c = np.asarray(contacts, dtype=bool)
    return [_runs(c[:, foot]) for foot in range(c.shape[1])]


def _hysteresis(enter: NDArray[np.bool_], stay: NDArray[np.bool_]) -> NDArray[np.bool_]:
    """Runs of ``stay`` that hold at least one ``enter`` frame (1-D)."""
    out = np.zeros_like(stay)
    for a, b in _runs(stay | enter):
        if enter[a:b].any():
            out[a:b] = True
    return out


def _clean(mask: NDArray[np.bool_], min_gap: int, min_span: int) -> NDArray[np.bool_]:
    """Close gaps shorter than ``min_gap`` between spans, then drop spans shorter than ``min_span``."""
    out = mask.copy()
    runs = _runs(out)
    for (_, b), (a2, _) in zip(runs[:-1], runs[1:], strict=True):
        if a2 - b < min_gap:
            out[b:a2] = True
    for a, b in _runs(out):
        if b - a < min_span:
            out[a:b] = False
    return out


def contact_labels(
    positions: NDArray, fps: float = 60.0, thresholds: ContactThresholds | None = None
) -> NDArray[np.bool_]:
    """(F, 2) per-foot contact spans with hysteresis (module doc), from joint positions (F, 22, 3)."""
    t = thresholds or ContactThresholds()
    p = np.asarray(positions, dtype=np.float64)
    f = p.shape[0]
    enter = joint_contacts(p, fps, t.height, t.travel, t.percentile)
    stay = joint_contacts(p, fps, t.stay_height, t.stay_travel, t.percentile)
    out = np.zeros((f, 2), dtype=bool)
    for foot in range(2):
        per_joint = [_hysteresis(enter[:, foot, j], stay[:, foot, j]) for j in range(2)]
        out[:, foot] = _clean(per_joint[0] | per_joint[1], t.min_gap, t.min_span)
    return out


def detect_contacts(
    positions: NDArray, fps: float = 60.0, thresholds: ContactThresholds = DETECTION
) -> NDArray[np.bool_]:
    """(F, 2) contacts read off a predicted motion's joints, for checkpoints without a contact output."""
    return contact_labels(positions, fps, thresholds)


@dataclass(frozen=True)
class ProbabilityThresholds:
    """How a network's per-frame contact probabilities become spans: a span starts where the
    probability reaches ``on`` and lasts while it stays above ``off``; gaps and spans are then
    cleaned as in :func:`contact_labels`."""

    on: float = 0.5
    off: float = 0.35
    min_gap: int = MIN_GAP
    min_span: int = MIN_SPAN

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ProbabilityThresholds:
        """From a checkpoint JSON's ``contacts`` (other keys ignored; defaults where absent)."""
        d = d or {}
        return cls(
            on=float(d.get("on", cls.on)),
            off=float(d.get("off", cls.off)),
            min_gap=int(d.get("min_gap", cls.min_gap)),
            min_span=int(d.get("min_span", cls.min_span)),
        )


def contacts_from_probabilities(
    probabilities: NDArray, thresholds: ProbabilityThresholds | None = None
) -> NDArray[np.bool_]:
    """(F, 2) contact spans from per-frame probabilities (F, 2) of a network's contact output."""
    t = thresholds or ProbabilityThresholds()
    p = np.asarray(probabilities, dtype=np.float64)
    out = np.zeros(p.shape, dtype=bool)
    for foot in range(p.shape[1]):
        out[:, foot] = _clean(_hysteresis(p[:, foot] >= t.on, p[:, foot] > t.off), t.min_gap, t.min_span)
    return out


def motion_contacts(
    motion: Motion, probabilities: NDArray | None = None, thresholds: dict[str, Any] | None = None
) -> NDArray[np.bool_]:
    """(F, 2) contacts of a reconstructed motion: from its network's contact probabilities (F, 2) with
    a checkpoint's ``thresholds`` (its JSON's ``contacts``), else read off the motion's joints."""
    if probabilities is not None:
        return contacts_from_probabilities(probabilities, ProbabilityThresholds.from_dict(thresholds))
    return detect_contacts(motion.joint_positions, motion.fps)


def foot_slide(positions: NDArray, truth_positions: NDArray, fps: float = 60.0) -> tuple[float, int]:
    """(summed horizontal travel in cm per 60 fps frame, count) of ``positions``' ankle and toe
    joints over the frames where ``truth_positions`` has that joint in contact."""
    contact = joint_contacts(truth_positions, fps)  # (F, 2, 2)
    p = np.asarray(positions, dtype=np.float64)[:, [j for foot in FOOT_CONTACT_JOINTS for j in foot]]
    travel = horizontal_travel(p.reshape(p.shape[0], 2, 2, 3), fps) * 100.0
    if p.shape[0] < 2:
        return 0.0, 0
    mask = contact[1:]  # frame 0 has no travel of its own
    return float(travel[1:][mask].sum()), int(mask.sum())


def floor_gaps(positions: NDArray, contacts: NDArray, rest_offsets: NDArray, floor: float = 0.0) -> Array:
    """Per foot-frame marked in ``contacts`` (F, 2): height (m) of that foot's lowest joint above
    where it rests when standing (``standing_heights``), for the ``floor_gap_cm`` median."""
    p = np.asarray(positions, dtype=np.float64)
    stand = standing_heights(rest_offsets)
    c = np.asarray(contacts, dtype=bool)
    gaps = []
    for foot, joints in enumerate(FOOT_CONTACT_JOINTS):
        rel = p[:, list(joints), 2] - floor - stand[list(joints)]
        gaps.append(rel.min(axis=-1)[c[:, foot]])
    return np.concatenate(gaps)


def _f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


@dataclass
class ContactAccumulator:
    """Sums, confusion counts and floor gaps over many motions, so their figures combine frame-weighted."""

    slide_sum: float = 0.0
    slide_count: int = 0
    true_pos: int = 0
    false_pos: int = 0
    false_neg: int = 0
    foot_frames: int = 0
    gaps: list[Array] = field(default_factory=list)

    def add(
        self,
        positions: NDArray,
        contacts: NDArray | None,
        truth_positions: NDArray | None,
        rest_offsets: NDArray,
        fps: float = 60.0,
    ) -> None:
        """One motion: its joints (F, 22, 3), its contacts (F, 2) and, where known, the ground truth's joints."""
        if truth_positions is not None:
            s, n = foot_slide(positions, truth_positions, fps)
            self.slide_sum += s
            self.slide_count += n
            if contacts is not None:
                truth = contact_truth(truth_positions, fps)
                pred = np.asarray(contacts, dtype=bool)
                self.true_pos += int((pred & truth).sum())
                self.false_pos += int((pred & ~truth).sum())
                self.false_neg += int((~pred & truth).sum())
                self.foot_frames += int(truth.size)
        if contacts is not None:
            self.gaps.append(floor_gaps(positions, contacts, rest_offsets))

    def merge(self, other: ContactAccumulator) -> None:
        self.slide_sum += other.slide_sum
        self.slide_count += other.slide_count
        self.true_pos += other.true_pos
        self.false_pos += other.false_pos
        self.false_neg += other.false_neg
        self.foot_frames += other.foot_frames
        self.gaps.extend(other.gaps)

    def result(self) -> dict[str, float]:
        """``foot_slide_cm``, the contact scores (when truth and contacts were given) and ``floor_gap_cm``."""
        out: dict[str, float] = {}
        if self.slide_count:
            out["foot_slide_cm"] = self.slide_sum / self.slide_count
        if self.foot_frames:
            pp = self.true_pos + self.false_pos
            positives = self.true_pos + self.false_neg
            precision = self.true_pos / pp if pp else 0.0
            recall = self.true_pos / positives if positives else 0.0
            out["contact_precision"] = precision
            out["contact_recall"] = recall
            out["contact_f1"] = _f1(precision, recall)
            out["contact_f1_always"] = _f1(positives / self.foot_frames, 1.0 if positives else 0.0)
        gaps = np.concatenate(self.gaps) if self.gaps else np.zeros(0)
        if gaps.size:
            out["floor_gap_cm"] = float(np.median(gaps) * 100.0)
        return out
