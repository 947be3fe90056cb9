# SPDX-License-Identifier: GPL-3.0-or-later
"""The SMPL-22 body skeleton: names, parents, a neutral rest pose and forward kinematics.

World frame everywhere: Z up, right-handed, metres. In the rest pose the body stands
upright, faces -Y (Blender's front view) and has its left side at +X, arms in a T.
A joint's local rotation turns its rest offsets; joint 0 (pelvis) carries the global
orientation. The rest pose is built in, derived from the SMPL neutral body's joint
layout (rounded and made left/right symmetric), so nothing licence-gated is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

if TYPE_CHECKING:  # torch is imported where it is used: readers and the add-on load this module fast
    from torch import Tensor

JOINT_NAMES: tuple[str, ...] = (
    "pelvis",
    "left_hip",
    "right_hip",
    "spine1",
    "left_knee",
    "right_knee",
    "spine2",
    "left_ankle",
    "right_ankle",
    "spine3",
    "left_foot",
    "right_foot",
    "neck",
    "left_collar",
    "right_collar",
    "head",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
)
PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)
NUM_JOINTS = 22
HEAD, LEFT_WRIST, RIGHT_WRIST = 15, 20, 21
TRACKED_JOINTS: tuple[int, int, int] = (HEAD, LEFT_WRIST, RIGHT_WRIST)
LEFT_FOOT_JOINTS = (7, 10)  # ankle, foot
RIGHT_FOOT_JOINTS = (8, 11)
HAND_JOINTS = (20, 21)
UPPER_BODY_JOINTS = (3, 6, 9, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21)
LOWER_BODY_JOINTS = (0, 1, 2, 4, 5, 7, 8, 10, 11)

#: Left/right partner of every joint (itself on the spine), for mirroring.
MIRROR_JOINTS: tuple[int, ...] = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20)

#: Unidirectional kinematics scanning order (the paper's): right arm, then head -> neck,
#: then left arm -> spine -> pelvis -> left leg, then the right leg. Each entry of
#: UKS_CHAIN_STARTS begins a new chain (its predecessor need not be adjacent in the tree):
#: the tracked end effectors (both wrists, the head) and the second leg.
UKS_ORDER: tuple[int, ...] = (21, 19, 17, 14, 15, 12, 20, 18, 16, 13, 9, 6, 3, 0, 1, 4, 7, 10, 2, 5, 8, 11)
UKS_CHAIN_STARTS: tuple[int, ...] = (21, 15, 20, 2)

# SMPL neutral joint layout (metres, SMPL's own Y-up frame, facing +Z), symmetrised.
_SMPL_YUP_JOINTS = np.array(
    [
        [0.000, -0.223, 0.028],  # pelvis
        [0.069, -0.314, 0.023],  # left_hip
        [-0.069, -0.314, 0.023],  # right_hip
        [0.000, -0.109, 0.002],  # spine1
        [0.105, -0.676, 0.034],  # left_knee
        [-0.105, -0.676, 0.034],  # right_knee
        [0.000, 0.030, 0.029],  # spine2
        [0.089, -1.086, -0.025],  # left_ankle
        [-0.089, -1.086, -0.025],  # right_ankle
        [0.000, 0.084, 0.024],  # spine3
        [0.115, -1.142, 0.093],  # left_foot
        [-0.115, -1.142, 0.093],  # right_foot
        [0.000, 0.298, -0.011],  # neck
        [0.076, 0.205, -0.003],  # left_collar
        [-0.076, 0.205, -0.003],  # right_collar
        [0.000, 0.380, 0.046],  # head
        [0.196, 0.237, -0.015],  # left_shoulder
        [-0.196, 0.237, -0.015],  # right_shoulder
        [0.456, 0.220, -0.044],  # left_elbow
        [-0.456, 0.220, -0.044],  # right_elbow
        [0.714, 0.230, -0.046],  # left_wrist
        [-0.714, 0.230, -0.046],  # right_wrist
    ]
)
#: The foot joints sit this far above the floor, the top of the head this far above the head joint.
FOOT_ABOVE_FLOOR = 0.05
HEAD_TOP_ABOVE_HEAD = 0.13


def _yup_to_zup(p: NDArray) -> NDArray:
    return np.stack([p[..., 0], -p[..., 2], p[..., 1]], axis=-1)


_NEUTRAL_JOINTS_ZUP = _yup_to_zup(_SMPL_YUP_JOINTS)
NEUTRAL_HEIGHT = float(
    _NEUTRAL_JOINTS_ZUP[HEAD, 2] + HEAD_TOP_ABOVE_HEAD - (_NEUTRAL_JOINTS_ZUP[10, 2] - FOOT_ABOVE_FLOOR)
)


@dataclass(frozen=True)
class Skeleton:
    """A 22-joint body: rest offsets ``(22, 3)`` of each joint from its parent (m, Z-up).

    ``rest_offsets[0]`` is the pelvis position in the rest pose relative to the floor
    point below it, so FK with zero root translation puts the feet on z = 0.
    """

    rest_offsets: NDArray[np.float64]

    @classmethod
    def neutral(cls, height: float = 1.75) -> Skeleton:
        """The built-in neutral body scaled to a standing height in metres (floor to head top)."""
        if not 0.5 < height < 2.8:
            raise ValueError(f"body height {height:.2f} m is outside 0.5-2.8 m; give it in metres")
        joints = _NEUTRAL_JOINTS_ZUP * (height / NEUTRAL_HEIGHT)
        floor = joints[10, 2] - FOOT_ABOVE_FLOOR * height / NEUTRAL_HEIGHT
        joints = joints - np.array([joints[0, 0], joints[0, 1], floor])
        return cls.from_rest_joints(joints)

    @classmethod
    def from_rest_joints(cls, joints: NDArray) -> Skeleton:
        """From rest-pose joint positions ``(22, 3)`` (e.g. loaded from an SMPL model via smplx)."""
        joints = np.asarray(joints, dtype=np.float64)
        if joints.shape != (NUM_JOINTS, 3):
            raise ValueError(f"expected rest joints of shape (22, 3), got {joints.shape}")
        offsets = joints.copy()
        for j in range(1, NUM_JOINTS):
            offsets[j] = joints[j] - joints[PARENTS[j]]
        return cls(rest_offsets=offsets)

    def rest_joints(self) -> NDArray[np.float64]:
        return forward_kinematics(np.tile(np.eye(3), (NUM_JOINTS, 1, 1)), self.rest_offsets)[1]

    @staticmethod
    def height_from_head(head_joint_height: float) -> float:
        """Standing height of the neutral body whose head joint stands ``head_joint_height`` m above the floor."""
        neutral_head = float(Skeleton.neutral(NEUTRAL_HEIGHT).rest_joints()[HEAD, 2])
        return head_joint_height * NEUTRAL_HEIGHT / neutral_head

    @property
    def height(self) -> float:
        """Standing height (floor to head top) of this body's rest pose."""
        j = self.rest_joints()
        foot = min(j[10, 2], j[11, 2])
        scale = self.scale
        return float(j[HEAD, 2] + HEAD_TOP_ABOVE_HEAD * scale - (foot - FOOT_ABOVE_FLOOR * scale))

    @property
    def scale(self) -> float:
        """Size relative to the neutral body (ratio of summed bone lengths)."""
        neutral = Skeleton.from_rest_joints(_NEUTRAL_JOINTS_ZUP).rest_offsets[1:]
        return float(np.linalg.norm(self.rest_offsets[1:], axis=-1).sum() / np.linalg.norm(neutral, axis=-1).sum())


