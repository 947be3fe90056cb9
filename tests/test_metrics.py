# SPDX-License-Identifier: GPL-3.0-or-later
"""Metrics against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from kinest_core import metrics
from kinest_core import rotations as rot
from kinest_core.skeleton import NUM_JOINTS, Skeleton, forward_kinematics

REST = Skeleton.neutral(1.75).rest_offsets


def _identity(f: int) -> np.ndarray:
    return np.tile(np.eye(3), (f, NUM_JOINTS, 1, 1))


def test_perfect_prediction_scores_zero() -> None:
    rng = np.random.default_rng(0)
    local = rot.axis_angle_to_matrix(rng.normal(scale=0.2, size=(30, NUM_JOINTS, 3)))
    root = np.cumsum(rng.normal(scale=0.01, size=(30, 3)), axis=0)
    m = metrics.compute_metrics(local, local, REST, gt_root_translation=root)
    for k in ("mpjre_deg", "mpjpe_cm", "hand_pe_cm", "upper_pe_cm", "lower_pe_cm", "root_pe_cm", "mpjve_cms"):
        assert m[k] == pytest.approx(0.0, abs=1e-9), k
    assert m["jitter"] == pytest.approx(m["gt_jitter"])
    assert m["frames"] == 30
    assert set(m) == set(metrics.METRIC_KEYS) | {"frames"}


def test_rotation_error_of_one_joint() -> None:
    gt = _identity(5)
    pred = gt.copy()
    pred[:, 18] = rot.axis_angle_to_matrix(np.array([0.0, 0.0, np.radians(44.0)]))  # left elbow, 44 deg about z
    m = metrics.compute_metrics(pred, gt, REST)
    # one of 22 joints x 3 components is off by 44 deg
    assert m["mpjre_deg"] == pytest.approx(44.0 / (22 * 3))
    # the left wrist moves on a circle of the forearm length; head fixed so no shift
    forearm = np.linalg.norm(REST[20][:2])  # part perpendicular to the z axis
    chord = 2 * forearm * np.sin(np.radians(22.0)) * 100
    assert m["hand_pe_cm"] == pytest.approx(chord / 2)
    assert m["mpjpe_cm"] == pytest.approx(chord / 22)
    assert m["lower_pe_cm"] == 0.0 and m["root_pe_cm"] == 0.0
    assert m["mpjve_cms"] == pytest.approx(0.0, abs=1e-9)  # constant error: no velocity error


def test_angle_wraps() -> None:
    gt = _identity(1)
    pred = gt.copy()
    gt[:, 3] = rot.axis_angle_to_matrix(np.array([np.radians(179.0), 0, 0]))
    pred[:, 3] = rot.axis_angle_to_matrix(np.array([np.radians(-179.0), 0, 0]))
    m = metrics.compute_metrics(pred, gt, REST)
    assert m["mpjre_deg"] == pytest.approx(2.0 / 66, abs=1e-6)


def test_prediction_is_placed_by_the_head() -> None:
    gt = _identity(4)
    root = np.array([[1.0, 2.0, 0.0]] * 4)
    m = metrics.compute_metrics(gt, gt, REST, gt_root_translation=root)  # prediction has no root
    assert m["mpjpe_cm"] == pytest.approx(0.0, abs=1e-9)


def test_velocity_and_jitter_hand_computed() -> None:
    f = 10
    gt = forward_kinematics(_identity(f), REST)[1]
    # every joint of the prediction oscillates along x by +-1 mm every frame, head too -> placed by head
    # so move only non-head joints: use positions directly through the accumulator's pieces
    pos = gt.copy()
    pos[:, :, 0] += 0.001 * (-1.0) ** np.arange(f)[:, None]
    j = metrics.jitter_per_joint(pos, fps=60.0)
    # third difference of (+1,-1,+1,-1) mm = 8 mm
    assert j[5, 0] == pytest.approx(0.008 * 60**3)
    assert j[0, 0] == j[3, 0]
    assert metrics.jitter_per_joint(gt, 60.0).max() == pytest.approx(0.0, abs=1e-6)
    # constant velocity has no jitter; MPJVE of a 1 m/s drift vs a still body is 100 cm/s
    drift = np.linspace(0, 9 / 60, f)[:, None] * np.array([1.0, 0.0, 0.0])
    assert metrics.jitter_per_joint(gt + drift[:, None, :], 60.0).max() == pytest.approx(0.0, abs=1e-6)


def test_foot_skate_and_penetration() -> None:
    f = 7
    pos = np.zeros((f, NUM_JOINTS, 3))
    pos[..., 2] = 1.0
    pos[:, 10, 2] = 0.02  # left foot on the floor, sliding 1 cm per frame along y
    pos[:, 10, 1] = np.arange(f) * 0.01
    pos[:, 11, 2] = 0.5  # right foot in the air, moving fast (not counted)
    pos[:, 11, 0] = np.arange(f) * 0.2
    s, n = metrics.foot_skate(pos, 60.0)
    assert n == f - 1 and s / n == pytest.approx(1.0)
    # penetration: through the accumulator, a body sunk 3 cm under the floor everywhere
    acc = metrics.MetricAccumulator()
    gt_local = _identity(3)
    rest = REST.copy()
    gt_pos = forward_kinematics(gt_local, rest)[1]
    lowest = gt_pos[..., 2].min()
    acc.add(gt_local, gt_local, rest, gt_positions=gt_pos - np.array([0, 0, lowest + 0.03]))
    assert acc.result()["ground_penetration_cm"] == pytest.approx(3.0)


def test_accumulator_weights_by_frames() -> None:
    gt = _identity(10)
    pred = gt.copy()
    pred[:, 0] = rot.axis_angle_to_matrix(np.array([0.0, 0.0, np.radians(6.0)]))
    a = metrics.MetricAccumulator()
    a.add(pred[:2], gt[:2], REST)
    b = metrics.MetricAccumulator()
    b.add(gt, gt, REST)
    a.merge(b)
    r = a.result()
    assert r["frames"] == 12
    assert r["mpjre_deg"] == pytest.approx(6.0 / 66 * 2 / 12)


def test_seam_frames_mark_third_differences_across_a_seam() -> None:
    at = metrics.seam_frames(10, [4])
    # frame t's third difference uses frames t-3..t: it spans the seam at 4 for t = 4, 5, 6
    assert at.tolist() == [False] * 4 + [True] * 3 + [False] * 3
    assert not metrics.seam_frames(10, [0, 10]).any()


def test_jitter_splits_into_seams_and_interior() -> None:
    f = 40
    gt = _identity(f)
    pred = gt.copy()
    # a step in the pelvis rotation at frame 20, where the second window starts
    pred[20:, 0] = rot.axis_angle_to_matrix(np.array([0.0, 0.0, 0.3]))
    acc = metrics.MetricAccumulator()
    acc.add(pred, gt, REST, fps=60.0, seams=[20])
    m = acc.result()
    assert m["jitter_interior"] == pytest.approx(0.0, abs=1e-9)
    assert m["jitter_seams"] > 1.0
    # frame-weighted: 3 of the f - 3 third differences straddle the seam
    assert m["jitter"] == pytest.approx(m["jitter_seams"] * 3 / (f - 3))
    plain = metrics.compute_metrics(pred, gt, REST)
    assert "jitter_seams" not in plain
    assert plain["jitter"] == pytest.approx(m["jitter"])
    # merging keeps the split
    total = metrics.MetricAccumulator()
    total.merge(acc)
    assert total.result()["jitter_seams"] == pytest.approx(m["jitter_seams"])
