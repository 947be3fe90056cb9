# SPDX-License-Identifier: GPL-3.0-or-later
"""The key maths of a take, both ways, without Blender: rest frames, pose channels, and back.

The armature's bone heads sit on the SMPL-22 joints of the performer's rest pose. Blender
bones point along their own Y axis, so a joint's local rotation L (identity at rest in the
core's frame) becomes the pose-bone rotation B^T L B, where B is the bone's armature-space rest
rotation: then every bone's armature-space frame is G @ B (G the joint's global rotation) and
its head lands on the core's joint position. The root bone's location is the root translation
in the pelvis bone's rest frame. :func:`local_rotations` and :func:`root_translation` undo both.

Nothing here imports ``bpy``, so the reconstruction's worker thread computes keys with it and
tests check it in plain Python. The core's modules are imported where they are used, so that
registering the add-on (which imports this module) loads neither the core nor SciPy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Bone names per preset, in SMPL-22 joint order.
BONE_NAME_PRESETS: dict[str, tuple[str, ...]] = {
    "SMPL": (
        "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
        "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
        "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist",
    ),
    "MIXAMO": tuple(
        "mixamorig:" + n
        for n in (
            "Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1",
            "LeftFoot", "RightFoot", "Spine2", "LeftToeBase", "RightToeBase", "Neck", "LeftShoulder",
            "RightShoulder", "Head", "LeftArm", "RightArm", "LeftForeArm", "RightForeArm",
            "LeftHand", "RightHand",
        )
    ),
    "UNREAL": (
        "pelvis", "thigh_l", "thigh_r", "spine_01", "calf_l", "calf_r", "spine_02", "foot_l",
        "foot_r", "spine_03", "ball_l", "ball_r", "neck_01", "clavicle_l", "clavicle_r", "head",
        "upperarm_l", "upperarm_r", "lowerarm_l", "lowerarm_r", "hand_l", "hand_r",
    ),
}  # fmt: skip

BONE_NAME_ITEMS = [
    ("SMPL", "SMPL", "SMPL joint names (pelvis, left_hip, ...)"),
    ("MIXAMO", "Mixamo-style", "mixamorig:Hips, mixamorig:LeftUpLeg, ... for Mixamo retargeting"),
    ("UNREAL", "Unreal-style", "pelvis, thigh_l, ... as on the UE mannequin"),
]

#: The child a bone's tail points at (the rest are leaves: feet, head, hands).
TAIL_CHILD = {0: 3, 1: 4, 2: 5, 3: 6, 4: 7, 5: 8, 6: 9, 7: 10, 8: 11, 9: 12, 12: 15, 13: 16, 14: 17, 16: 18, 17: 19, 18: 20, 19: 21}  # fmt: skip

#: Frames per chunk of the key maths (bounds its temporaries on hour-long takes).
CHUNK_FRAMES = 16384


def bone_names(preset: str) -> tuple[str, ...]:
    """The bone names of a preset; a clear error for an unknown one (e.g. a property edited by hand)."""
    try:
        return BONE_NAME_PRESETS[preset]
    except KeyError:
        raise ValueError(f"unknown bone name preset {preset!r}: use one of {', '.join(BONE_NAME_PRESETS)}") from None


def rest_joint_positions(rest_offsets: NDArray) -> NDArray[np.float64]:
    """Rest-pose joint positions (22, 3) of a body, through the core's forward kinematics."""
    from kinest_core.skeleton import NUM_JOINTS, forward_kinematics

    return forward_kinematics(np.tile(np.eye(3), (NUM_JOINTS, 1, 1)), rest_offsets)[1]


