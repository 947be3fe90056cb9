# SPDX-License-Identifier: GPL-3.0-or-later
"""The model's 54 input numbers per frame, from head and wrist joint world transforms.

Layout (per frame, devices in head, left wrist, right wrist order):
``[0:18]`` global rotation 6D, ``[18:36]`` 6D of ``R_{t-1}^T R_t`` (first frame: identity
change copied from the second), ``[36:45]`` positions (m), ``[45:54]`` ``p_t - p_{t-1}``
(first frame repeats the second).
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from kinest_core import rotations as rot
from kinest_core import rotations_torch as trot

NUM_FEATURES = 54
HEAD_POSITION = slice(36, 39)  # the tracked head's position (m) inside the 54


def tracking_features(rotations: NDArray, positions: NDArray) -> NDArray[np.float32]:
    """``rotations`` (frames, 3, 3, 3) and ``positions`` (frames, 3, 3) -> (frames, 54) float32."""
    r = np.asarray(rotations, dtype=np.float64)
    p = np.asarray(positions, dtype=np.float64)
    n = r.shape[0]
    if n < 2:
        r = np.concatenate([r, r], axis=0)
        p = np.concatenate([p, p], axis=0)
    delta_r = np.swapaxes(r[:-1], -1, -2) @ r[1:]
    delta_r = np.concatenate([delta_r[:1], delta_r], axis=0)
    delta_p = p[1:] - p[:-1]
    delta_p = np.concatenate([delta_p[:1], delta_p], axis=0)
    f = np.concatenate(
        [
            rot.matrix_to_6d(r).reshape(-1, 18),
            rot.matrix_to_6d(delta_r).reshape(-1, 18),
            p.reshape(-1, 9),
            delta_p.reshape(-1, 9),
        ],
        axis=-1,
    )
    return f[:n].astype(np.float32)


def tracking_features_torch(rotations: Tensor, positions: Tensor) -> Tensor:
    """Torch twin of :func:`tracking_features` for batches: (..., frames, 3, 3, 3), (..., frames, 3, 3)."""
    delta_r = rotations[..., :-1, :, :, :].transpose(-1, -2) @ rotations[..., 1:, :, :, :]
    delta_r = torch.cat([delta_r[..., :1, :, :, :], delta_r], dim=-4)
    delta_p = positions[..., 1:, :, :] - positions[..., :-1, :, :]
    delta_p = torch.cat([delta_p[..., :1, :, :], delta_p], dim=-3)
    lead = rotations.shape[:-3]
    return torch.cat(
        [
            trot.matrix_to_6d(rotations).reshape(lead + (18,)),
            trot.matrix_to_6d(delta_r).reshape(lead + (18,)),
            positions.reshape(lead + (9,)),
            delta_p.reshape(lead + (9,)),
        ],
        dim=-1,
    )


def features_from_transforms(transforms: NDArray) -> NDArray[np.float32]:
    """(frames, 3, 4, 4) world matrices of head, left wrist, right wrist -> (frames, 54)."""
    t = np.asarray(transforms, dtype=np.float64)
    return tracking_features(t[..., :3, :3], t[..., :3, 3])


def canonicalize_positions(positions: NDArray) -> NDArray[np.float64]:
    """Shift a window horizontally so the head's mean x, y over its frames is 0 (z kept).

    The model then sees where the hands are relative to the head and how high everything
    is above the floor, but not where in the room the performer stands.
    ``positions``: (..., frames, 3, 3) with device 0 the head.
    """
    p = np.array(positions, dtype=np.float64, copy=True)
    shift = p[..., :, 0, :2].mean(axis=-2)  # (..., 2)
    p[..., :2] -= shift[..., None, None, :]
    return p


def canonicalize_positions_torch(positions: Tensor) -> Tensor:
    """Torch twin of :func:`canonicalize_positions`."""
    shift = positions[..., :, 0, :2].mean(dim=-2)
    zero = torch.zeros_like(shift[..., :1])
    return positions - torch.cat([shift, zero], dim=-1)[..., None, None, :]
