# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot contacts: the rule on real mocap, hysteresis against blips, and the scores as the issue defines them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinest_core.postprocess import contacts as C
from kinest_core.skeleton import Skeleton, forward_kinematics
from kinest_core.training.mocap import convert_bvh

FIX = Path(__file__).parent / "fixtures" / "mocap"


def _standing(frames: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Joint positions (F, 22, 3) of the neutral body standing still in its rest pose, and its offsets."""
    offsets = Skeleton.neutral(1.75).rest_offsets
    _, pos = forward_kinematics(np.tile(np.eye(3), (frames, 22, 1, 1)), offsets)
    return pos, offsets


def test_walk_and_run_labels_on_real_mocap() -> None:
    walk = convert_bvh(str(FIX / "02_01_cut.bvh"))[0]
    lab = C.contact_labels(walk.joint_positions, walk.fps)
    # Walking: each foot stands part of the time, and at every moment at least one foot is down.
    assert 0.3 < lab[:, 0].mean() < 0.9 and 0.3 < lab[:, 1].mean() < 0.9
    assert lab.any(axis=1).mean() > 0.97
    # Each foot steps several times: spans alternate with swings.
    assert all(len(s) >= 2 for s in C.contact_spans(lab))
    # In its spans a foot rolls on its heel or its toe, which hardly moves; out of them it swings.
    travel = C.horizontal_travel(walk.joint_positions[:, [7, 10, 8, 11]], walk.fps).reshape(-1, 2, 2).min(axis=-1)
    assert np.median(travel[lab]) < 0.01 and np.median(travel[~lab]) > 0.03
    run = convert_bvh(str(FIX / "accad_Male2_C3_Run_cut.bvh"))[0]
    run_lab = C.contact_labels(run.joint_positions, run.fps)
    assert (~run_lab.any(axis=1)).sum() >= 4  # running has flight phases
    assert run_lab.mean() < lab.mean()


def test_truth_is_the_rule_and_labels_add_hysteresis() -> None:
    pos, _ = _standing(80)
    pos[40:, :, 0] += 0.005 * np.arange(40)[:, None]  # the body glides 5 mm per frame from frame 40: still contact
    np.testing.assert_array_equal(C.contact_truth(pos), True)
    pos[20:, :, 0] += 0.015  # one 1.5 cm jump into frame 20
    truth = C.contact_truth(pos)
    assert not truth[20].any() and truth[19].all() and truth[21].all()
    np.testing.assert_array_equal(C.contact_labels(pos), True)  # a one-frame blip does not end the span
    # A 2-frame dip of a swinging foot does not start a span.
    swing, _ = _standing(60)
    swing[:, [7, 10], 2] += 0.2
    swing[:, [7, 10], 0] += 0.03 * np.arange(60)[:, None]
    swing[30:32, [7, 10], 0] = swing[29, [7, 10], 0]
    swing[29:32, [7, 10], 2] -= 0.2
    assert C.joint_contacts(swing)[30:32, 0].any()
    assert not C.contact_labels(swing)[:, 0].any()
    assert C.contact_labels(swing)[:, 1].all()


def test_travel_is_scaled_to_60_fps_frames() -> None:
    pos, _ = _standing(10)
    pos[:, :, 0] += 0.012 * np.arange(10)[:, None]  # 1.2 cm per frame
    np.testing.assert_allclose(C.horizontal_travel(pos, fps=60.0)[:, 7], 0.012)
    np.testing.assert_allclose(C.horizontal_travel(pos, fps=30.0)[:, 7], 0.006)
    assert C.contact_truth(pos, fps=30.0).all() and not C.contact_truth(pos, fps=60.0).any()


def test_foot_slide_counts_travel_where_the_truth_stands() -> None:
    truth, _ = _standing(50)
    truth[25:, [8, 11], 2] += 0.3  # right foot lifted from frame 25: not in contact there
    pred = truth.copy()
    pred[:, :, 1] += 0.004 * np.arange(50)[:, None]  # the prediction slides 4 mm per frame everywhere
    s, n = C.foot_slide(pred, truth)
    assert n == 49 * 2 + 24 * 2  # left joints frames 1..49, right joints frames 1..24
    assert s / n == pytest.approx(0.4)
    assert C.foot_slide(truth, truth)[0] == 0.0


def test_contact_scores_and_the_always_in_contact_reference() -> None:
    truth_pos, offsets = _standing(40)
    truth_pos[:10, [7, 10], 2] += 0.3  # left foot up for the first 10 frames: 70 of 80 foot-frames in contact
    pred = np.ones((40, 2), dtype=bool)
    pred[:20, 0] = False  # misses 10 contact frames, no false contact left
    pred[:5, 1] = False  # right: misses 5
    acc = C.ContactAccumulator()
    acc.add(truth_pos, pred, truth_pos, offsets)
    r = acc.result()
    assert r["contact_precision"] == pytest.approx(1.0)
    assert r["contact_recall"] == pytest.approx(55 / 70)
    assert r["contact_f1"] == pytest.approx(2 * (55 / 70) / (1 + 55 / 70))
    assert r["contact_f1_always"] == pytest.approx(2 * (70 / 80) / (1 + 70 / 80))
    wrong = C.ContactAccumulator()
    wrong.add(truth_pos, ~pred, truth_pos, offsets)
    assert wrong.result()["contact_precision"] == pytest.approx(15 / 25)


def test_floor_gap_is_zero_for_a_sole_on_the_floor() -> None:
    pos, offsets = _standing(10)
    both = np.ones((10, 2), dtype=bool)
    np.testing.assert_allclose(C.floor_gaps(pos, both, offsets), 0.0, atol=1e-12)
    assert C.standing_heights(offsets)[10] == pytest.approx(0.05, abs=0.01)  # the toe joint stands 5 cm up
    pos[:, :, 2] += 0.03
    acc = C.ContactAccumulator()
    acc.add(pos, both, None, offsets)
    assert acc.result()["floor_gap_cm"] == pytest.approx(3.0)
    assert "contact_precision" not in acc.result()  # no truth, no scores
