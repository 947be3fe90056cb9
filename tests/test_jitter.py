# SPDX-License-Identifier: GPL-3.0-or-later
"""Jitter per joint and frame (the metric's definition), its summary, colours and overlay trails."""

from __future__ import annotations

import numpy as np

from kinest_core.jitter import (
    DEFAULT_SHAKY,
    JITTER_UNIT,
    jitter_colors,
    jitter_summary,
    joint_jitter,
    reduction_percent,
    trail_segments,
)
from kinest_core.metrics import compute_metrics
from kinest_core.skeleton import Skeleton, forward_kinematics


def _positions(frames: int = 120, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 60.0
    base = Skeleton.neutral(1.8).rest_joints()
    pos = np.tile(base, (frames, 1, 1)) + np.stack([np.sin(t), 0 * t, 0 * t], -1)[:, None]
    return pos + 1e-4 * rng.standard_normal(pos.shape)


def test_cubic_motion_has_constant_jitter_and_linear_has_none() -> None:
    t = np.arange(50) / 60.0
    pos = np.zeros((50, 22, 3))
    pos[..., 0] = (2.0 * t**3)[:, None]  # third derivative 12 m/s^3 everywhere
    np.testing.assert_allclose(joint_jitter(pos, 60.0), 12.0 / JITTER_UNIT, rtol=1e-6)
    pos[..., 0] = (3.0 * t)[:, None]
    np.testing.assert_allclose(joint_jitter(pos, 60.0), 0.0, atol=1e-6)


def test_summary_mean_is_the_metric() -> None:
    """The panel's mean is what ``kinest evaluate`` reports as jitter (same motion, same unit)."""
    sk = Skeleton.neutral(1.75)
    rng = np.random.default_rng(1)
    aa = 0.05 * rng.standard_normal((90, 22, 3))
    from kinest_core import rotations as rot

    local = rot.axis_angle_to_matrix(aa)
    _, pos = forward_kinematics(local, sk.rest_offsets)
    metric = compute_metrics(local, local, sk.rest_offsets)["jitter"]
    assert abs(jitter_summary(pos).mean - metric) < 1e-9 * max(1.0, metric)


def test_worst_joint_and_frames_are_found() -> None:
    pos = _positions()
    pos[70, 20, 2] += 0.02  # a spike on the left wrist
    pos[20, 7, 0] += 0.01  # a smaller one on the left ankle
    s = jitter_summary(pos, top_joints=2, top_frames=2)
    assert s.worst_joints[0] == 20 and s.worst_joint_names()[0] == "left_wrist"
    # the third difference spreads a spike over frames t..t+3: both moments found, once each
    assert 70 <= s.worst_frames[0] <= 73 and 20 <= s.worst_frames[1] <= 23
    d = s.as_dict()
    assert d["unit"] == "100 m/s^3" and d["worst_joints"][0]["name"] == "left_wrist"
    assert s.per_frame_joint.shape == (120, 22) and s.per_joint.shape == (22,)


def test_short_motions_give_zeros() -> None:
    s = jitter_summary(np.zeros((3, 22, 3)))
    assert s.mean == 0.0 and s.worst_frames == [] and s.per_frame_joint.shape == (3, 22)
    assert reduction_percent(0.0, 1.0) == 0.0 and reduction_percent(10.0, 4.0) == 60.0


def test_colours_run_from_calm_to_red() -> None:
    c = jitter_colors(np.array([0.0, DEFAULT_SHAKY / 4, DEFAULT_SHAKY, 10 * DEFAULT_SHAKY]))
    assert c.shape == (4, 3) and np.all((c >= 0) & (c <= 1))
    assert c[0, 1] > c[0, 0]  # calm: green-blue
    np.testing.assert_allclose(c[1], [0.95, 0.85, 0.15])  # sqrt(1/4) = midpoint: yellow
    np.testing.assert_allclose(c[2], c[3])  # saturates at red
    assert c[2, 0] > 0.8 and c[2, 1] < 0.2


def test_trail_segments_follow_the_joints() -> None:
    pos = _positions(100)
    s = jitter_summary(pos)
    trail = trail_segments(pos, s.per_frame_joint, frame=50, before=10, joints=[15, 20])
    assert trail.num_segments == 2 * 10 and trail.points.dtype == np.float32
    assert trail.points.shape == (40, 3) and trail.colors.shape == (40, 4)
    # joint-major: the first 10 segments are the head's, from frame 40 to 50, chained end to start
    np.testing.assert_allclose(trail.points[0], pos[40, 15], atol=1e-6)
    np.testing.assert_allclose(trail.points[19], pos[50, 15], atol=1e-6)
    np.testing.assert_allclose(trail.points[1], trail.points[2])
    np.testing.assert_allclose(trail.points[20], pos[40, 20], atol=1e-6)
    # both ends of a segment share a colour: the jitter at its later frame
    np.testing.assert_allclose(trail.colors[18, :3], jitter_colors(s.per_frame_joint[50, 15]), atol=1e-6)
    assert trail.colors[19, 3] == 1.0 and trail.colors[0, 3] < trail.colors[19, 3]  # older fades


def test_trail_segments_move_with_the_object_and_clip() -> None:
    pos = _positions(30)
    jit = jitter_summary(pos).per_frame_joint
    m = np.eye(4)
    m[:3, 3] = [1.0, 2.0, 3.0]
    moved = trail_segments(pos, jit, frame=5, before=30, joints=[0], matrix=m)
    assert moved.num_segments == 5  # clipped at frame 0
    np.testing.assert_allclose(moved.points[0], pos[0, 0] + [1.0, 2.0, 3.0], atol=1e-6)
    assert trail_segments(pos, jit, frame=0, before=30).num_segments == 0
    assert trail_segments(pos, jit, frame=99).num_segments == 0
    both = trail_segments(pos, jit, frame=10, before=3, after=3)
    assert both.num_segments == 6 * 22
