# SPDX-License-Identifier: GPL-3.0-or-later
"""The full-body BVH skeletons :mod:`kinest_core.training.mocap` knows, and how each maps onto SMPL-22.

A new mocap source needs one :class:`SourceSkeleton` here: which source joint drives each SMPL
joint, the file's unit, and which frame serves as its T-pose.
"""

from __future__ import annotations

from dataclasses import dataclass

from kinest_core.io.bvh import BvhData


@dataclass(frozen=True)
class SourceSkeleton:
    """How one BVH skeleton maps onto SMPL-22.

    ``joints`` maps every SMPL joint name to a source description:
    ``"name"`` (the joint), ``"name.end"`` (its End Site; rotation of ``name``) or
    ``"a|b"`` (midpoint of two joints; rotation of ``a``).
    ``reference`` is the pose the T-pose is built from, by turning bones minimally relative
    to their parents: ``"frame0"`` (frame 0 is a T-pose), ``"standing"`` (the frame closest
    to standing upright with the arms hanging) or ``"zero"`` (the zero-rotation pose).
    """

    name: str
    joints: dict[str, str]
    unit_m: float  # metres per file unit
    reference: str = "frame0"
    skip_frames: int = 0  # converter T-pose / blend frames at the start
    foot_height: float = 0.02  # height of the lowest foot joint above the floor when standing (m)
    detect: tuple[str, ...] = ()  # source joint names that identify this skeleton
    hinge_twist: bool = False  # set upper-arm/thigh twists from the elbow/knee hinge axes seen in the motion


SKELETONS: dict[str, SourceSkeleton] = {
    "cmu_daz": SourceSkeleton(
        name="cmu_daz",
        joints={
            "pelvis": "hip",
            "left_hip": "lThigh",
            "right_hip": "rThigh",
            "spine1": "abdomen",
            "left_knee": "lShin",
            "right_knee": "rShin",
            "spine2": "chest",
            "left_ankle": "lFoot",
            "right_ankle": "rFoot",
            "spine3": "chest|neck",
            "left_foot": "lFoot.end",
            "right_foot": "rFoot.end",
            "neck": "neck",
            "left_collar": "lCollar",
            "right_collar": "rCollar",
            "head": "head",
            "left_shoulder": "lShldr",
            "right_shoulder": "rShldr",
            "left_elbow": "lForeArm",
            "right_elbow": "rForeArm",
            "left_wrist": "lHand",
            "right_wrist": "rHand",
        },
        unit_m=0.01,
        reference="frame0",
        skip_frames=10,
        detect=("abdomen", "lThigh", "rShldr"),
    ),
    "cmu_mb": SourceSkeleton(
        name="cmu_mb",
        joints={
            "pelvis": "Hips",
            "left_hip": "LeftUpLeg",
            "right_hip": "RightUpLeg",
            # CMU's lower-back joint sits on the hip and bends the whole spine: mapping it to
            # spine1 (a zero-length pelvis bone) keeps every mapped bone rigid, so FK is exact.
            "spine1": "LowerBack",
            "left_knee": "LeftLeg",
            "right_knee": "RightLeg",
            "spine2": "Spine",
            # Neck sits on Spine1 (zero offset), and so do the collars.
            "spine3": "Neck",
            "left_ankle": "LeftFoot",
            "right_ankle": "RightFoot",
            "left_foot": "LeftToeBase",
            "right_foot": "RightToeBase",
            "neck": "Neck1",
            "left_collar": "LeftShoulder",
            "right_collar": "RightShoulder",
            "head": "Head",
            "left_shoulder": "LeftArm",
            "right_shoulder": "RightArm",
            "left_elbow": "LeftForeArm",
            "right_elbow": "RightForeArm",
            "left_wrist": "LeftHand",
            "right_wrist": "RightHand",
        },
        unit_m=0.05644,  # CMU ASF units: 1/0.45 inch
        reference="frame0",
        skip_frames=10,
        detect=("LHipJoint", "LowerBack", "Neck1"),
    ),
    "accad": SourceSkeleton(
        name="accad",
        joints={
            "pelvis": "Hips",
            "left_hip": "LeftUpLeg",
            "right_hip": "RightUpLeg",
            "spine1": "ToSpine",
            "left_knee": "LeftLeg",
            "right_knee": "RightLeg",
            "spine2": "Spine",
            "left_ankle": "LeftFoot",
            "right_ankle": "RightFoot",
            "spine3": "Spine1",
            "left_foot": "LeftToeBase",
            "right_foot": "RightToeBase",
            "neck": "Neck",
            "left_collar": "LeftShoulder",
            "right_collar": "RightShoulder",
            "head": "Head",
            "left_shoulder": "LeftArm",
            "right_shoulder": "RightArm",
            "left_elbow": "LeftForeArm",
            "right_elbow": "RightForeArm",
            "left_wrist": "LeftHand",
            "right_wrist": "RightHand",
        },
        unit_m=0.01,
        # The zero-rotation pose is not a pose (bones along local axes, twists arbitrary) and
        # there is no T-pose frame: take the frame closest to standing with the arms down.
        reference="standing",
        # A standing frame fixes the limbs' directions but not reliably how the upper arms
        # are turned about their length; the elbows' and knees' hinge axes do.
        hinge_twist=True,
        skip_frames=0,
        detect=("ToSpine", "Spine1", "LeftToeBase"),
    ),
}

#: File-name patterns (basename, regex) whose header frame rate is wrong -> true fps.
#: CMU salsa (subjects 60, 61) was captured at 60 fps although the converter wrote 120.
FPS_OVERRIDES: dict[str, float] = {r"^(60|61)_\d+\.bvh": 60.0}


class MocapError(ValueError):
    """A BVH file that cannot be mapped onto SMPL-22 (unknown skeleton, missing joint...)."""


def detect_skeleton(bvh: BvhData, skeletons: dict[str, SourceSkeleton] | None = None) -> SourceSkeleton:
    """Pick the skeleton spec whose ``detect`` joints all exist in the file."""
    table = SKELETONS if skeletons is None else skeletons
    names = set(bvh.names)
    for spec in table.values():
        if spec.detect and all(n in names for n in spec.detect):
            return spec
    raise MocapError(
        f"{bvh.path}: unknown skeleton (joints {', '.join(bvh.names[:8])}...); add a SourceSkeleton "
        "with a joint map to kinest_core.training.mocap.SKELETONS"
    )
