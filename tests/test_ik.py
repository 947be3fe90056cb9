# SPDX-License-Identifier: GPL-3.0-or-later
"""Hand pinning (two-bone arm IK): reaches, keeps the rest of the body, fades with weights, and is
what ``reconstruct`` delivers by default."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from kinest_core.inference import reconstruct
from kinest_core.postprocess.hand_pinning import ARM_CHAINS, SOFTNESS, _soft_reach, pin_wrists, tracking_weights
from kinest_core.skeleton import HEAD, Skeleton, forward_kinematics
from kinest_core.training.data import tracked_joints
from kinest_core.training.evaluate import tracking_from_joints
from kinest_core.training.mocap import convert_bvh
from kinest_core.types import TrackingSequence

FIX = Path(__file__).parent / "fixtures" / "mocap"

ARM_JOINTS = {j for chain in ARM_CHAINS for j in chain}


def _pose(frames: int = 40, seed: int = 0, spread_deg: float = 35.0) -> tuple[np.ndarray, np.ndarray]:
    """Random local rotations around the rest pose, and a neutral body."""
    rng = np.random.default_rng(seed)
    rotvec = rng.normal(size=(frames, 22, 3)) * np.radians(spread_deg) / np.sqrt(3)
    if spread_deg:
        rotvec[:, [18, 19], 2] += np.radians(70.0) * np.array([1.0, -1.0])  # bent elbows, as arms mostly are
    local = Rotation.from_rotvec(rotvec.reshape(-1, 3)).as_matrix().reshape(frames, 22, 3, 3)
    return local, Skeleton.neutral(1.75).rest_offsets


def _wrists_from_head(local: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    _, pos = forward_kinematics(local, offsets)
    return pos[:, [20, 21]] - pos[:, HEAD, None]


def _arm_lengths(offsets: np.ndarray, arm: int) -> float:
    _, e, w = ARM_CHAINS[arm]
    return float(np.linalg.norm(offsets[e]) + np.linalg.norm(offsets[w]))


def test_reachable_targets_are_met_and_nothing_else_moves() -> None:
    local, offsets = _pose()
    rng = np.random.default_rng(1)
    target = _wrists_from_head(local, offsets) + rng.normal(scale=0.06, size=(len(local), 2, 3))
    pinned = pin_wrists(local, offsets, target)
    got = _wrists_from_head(pinned, offsets)
    _, pos = forward_kinematics(local, offsets)
    for arm, (s, _, _) in enumerate(ARM_CHAINS):
        reach = np.linalg.norm(target[:, arm] + pos[:, HEAD] - pos[:, s], axis=-1)
        ok = reach < (1 - SOFTNESS) * _arm_lengths(offsets, arm)  # short of the soft zone: met exactly
        assert ok.mean() > 0.6  # the test poses are mostly reachable
        np.testing.assert_allclose(got[ok, arm], target[ok, arm], atol=1e-7)
    untouched = [j for j in range(22) if j not in ARM_JOINTS or j in (20, 21)]
    np.testing.assert_array_equal(pinned[:, untouched], local[:, untouched])  # wrists keep their local rotation
    np.testing.assert_allclose(
        pinned @ np.swapaxes(pinned, -1, -2), np.broadcast_to(np.eye(3), pinned.shape), atol=1e-9
    )
    np.testing.assert_allclose(np.linalg.det(pinned), 1.0, atol=1e-9)


def test_a_wrist_already_on_target_is_left_alone() -> None:
    local, offsets = _pose(seed=2)
    pinned = pin_wrists(local, offsets, _wrists_from_head(local, offsets), softness=0.0)
    np.testing.assert_allclose(pinned, local, atol=1e-7)


def test_soft_reach_eases_into_full_extension() -> None:
    arm = np.full(400, 0.6)
    d = np.linspace(0.0, 1.2, 400)
    r = _soft_reach(d, arm, 0.1)
    start = 0.54
    np.testing.assert_array_equal(r[d <= start], d[d <= start])  # untouched below the soft zone
    assert np.all(r < 0.6) and np.all(np.diff(r) > 0)  # never full extension, always moving with the target
    slope = np.diff(r) / np.diff(d)
    # no kink at the zone's edge: the slope changes by at most step / (softness * arm) per step, as exp does
    assert np.all(slope <= 1.0 + 1e-9) and np.max(np.abs(np.diff(slope))) < 1.05 * (d[1] - d[0]) / 0.06
    np.testing.assert_allclose(_soft_reach(d, arm, 0.0), d)


def test_out_of_reach_targets_get_a_straight_arm_pointing_at_them() -> None:
    local, offsets = _pose(frames=10, seed=3)
    _, pos = forward_kinematics(local, offsets)
    direction = np.array([0.3, 1.0, 0.2]) / np.linalg.norm([0.3, 1.0, 0.2])
    target_world = pos[:, 17] + 2.0 * direction  # 2 m from the right shoulder
    target = np.stack([pos[:, 20] - pos[:, HEAD], target_world - pos[:, HEAD]], axis=1)
    _, new = forward_kinematics(pin_wrists(local, offsets, target, softness=0.0), offsets)
    arm = _arm_lengths(offsets, 1)
    np.testing.assert_allclose(np.linalg.norm(new[:, 21] - new[:, 17], axis=-1), arm, rtol=1e-5)
    np.testing.assert_allclose((new[:, 21] - new[:, 17]) / arm, np.broadcast_to(direction, (10, 3)), atol=1e-4)
    np.testing.assert_allclose(new[:, 20], pos[:, 20], atol=1e-7)  # the left hand was already on its target


def test_a_straight_arm_still_bends_to_a_near_target() -> None:
    local, offsets = _pose(frames=5, seed=4, spread_deg=0.0)  # rest pose: both arms straight
    _, pos = forward_kinematics(local, offsets)
    target = pos[:, [20, 21]] - pos[:, HEAD, None]
    target[:, 0] += np.array([0.0, 0.15, 0.05])  # closer to the shoulder (the arm points along x)
    target[:, 0, 0] -= np.sign(target[:, 0, 0]) * 0.25
    pinned = pin_wrists(local, offsets, target)
    assert np.isfinite(pinned).all()
    np.testing.assert_allclose(_wrists_from_head(pinned, offsets)[:, 0], target[:, 0], atol=1e-7)


def test_weights_fade_the_correction() -> None:
    local, offsets = _pose(seed=5)
    start = _wrists_from_head(local, offsets)
    target = start + np.array([0.0, 0.08, -0.05])
    off = pin_wrists(local, offsets, target, weights=np.zeros((len(local), 2)))
    np.testing.assert_allclose(off, local, atol=1e-12)
    half = _wrists_from_head(pin_wrists(local, offsets, target, weights=np.full((len(local), 2), 0.5)), offsets)
    full = _wrists_from_head(pin_wrists(local, offsets, target), offsets)
    d_start, d_half, d_full = (np.linalg.norm(x - target, axis=-1) for x in (start, half, full))
    assert np.all(d_half < d_start) and np.all(d_half > d_full + 1e-4)


def test_tracking_weights_ramp_away_from_lost_frames() -> None:
    valid = np.ones((12, 3), dtype=bool)
    valid[5, 1] = False  # left hand lost on frame 5
    w = tracking_weights(valid, ramp_frames=3)
    np.testing.assert_allclose(w[:, 0], np.clip(np.abs(np.arange(12) - 5) / 3, 0, 1))
    np.testing.assert_array_equal(w[:, 1], 1.0)
    valid[:, 2] = False
    assert np.all(tracking_weights(valid)[:, 1] == 0.0)


def _mocap_tracking() -> tuple[TrackingSequence, Skeleton]:
    """Head and wrist joints of a real CMU take (test fixture) as tracking, and that subject's body."""
    motion = convert_bvh(str(FIX / "02_01_cut.bvh"))[0]
    return tracking_from_joints(*tracked_joints(motion)), Skeleton(rest_offsets=motion.rest_offsets)