def bone_layout(rest_offsets: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Heads, tails and roll-reference Z axes (each (22, 3)) of the rest armature.

    Tails point at the chain child; leaves continue their limb (hands), point forward (feet)
    or up (head). Each bone's Z axis faces forward (-Y) or, for bones that point forward,
    up (+Z), so rolls are consistent on both sides for retargeting tools.
    """
    from kinest_core.skeleton import HEAD, PARENTS, Skeleton

    heads = rest_joint_positions(rest_offsets)
    scale = Skeleton(rest_offsets=np.asarray(rest_offsets, dtype=np.float64)).scale
    tails = np.empty_like(heads)
    for j in range(len(heads)):
        if j in TAIL_CHILD:
            tails[j] = heads[TAIL_CHILD[j]]
        elif j == HEAD:
            tails[j] = heads[j] + np.array([0.0, 0.0, 0.13 * scale])
        elif j in (10, 11):  # feet: forward along the floor
            tails[j] = heads[j] + np.array([0.0, -0.10 * scale, 0.0])
        else:  # hands continue the forearm
            d = heads[j] - heads[PARENTS[j]]
            tails[j] = heads[j] + 0.35 * d
    zref = np.tile(np.array([0.0, -1.0, 0.0]), (len(heads), 1))
    direction = tails - heads
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    forwardish = np.abs(direction[:, 1]) > 0.7
    zref[forwardish] = np.array([0.0, 0.0, 1.0])
    return heads, tails, zref


def rest_frames(rest_offsets: NDArray) -> NDArray[np.float64]:
    """The armature-space rest rotations (22, 3, 3) Blender gives the bones of :func:`bone_layout`.

    Each bone's Y axis points from head to tail and ``align_roll`` turns its Z axis onto the
    reference axis made perpendicular to Y; X completes the right-handed frame. Agrees with
    Blender's stored bone matrices to float precision (a test checks it), so a take's keys can
    be computed before (and without) touching the scene.
    """
    heads, tails, zref = bone_layout(rest_offsets)
    y = tails - heads
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    z = zref - np.sum(zref * y, axis=-1, keepdims=True) * y
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    return np.stack([np.cross(y, z), y, z], axis=-1)


def root_location(root_translation: NDArray, rest: NDArray) -> NDArray[np.float64]:
    """The root bone's location keys (F, 3): the root translation in the pelvis bone's rest frame."""
    return np.asarray(root_translation, dtype=np.float64) @ np.asarray(rest, dtype=np.float64)[0]  # B0^T T


def bone_quaternions(local_rotations: NDArray, rest: NDArray) -> NDArray[np.float64]:
    """Pose-bone quaternions (F, J, 4) wxyz, sign-continuous, of joints whose local rotations are
    ``local_rotations`` (F, J, 4) and whose bones' armature-space rest rotations are ``rest`` (J, 3, 3).

    The pose-bone rotation B^T L B is the quaternion product conj(b) l b (b the rest rotation's
    quaternion): a fixed linear map of l per bone, applied ``CHUNK_FRAMES`` frames at a time;
    signs start with w >= 0 and each chunk continues the last frame of the one before. Each
    bone is independent of the others, so one bone at a time (``J = 1``) gives exactly that
    bone's part of all of them at once.
    """
    from kinest_core import rotations as rot

    rest = np.asarray(rest, dtype=np.float64)
    b = rot.matrix_to_quat(rest)[:, None, :]  # (J, 1, 4)
    basis = np.eye(4)[None]  # (1, 4, 4): row k is the unit quaternion e_k
    # maps[j, k] = conj(b_j) e_k b_j, so conj(b_j) l b_j = sum_k l_k maps[j, k] = l @ maps[j]
    maps = rot.quat_multiply(rot.quat_multiply(rot.quat_conjugate(b), basis), b)  # (J, 4, 4)
    local = np.asarray(local_rotations, dtype=np.float64)
    n = local.shape[0]
    quats = np.empty((n, len(rest), 4))
    prev = None
    for a in range(0, n, CHUNK_FRAMES):
        lq = rot.quat_normalize(local[a : a + CHUNK_FRAMES])
        c = np.matmul(lq[:, :, None, :], maps)[:, :, 0]  # the row vector l times each bone's map
        c *= np.where(c[..., :1] < 0, -1.0, 1.0)
        c = rot.quat_make_continuous(c, axis=0)
        if prev is not None:
            c *= np.where(np.sum(c[:1] * prev, axis=-1, keepdims=True) < 0, -1.0, 1.0)
        prev = c[-1:]
        quats[a : a + CHUNK_FRAMES] = c
    return quats


def root_translation(location: NDArray, rest: NDArray) -> NDArray[np.float64]:
    """The root translation (F, 3) whose :func:`root_location` keys are ``location`` (F, 3): T = B0 loc."""
    return np.asarray(location, dtype=np.float64) @ np.asarray(rest, dtype=np.float64)[0].T


def unbake(
    pose_quaternions: NDArray, location: NDArray, rest: NDArray, rest_offsets: NDArray
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(local rotations (F, J, 4) wxyz sign-continuous, root translation (F, 3), joint positions (F, J, 3)).

    Undoes :func:`bone_quaternions` (L = B Q B^T) and :func:`root_location` for pose-bone
    quaternions (F, J, 4) and root-bone locations (F, 3) keyed on bones whose rest rotations are
    ``rest`` (J, 3, 3), then runs the core's forward kinematics on ``rest_offsets``. The keys may
    have been edited by hand, so each quaternion is normalised first.
    """
    from kinest_core import rotations as rot
    from kinest_core.skeleton import forward_kinematics

    rest = np.asarray(rest, dtype=np.float64)
    pose = rot.quat_to_matrix(rot.quat_normalize(np.asarray(pose_quaternions, dtype=np.float64)))
    local = np.einsum("jab,fjbc,jdc->fjad", rest, pose, rest)
    root = root_translation(location, rest)
    _, positions = forward_kinematics(local, rest_offsets, root)
    return rot.quat_make_continuous(rot.matrix_to_quat(local), axis=0), root, positions
