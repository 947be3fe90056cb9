# SPDX-License-Identifier: GPL-3.0-or-later
"""Rotation conversions in torch: batched, differentiable, stable near 0 and pi.

Same names and conventions as :mod:`kinest_core.rotations` (wxyz quaternions,
6D = first column then second column). Used by the model, the losses and FK.
"""

from __future__ import annotations

import torch
from torch import Tensor

_EPS = 1e-8


def quat_normalize(q: Tensor) -> Tensor:
    return q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def quat_to_matrix(q: Tensor) -> Tensor:
    w, x, y, z = quat_normalize(q).unbind(-1)
    m = torch.stack(
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
        dim=-1,
    )
    return m.reshape(q.shape[:-1] + (3, 3))


def matrix_to_quat(m: Tensor) -> Tensor:
    """Matrices -> wxyz quaternions, ``w >= 0``; picks the best-conditioned candidate."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    cands = torch.stack(
        [
            torch.stack(
                [
                    1 + m00 + m11 + m22,
                    m[..., 2, 1] - m[..., 1, 2],
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 1, 0] - m[..., 0, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 2, 1] - m[..., 1, 2],
                    1 + m00 - m11 - m22,
                    m[..., 0, 1] + m[..., 1, 0],
                    m[..., 0, 2] + m[..., 2, 0],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 0, 2] - m[..., 2, 0],
                    m[..., 0, 1] + m[..., 1, 0],
                    1 - m00 + m11 - m22,
                    m[..., 1, 2] + m[..., 2, 1],
                ],
                -1,
            ),
            torch.stack(
                [
                    m[..., 1, 0] - m[..., 0, 1],
                    m[..., 0, 2] + m[..., 2, 0],
                    m[..., 1, 2] + m[..., 2, 1],
                    1 - m00 - m11 + m22,
                ],
                -1,
            ),
        ],
        dim=-2,
    )
    diag = torch.stack([m00 + m11 + m22, m00, m11, m22], dim=-1)
    best = diag.argmax(dim=-1)
    idx = best[..., None, None].expand(best.shape + (1, 4))
    q = torch.gather(cands, -2, idx).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_to_axis_angle(q: Tensor) -> Tensor:
    q = quat_normalize(q)
    q = torch.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    n = v.norm(dim=-1, keepdim=True)
    small = n < 1e-6
    n_safe = torch.where(small, torch.ones_like(n), n)
    w = q[..., :1]
    angle = 2 * torch.atan2(n_safe, w)
    # Near zero: angle/n -> 2/w (1 - n^2/(3 w^2)); avoids 0/0 in value and gradient.
    w_safe = w.clamp_min(_EPS)
    small_scale = 2.0 / w_safe - (2.0 / 3.0) * (n * n) / (w_safe**3)
    scale = torch.where(small, small_scale, angle / n_safe)
    return v * scale


def matrix_to_axis_angle(m: Tensor) -> Tensor:
    """SO(3) logarithm via quaternions (stable near 0 and pi)."""
    return quat_to_axis_angle(matrix_to_quat(m))


def axis_angle_to_matrix(v: Tensor) -> Tensor:
    """SO(3) exponential (Rodrigues with Taylor terms near zero)."""
    theta2 = (v * v).sum(-1, keepdim=True)[..., None]
    small = theta2 < 1e-8
    t2_safe = torch.where(small, torch.ones_like(theta2), theta2)
    theta = t2_safe.sqrt()
    a = torch.where(small, 1 - theta2 / 6 + theta2 * theta2 / 120, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24 + theta2 * theta2 / 720, (1 - torch.cos(theta)) / t2_safe)
    k = hat(v)
    eye = torch.eye(3, dtype=v.dtype, device=v.device).expand(k.shape)
    return eye + a * k + b * (k @ k)


def axis_angle_to_quat(v: Tensor) -> Tensor:
    theta2 = (v * v).sum(-1, keepdim=True)
    small = theta2 < 1e-10
    theta = torch.where(small, torch.ones_like(theta2), theta2).sqrt()
    s = torch.where(small, 0.5 - theta2 / 48, torch.sin(theta / 2) / theta)
    c = torch.where(small, 1 - theta2 / 8, torch.cos(theta / 2))
    return torch.cat([c, v * s], dim=-1)


def matrix_to_6d(m: Tensor) -> Tensor:
    return torch.cat([m[..., :, 0], m[..., :, 1]], dim=-1)


def sixd_to_matrix(d: Tensor) -> Tensor:
    a1, a2 = d[..., :3], d[..., 3:6]
    b1 = a1 / a1.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    a2p = a2 - (b1 * a2).sum(-1, keepdim=True) * b1
    b2 = a2p / a2p.norm(dim=-1, keepdim=True).clamp_min(_EPS)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def hat(v: Tensor) -> Tensor:
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(v.shape[:-1] + (3, 3))


so3_exp = axis_angle_to_matrix
so3_log = matrix_to_axis_angle
