# SPDX-License-Identifier: GPL-3.0-or-later
"""Rotation conversions against SciPy, including the edge cases (angle 0 and pi) and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from kinest_core import rotations as rot
from kinest_core import rotations_torch as trot


def _edge_rotvecs() -> np.ndarray:
    axes = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, -2, 3]], dtype=float)
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = [0.0, 1e-9, 1e-6, 1e-3, np.pi / 2, np.pi - 1e-6, np.pi]
    return np.array([a * ax for ax in axes for a in angles])


@pytest.fixture
def rotvecs() -> np.ndarray:
    rng = np.random.default_rng(0)
    random = Rotation.random(200, random_state=1).as_rotvec()
    small = rng.normal(size=(20, 3)) * 1e-5
    return np.concatenate([random, small, _edge_rotvecs()])


def test_matrix_quaternion_axis_angle_match_scipy(rotvecs: np.ndarray) -> None:
    ref = Rotation.from_rotvec(rotvecs)
    m = rot.axis_angle_to_matrix(rotvecs)
    np.testing.assert_allclose(m, ref.as_matrix(), atol=1e-12)
    q = rot.matrix_to_quat(m)
    ref_q = ref.as_quat(scalar_first=True)
    ref_q = np.where(ref_q[:, :1] < 0, -ref_q, ref_q)
    # at exactly pi, q and -q both have w = 0: compare as rotations
    np.testing.assert_allclose(np.abs(np.sum(q * ref_q, axis=1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(rot.quat_to_matrix(q), ref.as_matrix(), atol=1e-12)
    back = rot.matrix_to_axis_angle(m)
    np.testing.assert_allclose(rot.axis_angle_to_matrix(back), ref.as_matrix(), atol=1e-9)
    angles = np.linalg.norm(back, axis=1)
    np.testing.assert_allclose(angles, ref.magnitude(), atol=1e-7)


def test_sixd_roundtrip_and_layout(rotvecs: np.ndarray) -> None:
    m = Rotation.from_rotvec(rotvecs).as_matrix()
    d = rot.matrix_to_6d(m)
    np.testing.assert_allclose(d[:, :3], m[:, :, 0])  # first column first
    np.testing.assert_allclose(d[:, 3:], m[:, :, 1])
    np.testing.assert_allclose(rot.sixd_to_matrix(d), m, atol=1e-12)
    noisy = d + np.random.default_rng(1).normal(scale=0.05, size=d.shape)
    r = rot.sixd_to_matrix(noisy)
    np.testing.assert_allclose(r @ np.swapaxes(r, -1, -2), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-12)


def test_quaternion_product_and_slerp_match_scipy() -> None:
    a, b = Rotation.random(50, random_state=2), Rotation.random(50, random_state=3)
    qa, qb = a.as_quat(scalar_first=True), b.as_quat(scalar_first=True)
    prod = rot.quat_multiply(qa, qb)
    np.testing.assert_allclose(rot.quat_to_matrix(prod), (a * b).as_matrix(), atol=1e-12)
    from scipy.spatial.transform import Slerp

    for i in range(5):
        s = Slerp([0, 1], Rotation.concatenate([a[i], b[i]]))
        for t in (0.0, 0.3, 0.5, 1.0):
            got = rot.quat_slerp(qa[i], qb[i], t)
            np.testing.assert_allclose(rot.quat_to_matrix(got), s([t]).as_matrix()[0], atol=1e-9)


def test_euler_orders_follow_scipy_spelling() -> None:
    angles = np.array([[10.0, 20.0, 30.0]])
    intrinsic = rot.euler_to_matrix(angles, "ZXY", degrees=True)[0]
    rz, rx, ry = (Rotation.from_euler(ax, a, degrees=True).as_matrix() for ax, a in zip("zxy", angles[0], strict=True))
    np.testing.assert_allclose(intrinsic, rz @ rx @ ry, atol=1e-12)
    np.testing.assert_allclose(rot.matrix_to_euler(intrinsic[None], "ZXY", degrees=True), angles, atol=1e-9)


def test_quat_make_continuous_removes_sign_flips() -> None:
    q = Rotation.from_rotvec(np.linspace(0, 3, 40)[:, None] * np.array([[0, 0, 1.0]])).as_quat(scalar_first=True)
    flipped = q.copy()
    flipped[::3] *= -1
    fixed = rot.quat_make_continuous(flipped)
    assert np.all(np.sum(fixed[1:] * fixed[:-1], axis=1) > 0)
    np.testing.assert_allclose(np.abs(np.sum(fixed * q, axis=1)), 1.0)


def test_torch_twins_match_numpy(rotvecs: np.ndarray) -> None:
    v = torch.tensor(rotvecs)
    np.testing.assert_allclose(trot.axis_angle_to_matrix(v).numpy(), rot.axis_angle_to_matrix(rotvecs), atol=1e-12)
    m = torch.tensor(rot.axis_angle_to_matrix(rotvecs))
    q_t = trot.matrix_to_quat(m).numpy()
    q_n = rot.matrix_to_quat(m.numpy())
    np.testing.assert_allclose(np.abs(np.sum(q_t * q_n, axis=1)), 1.0, atol=1e-9)
    np.testing.assert_allclose(trot.axis_angle_to_matrix(trot.matrix_to_axis_angle(m)).numpy(), m.numpy(), atol=1e-9)
    np.testing.assert_allclose(trot.sixd_to_matrix(trot.matrix_to_6d(m)).numpy(), m.numpy(), atol=1e-12)
    np.testing.assert_allclose(trot.quat_to_matrix(torch.tensor(q_n)).numpy(), m.numpy(), atol=1e-12)
    np.testing.assert_allclose(
        trot.axis_angle_to_quat(v).numpy() * np.sign(trot.axis_angle_to_quat(v).numpy()[:, :1] + 1e-30),
        rot.axis_angle_to_quat(rotvecs) * np.sign(rot.axis_angle_to_quat(rotvecs)[:, :1] + 1e-30),
        atol=1e-9,
    )


def test_torch_log_exp_gradients_are_finite_at_zero_and_near_pi() -> None:
    v = torch.tensor(
        [[0.0, 0.0, 0.0], [1e-7, 0.0, 0.0], [0.0, np.pi - 1e-4, 0.0], [0.3, -0.2, 0.1]], dtype=torch.float64
    )
    v.requires_grad_(True)
    m = trot.axis_angle_to_matrix(v)
    back = trot.matrix_to_axis_angle(m)
    back.sum().backward()
    assert v.grad is not None and torch.isfinite(v.grad).all()
    # log(exp(v)) = v, so d(sum)/dv = 1 away from the pi cut
    np.testing.assert_allclose(v.grad[[0, 1, 3]].numpy(), 1.0, atol=1e-5)


def test_torch_gradcheck_log_and_6d() -> None:
    m = torch.tensor(Rotation.random(4, random_state=5).as_matrix(), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: trot.quat_to_axis_angle(trot.matrix_to_quat(x)), (m,))
    d = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(trot.sixd_to_matrix, (d,))
