# SPDX-License-Identifier: GPL-3.0-or-later
"""Loss terms: zero at the target, the weights, the geometric angular velocity, gradients."""

from __future__ import annotations

import math

import pytest
import torch

from kinest_core import rotations_torch as trot
from kinest_core.skeleton import Skeleton, forward_kinematics_torch
from kinest_core.training.losses import LossConfig, angular_velocity, kinest_loss, window_consistency


def _random_6d(b: int, f: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    aa = torch.randn(b, f, 22, 3, generator=g, dtype=torch.float64) * 0.3
    return trot.matrix_to_6d(trot.axis_angle_to_matrix(aa)).reshape(b, f, 132)


def test_zero_at_target() -> None:
    t = _random_6d(2, 8)
    rest = torch.tensor(Skeleton.neutral().rest_offsets).expand(2, 22, 3)
    total, parts = kinest_loss(t.clone(), t, LossConfig(fk_position=1.0), rest)
    assert float(total) == pytest.approx(0.0, abs=1e-7)
    assert set(parts) == {"rotation", "root", "angular_velocity", "fk_position"}


def test_weights_and_parts() -> None:
    t = _random_6d(1, 4)
    p = t.clone()
    p[..., 0] += 0.1  # pelvis 6D first component off by 0.1 in every frame
    total, parts = kinest_loss(p, t, LossConfig(rotation=1.0, root=0.02, angular_velocity=0.0))
    assert parts["rotation"] == pytest.approx(0.01 / 132)
    assert parts["root"] == pytest.approx(0.01 / 6)
    assert float(total) == pytest.approx(0.01 / 132 + 0.02 * 0.01 / 6)


def test_angular_velocity_of_a_steady_turn() -> None:
    angles = torch.arange(5, dtype=torch.float64) * 0.1
    aa = torch.zeros(5, 1, 3, dtype=torch.float64)
    aa[:, 0, 2] = angles
    w = angular_velocity(trot.axis_angle_to_matrix(aa))
    assert torch.allclose(w[:, 0], torch.tensor([0.0, 0.0, 0.1], dtype=torch.float64).expand(4, 3))
    # a constant offset of the whole sequence leaves the angular velocity loss at zero
    t = _random_6d(1, 6)
    tm = trot.sixd_to_matrix(t.reshape(1, 6, 22, 6))
    offset = trot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.2], dtype=torch.float64))
    p = trot.matrix_to_6d(tm @ offset).reshape(1, 6, 132)
    _, parts = kinest_loss(p, t, LossConfig(rotation=0.0, root=0.0, angular_velocity=1.0))
    assert parts["angular_velocity"] == pytest.approx(0.0, abs=1e-6)
    # jitter (alternating offset) is punished
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0], dtype=torch.float64)[None, :, None, None, None]
    shake = trot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.05], dtype=torch.float64) * sign[..., 0])
    p = trot.matrix_to_6d(tm @ shake).reshape(1, 6, 132)
    _, parts = kinest_loss(p, t, LossConfig(rotation=0.0, root=0.0, angular_velocity=1.0))
    assert parts["angular_velocity"] > 0.01


def test_gradients_are_finite_at_the_target() -> None:
    t = _random_6d(2, 5).float()
    p = t.clone().requires_grad_(True)
    total, _ = kinest_loss(
        p, t, LossConfig(fk_position=1.0), torch.tensor(Skeleton.neutral().rest_offsets).float().expand(2, 22, 3)
    )
    total.backward()
    assert p.grad is not None and torch.isfinite(p.grad).all()
    assert not math.isnan(float(total.detach()))


def test_fk_velocity_counts_a_shaking_forearm_relative_to_the_head() -> None:
    """A static target and a prediction whose left elbow flips between 0 and 0.3 rad every frame:
    only the left wrist moves relative to the head, by R(0.3) o - o each frame (o: the forearm)."""
    rest = torch.tensor(Skeleton.neutral().rest_offsets, dtype=torch.float64)[None]
    eye6 = trot.matrix_to_6d(torch.eye(3, dtype=torch.float64))
    target = eye6.repeat(1, 4, 22, 1)  # (1, 4, 22, 6): rest pose held still
    pred = target.clone()
    bend = trot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64))
    pred[0, 1::2, 18] = trot.matrix_to_6d(bend)  # left elbow in frames 1 and 3
    cfg = LossConfig(rotation=0.0, root=0.0, angular_velocity=0.0, fk_velocity=1.0)
    _, parts = kinest_loss(pred.reshape(1, 4, 132), target.reshape(1, 4, 132), cfg, rest)
    o = rest[0, 20]
    expected = float((bend @ o - o).abs().sum()) / 22  # one moving joint of 22, the same move in all 3 steps
    assert parts["fk_velocity"] == pytest.approx(expected, rel=1e-9)
    # holding the bent elbow still costs nothing: the term sees motion, not pose
    still = target.clone()
    still[0, :, 18] = trot.matrix_to_6d(bend)
    _, parts = kinest_loss(still.reshape(1, 4, 132), target.reshape(1, 4, 132), cfg, rest)
    assert parts["fk_velocity"] == pytest.approx(0.0, abs=1e-12)


