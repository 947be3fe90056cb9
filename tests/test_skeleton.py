# SPDX-License-Identifier: GPL-3.0-or-later
"""SMPL-22 skeleton, forward kinematics (NumPy and torch), features and the UKS order."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from kinest_core import skeleton as sk
from kinest_core.features import (
    canonicalize_positions,
    canonicalize_positions_torch,
    features_from_transforms,
    tracking_features,
    tracking_features_torch,
)


def test_neutral_body_is_upright_symmetric_and_scaled() -> None:
    for height in (1.5, 1.75, 1.95):
        s = sk.Skeleton.neutral(height)
        j = s.rest_joints()
        assert abs(s.height - height) < 1e-9
        assert j[sk.HEAD, 2] > j[0, 2] > j[7, 2] > 0  # head above pelvis above ankles above floor
        assert abs(min(j[10, 2], j[11, 2]) - sk.FOOT_ABOVE_FLOOR * height / sk.NEUTRAL_HEIGHT) < 1e-9
        for a, b in enumerate(sk.MIRROR_JOINTS):
            np.testing.assert_allclose(j[a] * [-1, 1, 1], j[b], atol=1e-12)
        assert j[sk.LEFT_WRIST, 0] > 0.5 * height / 1.75  # T-pose, left arm toward +X


def test_mirror_and_parents_are_consistent() -> None:
    for a, b in enumerate(sk.MIRROR_JOINTS):
        assert sk.MIRROR_JOINTS[b] == a
        pa, pb = sk.PARENTS[a], sk.PARENTS[b]
        assert (pa < 0 and pb < 0) or sk.MIRROR_JOINTS[pa] == pb
    assert sk.JOINT_NAMES[sk.HEAD] == "head" and sk.JOINT_NAMES[20] == "left_wrist"


def test_uks_order_is_a_valid_kinematic_walk() -> None:
    order = sk.UKS_ORDER
    assert sorted(order) == list(range(sk.NUM_JOINTS))
    assert order[0] == sk.RIGHT_WRIST
    for prev, cur in zip(order[:-1], order[1:], strict=True):
        adjacent = sk.PARENTS[cur] == prev or sk.PARENTS[prev] == cur
        assert adjacent or cur in sk.UKS_CHAIN_STARTS, f"{sk.JOINT_NAMES[prev]} -> {sk.JOINT_NAMES[cur]} is a jump"
    # exactly the declared chain starts break adjacency (besides the first joint)
    breaks = [c for p, c in zip(order[:-1], order[1:], strict=True) if not (sk.PARENTS[c] == p or sk.PARENTS[p] == c)]
    assert set(breaks) == set(sk.UKS_CHAIN_STARTS) - {order[0]}
    assert sk.LEFT_WRIST in sk.UKS_CHAIN_STARTS  # both tracked hands start chains


def test_fk_numpy_matches_explicit_chain_and_torch() -> None:
    rng = np.random.default_rng(0)
    s = sk.Skeleton.neutral(1.8)
    local = Rotation.random(5 * 22, random_state=3).as_matrix().reshape(5, 22, 3, 3)
    trans = rng.normal(size=(5, 3))
    glob, pos = sk.forward_kinematics(local, s.rest_offsets, trans)
    # left wrist by walking the chain by hand
    chain = [20]
    while sk.PARENTS[chain[-1]] >= 0:
        chain.append(sk.PARENTS[chain[-1]])
    chain = chain[::-1]
    for f in range(5):
        g = local[f, 0]
        p = s.rest_offsets[0] + trans[f]
        for j in chain[1:]:
            p = p + g @ s.rest_offsets[j]
            g = g @ local[f, j]
        np.testing.assert_allclose(pos[f, 20], p, atol=1e-12)
        np.testing.assert_allclose(glob[f, 20], g, atol=1e-12)
    tg, tp = sk.forward_kinematics_torch(torch.tensor(local), torch.tensor(s.rest_offsets), torch.tensor(trans))
    np.testing.assert_allclose(tp.numpy(), pos, atol=1e-12)
    np.testing.assert_allclose(tg.numpy(), glob, atol=1e-12)
    # bone lengths are preserved by any rotation
    for j in range(1, 22):
        np.testing.assert_allclose(
            np.linalg.norm(pos[:, j] - pos[:, sk.PARENTS[j]], axis=-1), np.linalg.norm(s.rest_offsets[j]), atol=1e-12
        )


def test_features_layout_matches_the_paper() -> None:
    rng = np.random.default_rng(1)
    n = 10
    r = Rotation.random(n * 3, random_state=4).as_matrix().reshape(n, 3, 3, 3)
    p = rng.normal(size=(n, 3, 3))
    f = tracking_features(r, p)
    assert f.shape == (n, 54) and f.dtype == np.float32
    np.testing.assert_allclose(f[:, 0:3], r[:, 0, :, 0], atol=1e-6)  # head 6D: first column...
    np.testing.assert_allclose(f[:, 3:6], r[:, 0, :, 1], atol=1e-6)  # ...then the second
    delta = np.swapaxes(r[3], -1, -2) @ r[4]  # R_{t-1}^T R_t at t = 4
    np.testing.assert_allclose(f[4, 18:21], delta[0, :, 0], atol=1e-6)
    np.testing.assert_allclose(f[:, 36:45], p.reshape(n, 9), atol=1e-6)
    np.testing.assert_allclose(f[4, 45:54], (p[4] - p[3]).reshape(9), atol=1e-6)
    np.testing.assert_allclose(f[0, 45:54], f[1, 45:54])  # first frame repeats the second
    np.testing.assert_allclose(f[0, 18:36], f[1, 18:36])
    ft = tracking_features_torch(torch.tensor(r)[None], torch.tensor(p)[None])[0].numpy()
    np.testing.assert_allclose(ft, f, atol=1e-6)
    t = np.tile(np.eye(4), (n, 3, 1, 1))
    t[..., :3, :3], t[..., :3, 3] = r, p
    np.testing.assert_allclose(features_from_transforms(t), f)


def test_canonicalize_moves_head_to_origin_horizontally_only() -> None:
    p = np.random.default_rng(2).normal(size=(2, 30, 3, 3)) + np.array([5.0, -3.0, 1.5])
    c = canonicalize_positions(p)
    np.testing.assert_allclose(c[..., 0, :2].mean(axis=-2), 0.0, atol=1e-12)
    np.testing.assert_allclose(c[..., 2], p[..., 2])
    np.testing.assert_allclose(c[..., 1, :] - c[..., 0, :], p[..., 1, :] - p[..., 0, :])
    np.testing.assert_allclose(canonicalize_positions_torch(torch.tensor(p)).numpy(), c, atol=1e-12)
