# SPDX-License-Identifier: GPL-3.0-or-later
"""Keys for a retarget as Blender will evaluate them, whatever drives the keyed bones' parents.

The core's retarget computes each keyed bone's pose relative to its parent in a plain
hierarchy. In a control rig (a generated Rigify rig) a control's parent is often a helper
bone that constraints move: it may copy the rotation of the torso instead of the neck below
it, or follow another control than the one above it. What such a parent does is measured in
Blender (:func:`.retarget_bake.probe_parents`): for every keyed bone, which keyed bone its
parent's rotation follows and which its head follows (or none: it stays put). Here, without
Blender, the core's world-space result is turned into pose keys under that model:

    world rotation of b = A @ N_b @ Q          (A: the rotation parent's rotation since neutral)
    world head of b     = X + A @ N_b @ L      (X: where b's head is carried with L = 0)

with ``N_b`` and ``h_b`` the bone's world rotation and head as Blender evaluates the rig in
its neutral pose (keyed bones at rest). For a plain hierarchy this gives the core's own keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

STATIC = -1


@dataclass(frozen=True)
class ParentModel:
    """How each keyed bone's parent moves (index into the keyed bones, or ``STATIC``).

    ``rot_parent[k]``: the keyed bone whose world rotation change the parent of bone ``k``
    takes; ``head_parent[k]``: the keyed bone that carries the parent's head rigidly;
    ``parent_heads[k]``: the parent's head in the neutral pose (the bone's own head for a
    bone without parent). ``partial``: bones whose parent follows a keyed bone only part way
    (the keys cannot follow such a parent exactly).
    """

    rot_parent: tuple[int, ...]
    head_parent: tuple[int, ...]
    parent_heads: NDArray[np.float64]
    partial: tuple[str, ...] = ()

    @classmethod
    def plain(cls, keyed_parents: list[int], heads: NDArray) -> ParentModel:
        """A plain hierarchy: each bone's parent follows its nearest keyed ancestor (``keyed_parents``)."""
        ph = np.array([heads[p] if p >= 0 else heads[k] for k, p in enumerate(keyed_parents)], dtype=np.float64)
        return cls(tuple(keyed_parents), tuple(keyed_parents), ph)


def pose_keys(
    model: ParentModel,
    world_rot: NDArray,
    world_head: NDArray,
    neutral_rot: NDArray,
    neutral_head: NDArray,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Pose quaternions (F, K, 4) wxyz and locations (F, K, 3) (world units, in each bone's own
    neutral axes) that put the keyed bones at ``world_rot`` (F, K, 3, 3) and ``world_head`` (F, K, 3).

    Bones are independent of each other here: a parent's motion is the *target* world pose of
    the keyed bone it follows, which Blender reaches because that bone is keyed too.
    """
    from kinest_core import rotations as rot

    r = np.asarray(world_rot, dtype=np.float64)
    h = np.asarray(world_head, dtype=np.float64)
    n_rot = np.asarray(neutral_rot, dtype=np.float64)
    n_head = np.asarray(neutral_head, dtype=np.float64)
    frames, k_count = h.shape[:2]
    change = r @ np.swapaxes(n_rot, -1, -2)[None]  # (F, K, 3, 3): each keyed bone's rotation since neutral
    eye = np.broadcast_to(np.eye(3), (frames, 3, 3))
    quats = np.empty((frames, k_count, 4))
    locs = np.empty((frames, k_count, 3))
    for k in range(k_count):
        rp, hp, p0 = model.rot_parent[k], model.head_parent[k], model.parent_heads[k]
        a = change[:, rp] if rp != STATIC else eye
        if hp != STATIC:
            p = h[:, hp] + np.einsum("fab,b->fa", change[:, hp], p0 - n_head[hp])
        else:
            p = np.broadcast_to(p0, (frames, 3))
        carried = p + np.einsum("fab,b->fa", a, n_head[k] - p0)
        a_t = np.swapaxes(a, -1, -2)
        quats[:, k] = rot.matrix_to_quat(n_rot[k].T @ a_t @ r[:, k])
        locs[:, k] = np.einsum("ba,fb->fa", n_rot[k], np.einsum("fab,fb->fa", a_t, h[:, k] - carried))
    return quats, locs


def continue_signs(quats: NDArray, previous: NDArray | None) -> NDArray[np.float64]:
    """Quaternions (F, K, 4) made sign-continuous over frames, starting from ``previous`` (K, 4) if given."""
    from kinest_core import rotations as rot

    q = np.asarray(quats, dtype=np.float64).copy()
    if previous is None:
        q *= np.where(q[:1, :, :1] < 0, -1.0, 1.0)
    else:
        q[:1] *= np.where(np.sum(q[:1] * previous[None], axis=-1, keepdims=True) < 0, -1.0, 1.0)
    return np.asarray(rot.quat_make_continuous(q, axis=0))
