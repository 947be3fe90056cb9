# SPDX-License-Identifier: GPL-3.0-or-later
"""Rotation conversions in NumPy (batched over leading axes).

Conventions are in the names: quaternions are ``wxyz`` (scalar first) unless a
function says ``xyzw``; 6D is the first matrix column followed by the second
(the AvatarPoser/AGRoL layout used by the model's features); axis-angle vectors
have the angle (radians) as their length. Euler angles go through SciPy.
The torch twins live in :mod:`kinest_core.rotations_torch`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

Array = NDArray[np.float64]

_EPS = 1e-8


def quat_normalize(q: NDArray) -> Array:
    """Unit quaternions; zero-length input raises instead of producing NaN."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(n < _EPS):
        raise ValueError("zero-length quaternion cannot be normalised")
    return q / n


def quat_xyzw_to_wxyz(q: NDArray) -> Array:
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., 3:4], q[..., :3]], axis=-1)


def quat_wxyz_to_xyzw(q: NDArray) -> Array:
    q = np.asarray(q, dtype=np.float64)
    return np.concatenate([q[..., 1:4], q[..., 0:1]], axis=-1)


def quat_multiply(a: NDArray, b: NDArray) -> Array:
    """Hamilton product ``a * b`` of wxyz quaternions (rotation b, then a)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_conjugate(q: NDArray) -> Array:
    q = np.asarray(q, dtype=np.float64)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_to_matrix(q: NDArray) -> Array:
    """wxyz quaternions (normalised here) -> rotation matrices ``(..., 3, 3)``."""
    q = quat_normalize(q)
    w, x, y, z = np.moveaxis(q, -1, 0)
    m = np.stack(
        [
            1 - 2 * (y * y + z * z),
            2 * (x * y - z * w),
            2 * (x * z + y * w),
            2 * (x * y + z * w),
            1 - 2 * (x * x + z * z),
            2 * (y * z - x * w),
            2 * (x * z - y * w),
            2 * (y * z + x * w),
            1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: NDArray) -> Array:
    """Rotation matrices -> wxyz quaternions with ``w >= 0`` (Shepperd's method, stable at pi)."""
    m = np.asarray(m, dtype=np.float64)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    cands = np.stack(
        [
            np.stack(
                [
                    1 + m00 + m11 + m22,
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                -1,
            ),
            np.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + m00 - m11 - m22,
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            np.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 - m00 + m11 - m22,
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            np.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 - m00 - m11 + m22,
                ],
                -1,
            ),
        ],
        axis=-2,
    )
    diag = np.stack([m00 + m11 + m22, m00, m11, m22], axis=-1)
    best = np.argmax(diag, axis=-1)
    q = np.take_along_axis(cands, best[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def axis_angle_to_matrix(v: NDArray) -> Array:
    """SO(3) exponential (Rodrigues), exact to float precision at small angles."""
    v = np.asarray(v, dtype=np.float64)
    theta = np.linalg.norm(v, axis=-1)[..., None, None]
    k = _hat(v)
    small = theta < 1e-4
    t2 = theta * theta
    safe = np.where(small, 1.0, theta)
    a = np.where(small, 1 - t2 / 6 + t2 * t2 / 120, np.sin(safe) / safe)
    b = np.where(small, 0.5 - t2 / 24 + t2 * t2 / 720, (1 - np.cos(safe)) / (safe * safe))
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + a * k + b * (k @ k)


def matrix_to_axis_angle(m: NDArray) -> Array:
    """SO(3) logarithm, angle in ``[0, pi]``; stable near 0 and near pi (via quaternions)."""
    return quat_to_axis_angle(matrix_to_quat(m))


def quat_to_axis_angle(q: NDArray) -> Array:
    q = quat_normalize(q)
    q = np.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    angle = 2 * np.arctan2(n, q[..., :1])
    small = n < 1e-8
    scale = np.where(small, 2.0 / np.maximum(q[..., :1], _EPS), angle / np.where(small, 1.0, n))
    return v * scale


def axis_angle_to_quat(v: NDArray) -> Array:
    v = np.asarray(v, dtype=np.float64)
    theta = np.linalg.norm(v, axis=-1, keepdims=True)
    half = theta / 2
    small = theta < 1e-6
    s = np.where(small, 0.5 - theta * theta / 48, np.sin(half) / np.where(small, 1.0, theta))
    return np.concatenate([np.cos(half), v * s], axis=-1)


def matrix_to_6d(m: NDArray) -> Array:
    """First column then second column: ``(..., 3, 3) -> (..., 6)``."""
    m = np.asarray(m, dtype=np.float64)
    return np.concatenate([m[..., :, 0], m[..., :, 1]], axis=-1)


def sixd_to_matrix(d: NDArray) -> Array:
    """Gram-Schmidt from the two stored columns: ``(..., 6) -> (..., 3, 3)``."""
    d = np.asarray(d, dtype=np.float64)
    a1, a2 = d[..., :3], d[..., 3:6]
    b1 = a1 / np.maximum(np.linalg.norm(a1, axis=-1, keepdims=True), _EPS)
    a2p = a2 - np.sum(b1 * a2, axis=-1, keepdims=True) * b1
    b2 = a2p / np.maximum(np.linalg.norm(a2p, axis=-1, keepdims=True), _EPS)
    b3 = np.cross(b1, b2)
    return np.stack([b1, b2, b3], axis=-1)


def euler_to_matrix(angles: NDArray, order: str, degrees: bool = False) -> Array:
    """Euler angles -> matrices; ``order`` in SciPy's spelling (``'XYZ'`` intrinsic, ``'xyz'`` extrinsic)."""
    angles = np.asarray(angles, dtype=np.float64)
    flat = Rotation.from_euler(order, angles.reshape(-1, 3), degrees=degrees).as_matrix()
    return flat.reshape(angles.shape[:-1] + (3, 3))


def matrix_to_euler(m: NDArray, order: str, degrees: bool = False) -> Array:
    m = np.asarray(m, dtype=np.float64)
    flat = Rotation.from_matrix(m.reshape(-1, 3, 3)).as_euler(order, degrees=degrees)
    return flat.reshape(m.shape[:-2] + (3,))


def quat_make_continuous(q: NDArray, axis: int = 0) -> Array:
    """Flip signs along ``axis`` so consecutive quaternions have non-negative dot products.

    q and -q are the same rotation, but curves that interpolate the numbers are not. Each
    step's flip is relative to the previous raw sample, so the total sign is a running
    product of the step flips (vectorised: no Python loop over frames).
    """
    q = np.moveaxis(np.asarray(q, dtype=np.float64), axis, 0)
    if q.shape[0] < 2:
        return np.moveaxis(q.copy(), 0, axis)
    step = np.where(np.sum(q[1:] * q[:-1], axis=-1, keepdims=True) < 0, -1.0, 1.0)
    sign = np.concatenate([np.ones_like(step[:1]), np.cumprod(step, axis=0)], axis=0)
    return np.moveaxis(q * sign, 0, axis)


def quat_slerp(q0: NDArray, q1: NDArray, t: NDArray | float) -> Array:
    """Spherical interpolation between wxyz quaternions (shortest path), ``t`` broadcast."""
    q0 = quat_normalize(q0)
    q1 = quat_normalize(q1)
    t = np.asarray(t, dtype=np.float64)[..., None] if np.ndim(t) else np.asarray(t, dtype=np.float64)
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.clip(np.abs(dot), -1.0, 1.0)
    theta = np.arccos(dot)
    sin_t = np.sin(theta)
    small = sin_t < 1e-6
    safe = np.where(small, 1.0, sin_t)
    w0 = np.where(small, 1 - t, np.sin((1 - t) * theta) / safe)
    w1 = np.where(small, t, np.sin(t * theta) / safe)
    out = w0 * q0 + w1 * q1
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def geodesic_angle(a: NDArray, b: NDArray) -> Array:
    """Angle (radians) of ``a^T b`` for rotation matrices, in ``[0, pi]``."""
    rel = np.swapaxes(np.asarray(a, dtype=np.float64), -1, -2) @ np.asarray(b, dtype=np.float64)
    return np.linalg.norm(matrix_to_axis_angle(rel), axis=-1)


def _hat(v: NDArray) -> Array:
    x, y, z = np.moveaxis(np.asarray(v, dtype=np.float64), -1, 0)
    zero = np.zeros_like(x)
    return np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(v.shape[:-1] + (3, 3))


so3_exp = axis_angle_to_matrix
so3_log = matrix_to_axis_angle
