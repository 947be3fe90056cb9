# SPDX-License-Identifier: GPL-3.0-or-later
"""The add-on's key maths without Blender: a bake's channels undo back to the motion they came from."""

from __future__ import annotations

import numpy as np

from kinest_blender import keys
from kinest_core import rotations as rot
from kinest_core.skeleton import Skeleton, forward_kinematics


def _motion(frames: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.linspace(0.0, 3.0, frames)[:, None, None]
    axes = rng.normal(size=(1, 22, 3))
    angles = 0.6 * np.sin(2.0 * t + rng.uniform(0, 6, size=(1, 22, 1)))
    local = rot.matrix_to_quat(rot.axis_angle_to_matrix(axes / np.linalg.norm(axes, axis=-1, keepdims=True) * angles))
    root = np.concatenate([np.sin(t[:, 0]), 0.1 * t[:, 0], np.cos(t[:, 0])], axis=-1)
    return local, root, Skeleton.neutral().rest_offsets


def test_rest_frames_are_rotations_whose_y_axis_runs_head_to_tail():
    offsets = Skeleton.neutral().rest_offsets
    rest = keys.rest_frames(offsets)
    np.testing.assert_allclose(rest @ np.swapaxes(rest, -1, -2), np.tile(np.eye(3), (22, 1, 1)), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rest), 1.0, atol=1e-12)
    heads, tails, _ = keys.bone_layout(offsets)
    direction = (tails - heads) / np.linalg.norm(tails - heads, axis=-1, keepdims=True)
    np.testing.assert_allclose(rest[:, :, 1], direction, atol=1e-12)


def test_unbake_returns_the_motion_the_keys_came_from(monkeypatch):
    monkeypatch.setattr(keys, "CHUNK_FRAMES", 7)  # chunk seams inside the take
    local, root, offsets = _motion(50)
    rest = keys.rest_frames(offsets)
    quats = keys.bone_quaternions(local, rest)
    # signs are continuous over time, also across chunk seams, and start with w >= 0
    assert np.all(np.sum(quats[1:] * quats[:-1], axis=-1) > 0) and np.all(quats[0, :, 0] >= 0)
    back_local, back_root, positions = keys.unbake(quats, keys.root_location(root, rest), rest, offsets)
    np.testing.assert_allclose(rot.quat_to_matrix(back_local), rot.quat_to_matrix(local), atol=1e-10)
    np.testing.assert_allclose(back_root, root, atol=1e-12)
    np.testing.assert_allclose(positions, forward_kinematics(rot.quat_to_matrix(local), offsets, root)[1], atol=1e-10)


def test_pose_quaternion_is_the_local_rotation_seen_in_the_bones_rest_frame():
    """B^T L B: the pose bone turns about the joint's axis written in the bone's own axes."""
    local, _root, offsets = _motion(5, seed=3)
    rest = keys.rest_frames(offsets)
    quats = keys.bone_quaternions(local, rest)
    expected = np.einsum("jba,fjbc,jcd->fjad", rest, rot.quat_to_matrix(local), rest)
    np.testing.assert_allclose(rot.quat_to_matrix(quats), expected, atol=1e-10)