def forward_kinematics(
    local_rotations: NDArray,
    rest_offsets: NDArray,
    root_translation: NDArray | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Local rotation matrices ``(..., 22, 3, 3)`` -> (global rotations, joint positions ``(..., 22, 3)``).

    The pelvis sits at ``root_translation + rest_offsets[0]`` (root_translation defaults to 0).
    """
    local = np.asarray(local_rotations, dtype=np.float64)
    offsets = np.asarray(rest_offsets, dtype=np.float64)
    batch = local.shape[:-3]
    glob = np.empty(local.shape)
    pos = np.empty(batch + (NUM_JOINTS, 3))
    root = np.broadcast_to(offsets[..., 0, :], batch + (3,))
    if root_translation is not None:
        root = root + np.asarray(root_translation, dtype=np.float64)
    glob[..., 0, :, :] = local[..., 0, :, :]
    pos[..., 0, :] = root
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        glob[..., j, :, :] = glob[..., p, :, :] @ local[..., j, :, :]
        pos[..., j, :] = pos[..., p, :] + np.einsum("...ab,...b->...a", glob[..., p, :, :], offsets[..., j, :])
    return glob, pos


def forward_kinematics_torch(
    local_rotations: Tensor,
    rest_offsets: Tensor,
    root_translation: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Torch twin of :func:`forward_kinematics` (differentiable; offsets may be batched)."""
    import torch

    batch = local_rotations.shape[:-3]
    offsets = rest_offsets.to(local_rotations)
    root = offsets[..., 0, :].expand(batch + (3,))
    if root_translation is not None:
        root = root + root_translation
    glob: list[Tensor] = [local_rotations[..., 0, :, :]]
    pos: list[Tensor] = [root]
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        glob.append(glob[p] @ local_rotations[..., j, :, :])
        off = offsets[..., j, :].expand(batch + (3,))
        pos.append(pos[p] + (glob[p] @ off.unsqueeze(-1)).squeeze(-1))
    return torch.stack(glob, dim=-3), torch.stack(pos, dim=-2)


def children(joint: int) -> list[int]:
    return [j for j, p in enumerate(PARENTS) if p == joint]


def load_smpl_rest_joints(model_path: str, gender: str = "neutral") -> NDArray[np.float64]:
    """Exact rest joints (22, 3), Z-up, from the user's own SMPL/SMPL-H model file via ``smplx``.

    The model files are licence-gated and never bundled: the user passes the path. A ``.pkl``
    model is a Python pickle that ``smplx`` unpickles, which can run code: pass only files from
    the official download.
    """
    import os

    if not os.path.exists(model_path):
        raise FileNotFoundError(
            f"SMPL model not found at {model_path!r}: pass the folder or the .pkl/.npz file you "
            "downloaded from smpl.is.tue.mpg.de (e.g. SMPL_NEUTRAL.pkl)"
        )
    try:
        import smplx
    except ImportError as exc:  # pragma: no cover - depends on the user's install
        raise ImportError("loading SMPL model files needs the 'smplx' package: pip install smplx") from exc
    model_type = "smplh" if "smplh" in os.path.basename(model_path).lower() else "smpl"
    import torch

    model = smplx.create(model_path, model_type=model_type, gender=gender)
    with torch.no_grad():
        out = model()
    joints = out.joints[0, :NUM_JOINTS].cpu().numpy().astype(np.float64)
    verts = out.vertices[0].cpu().numpy()
    zup = _yup_to_zup(joints)
    floor = float(_yup_to_zup(verts)[:, 2].min())
    return zup - np.array([zup[0, 0], zup[0, 1], floor])