def test_reconstruct_pins_hands_by_default_and_lets_go_where_tracking_is_lost() -> None:
    tracking, body = _mocap_tracking()
    tracked = tracking.transforms()[:, 1:, :3, 3]
    free = reconstruct(tracking, device="cpu", skeleton=body, pin_hands=False)
    pinned = reconstruct(tracking, device="cpu", skeleton=body)
    assert pinned.info["pin_hands"] is True and free.info["pin_hands"] is False
    miss_free = np.linalg.norm(free.joint_positions[:, 20:22] - tracked, axis=-1)
    miss = np.linalg.norm(pinned.joint_positions[:, 20:22] - tracked, axis=-1)
    assert np.median(miss_free) > 0.01  # the shipped network's wrists miss by centimetres
    arms = np.array([_arm_lengths(body.rest_offsets, a) for a in range(2)])
    reach = np.linalg.norm(tracked - pinned.joint_positions[:, [16, 17]], axis=-1)
    ok = reach < (1 - SOFTNESS) * arms  # within reach of the shoulders where the network puts them
    assert np.all(ok.mean(axis=0) > 0.25)  # both arms (walking: arms hang near full extension)
    assert np.all(miss[ok] < 1e-6)
    # in the soft zone near full extension the hand stops short, by less than the zone is wide
    assert np.all(miss[~ok] < (SOFTNESS * arms + 1e-9)[np.nonzero(~ok)[1]])
    assert np.median(miss) < 0.25 * np.median(miss_free)
    np.testing.assert_allclose(pinned.joint_positions[:, HEAD], tracking.head[:, :3, 3], atol=1e-9)
    keep = [j for j in range(22) if j not in (16, 17, 18, 19)]
    dots = np.abs(np.sum(pinned.local_rotations[:, keep] * free.local_rotations[:, keep], -1))
    np.testing.assert_allclose(dots, 1.0, atol=1e-12)
    assert np.all(np.sum(pinned.local_rotations[1:] * pinned.local_rotations[:-1], axis=-1) >= 0)  # continuous signs
    # a lost left hand: the arm is the network's own there, and pinned again well after it
    tracking.valid[60:80, 1] = False
    lost = reconstruct(tracking, device="cpu", skeleton=body)
    np.testing.assert_allclose(lost.local_rotations[60:80, [16, 18]], free.local_rotations[60:80, [16, 18]], atol=1e-12)
    np.testing.assert_allclose(lost.local_rotations[100:], pinned.local_rotations[100:], atol=1e-12)