def _shaking_forearm() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rest offsets, a 4-frame T-pose target, a prediction whose left elbow goes 0, 0.3, 0, 0.3 rad, the bend."""
    rest = torch.tensor(Skeleton.neutral().rest_offsets, dtype=torch.float64)[None]
    target = trot.matrix_to_6d(torch.eye(3, dtype=torch.float64)).repeat(1, 4, 22, 1)
    pred = target.clone()
    bend = trot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64))
    pred[0, 1::2, 18] = trot.matrix_to_6d(bend)
    return rest, target, pred, bend


def test_fk_acceleration_of_a_shaking_forearm() -> None:
    """Elbow 0, 0.3, 0, 0.3 rad: the wrist's second difference is +-2 (R o - o) in both inner frames."""
    rest, target, pred, bend = _shaking_forearm()
    cfg = LossConfig(rotation=0.0, root=0.0, angular_velocity=0.0, fk_acceleration=1.0)
    _, parts = kinest_loss(pred.reshape(1, 4, 132), target.reshape(1, 4, 132), cfg, rest)
    o = rest[0, 20]
    assert set(parts) == {"fk_acceleration"}
    assert parts["fk_acceleration"] == pytest.approx(2 * float((bend @ o - o).abs().sum()) / 22, rel=1e-9)


def test_fk_jerk_of_a_shaking_forearm() -> None:
    """Elbow 0, 0.3, 0, 0.3 rad: the wrist's one third difference is v + 3 v = 4 (R o - o)."""
    rest, target, pred, bend = _shaking_forearm()
    cfg = LossConfig(rotation=0.0, root=0.0, angular_velocity=0.0, fk_jerk=1.0)
    _, parts = kinest_loss(pred.reshape(1, 4, 132), target.reshape(1, 4, 132), cfg, rest)
    o = rest[0, 20]
    assert set(parts) == {"fk_jerk"}
    assert parts["fk_jerk"] == pytest.approx(4 * float((bend @ o - o).abs().sum()) / 22, rel=1e-9)
    # a steady bend (no shake) costs nothing
    pred[0, :, 18] = trot.matrix_to_6d(bend)
    _, steady = kinest_loss(pred.reshape(1, 4, 132), target.reshape(1, 4, 132), cfg, rest)
    assert steady["fk_jerk"] == pytest.approx(0.0, abs=1e-12)


def test_placed_acceleration_counts_head_shake_carried_by_the_body() -> None:
    """A perfect pose placed on a head input that jumps d in x at frame 1 of 4: every joint is carried
    along, second differences -2d then d, so the term is (2d + d) / 2 for each of the 22 joints."""
    t = _random_6d(1, 4, seed=3)
    rest = torch.tensor(Skeleton.neutral().rest_offsets, dtype=torch.float64)[None]
    cfg = LossConfig(rotation=0.0, root=0.0, angular_velocity=0.0, placed_acceleration=1.0)
    d = 0.004
    spike = torch.zeros(1, 4, 3, dtype=torch.float64)
    spike[0, 1, 0] = d
    _, parts = kinest_loss(t.clone(), t, cfg, rest, spike)
    assert set(parts) == {"placed_acceleration"}
    assert parts["placed_acceleration"] == pytest.approx(1.5 * d, rel=1e-9)
    # a constant calibration offset of the head moves the body rigidly: no acceleration
    _, steady = kinest_loss(t.clone(), t, cfg, rest, torch.full((1, 4, 3), 0.01, dtype=torch.float64))
    assert steady["placed_acceleration"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="tracked_head_error"):
        kinest_loss(t.clone(), t, cfg, rest)


def test_window_consistency_compares_shared_frames_only() -> None:
    rest = torch.tensor(Skeleton.neutral().rest_offsets, dtype=torch.float64)[None]
    seq = _random_6d(1, 12, seed=5)  # one motion; windows of 8 frames at 0 and at 4 share 4 frames
    first, second = seq[:, 0:8], seq[:, 4:12]
    assert float(window_consistency(first, second, 4, rest)) == pytest.approx(0.0, abs=1e-12)
    # frames of the second window after the shared ones do not count
    late = second.clone().reshape(1, 8, 22, 6)
    late[0, 4:] = _random_6d(1, 4, seed=6).reshape(4, 22, 6)
    assert float(window_consistency(first, late.reshape(1, 8, 132), 4, rest)) == pytest.approx(0.0, abs=1e-12)
    # bend the right elbow by 0.3 rad in shared frame 2: only the right wrist moves, relative to the head
    bent = second.clone().reshape(1, 8, 22, 6)
    elbow = trot.sixd_to_matrix(bent[0, 2, 19])
    bend = trot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.3], dtype=torch.float64))
    bent[0, 2, 19] = trot.matrix_to_6d(elbow @ bend)
    off = rest[:, None].expand(1, 8, 22, 3)
    _, p0 = forward_kinematics_torch(trot.sixd_to_matrix(second.reshape(1, 8, 22, 6)), off)
    _, p1 = forward_kinematics_torch(trot.sixd_to_matrix(bent), off)
    moved = (p1 - p0).abs().sum(-1)[0, 2]
    assert float(moved[21]) > 0.01 and float(moved.sum() - moved[21]) == pytest.approx(0.0, abs=1e-12)
    got = float(window_consistency(first, bent.reshape(1, 8, 132), 4, rest))
    assert got == pytest.approx(float(moved[21]) / (4 * 22), rel=1e-9)
    with pytest.raises(ValueError, match="share no frame"):
        window_consistency(first, second, 8, rest)
