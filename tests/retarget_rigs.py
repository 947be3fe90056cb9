# SPDX-License-Identifier: GPL-3.0-or-later
"""Humanoid test skeletons in the conventions animators bring, built in code, and a test motion.

Each rig is the SMPL neutral body's rest pose with its own proportions (limb segments
lengthened or shortened along their direction), its own rest pose (T or arms lowered into
an A), facing, units, random bone rolls, and the bone names, extra spine/neck bones, twist
bones, fingers and helper bones of its convention. Because a rig is the SMPL rest turned
bone by bone, the world rotation each of its bones must take at a frame is known exactly:
``G @ turn.T`` (``G`` our joint's global rotation, ``turn`` the bone's rest turn).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from kinest_core import rotations as rot
from kinest_core.postprocess.bone_map import BoneMap, TargetSkeleton
from kinest_core.skeleton import JOINT_NAMES, Skeleton, forward_kinematics
from kinest_core.types import Motion

_J = {n: i for i, n in enumerate(JOINT_NAMES)}


@dataclass
class Convention:
    """Bone names of a convention; side placeholders: {s} l/r, {S} L/R, {side} left/right, {Side} Left/Right."""

    hips: str
    spine: list[str]
    neck: list[str]
    head: str
    collar: str | None
    upperarm: str
    forearm: str
    hand: str
    thigh: str
    shin: str
    foot: str
    toe: str | None
    root: str | None = None
    head_end: str | None = None
    finger: str | None = None
    legs_parent: str | None = None  # a bone between the hips and the thighs (Daz/CC pelvis, MMD lower body)
    arm_twist: tuple[str, str] | None = None  # (upper, lower) twist names
    twist_inline: bool = False  # twist bones sit inside the chain (Daz, Rigify DEF) rather than beside it
    thigh_twist: str | None = None
    extras_sided: list[tuple[str, str]] = field(default_factory=list)  # (name, parent role) helper bones
    feet_from_root: bool = False
    ik_targets: bool = False


def _side(fmt: str, side: str) -> str:
    left = side == "L"
    return fmt.format(
        s="l" if left else "r",
        S="L" if left else "R",
        side="left" if left else "right",
        Side="Left" if left else "Right",
    )


CONVENTIONS: dict[str, Convention] = {
    "mixamo": Convention(
        "mixamorig:Hips", ["mixamorig:Spine", "mixamorig:Spine1", "mixamorig:Spine2"], ["mixamorig:Neck"],
        "mixamorig:Head", "mixamorig:{Side}Shoulder", "mixamorig:{Side}Arm", "mixamorig:{Side}ForeArm",
        "mixamorig:{Side}Hand", "mixamorig:{Side}UpLeg", "mixamorig:{Side}Leg", "mixamorig:{Side}Foot",
        "mixamorig:{Side}ToeBase", head_end="mixamorig:HeadTop_End", finger="mixamorig:{Side}HandIndex1",
    ),
    "mixamo1_apose": Convention(
        "mixamorig1:Hips", ["mixamorig1:Spine", "mixamorig1:Spine1", "mixamorig1:Spine2"], ["mixamorig1:Neck"],
        "mixamorig1:Head", "mixamorig1:{Side}Shoulder", "mixamorig1:{Side}Arm", "mixamorig1:{Side}ForeArm",
        "mixamorig1:{Side}Hand", "mixamorig1:{Side}UpLeg", "mixamorig1:{Side}Leg", "mixamorig1:{Side}Foot",
        "mixamorig1:{Side}ToeBase", finger="mixamorig1:{Side}HandThumb1",
    ),
    "unreal": Convention(
        "pelvis", ["spine_01", "spine_02", "spine_03"], ["neck_01"], "head", "clavicle_{s}", "upperarm_{s}",
        "lowerarm_{s}", "hand_{s}", "thigh_{s}", "calf_{s}", "foot_{s}", "ball_{s}", root="root",
        finger="index_01_{s}", arm_twist=("upperarm_twist_01_{s}", "lowerarm_twist_01_{s}"),
        thigh_twist="thigh_twist_01_{s}", ik_targets=True,
    ),
    "unreal5": Convention(
        "pelvis", ["spine_01", "spine_02", "spine_03", "spine_04", "spine_05"], ["neck_01", "neck_02"], "head",
        "clavicle_{s}", "upperarm_{s}", "lowerarm_{s}", "hand_{s}", "thigh_{s}", "calf_{s}", "foot_{s}", "ball_{s}",
        root="root", arm_twist=("upperarm_twist_01_{s}", "lowerarm_twist_01_{s}"),
        extras_sided=[("upperarm_correctiveRoot_{s}", "collar"), ("calf_knee_{s}", "shin")], ik_targets=True,
    ),
    "game_feet_from_root": Convention(
        "pelvis", ["spine_01", "spine_02", "spine_03"], ["neck_01"], "head", "clavicle_{s}", "upperarm_{s}",
        "lowerarm_{s}", "hand_{s}", "thigh_{s}", "calf_{s}", "foot_{s}", "ball_{s}", root="root",
        feet_from_root=True, ik_targets=True,
    ),
    "rigify_metarig": Convention(
        "spine", ["spine.001", "spine.002", "spine.003"], ["spine.004", "spine.005"], "spine.006", "shoulder.{S}",
        "upper_arm.{S}", "forearm.{S}", "hand.{S}", "thigh.{S}", "shin.{S}", "foot.{S}", "toe.{S}",
        finger="f_index.01.{S}", extras_sided=[("pelvis.{S}", "hips"), ("breast.{S}", "chest"), ("heel.02.{S}", "foot")],
    ),
    "rigify_def_only": Convention(
        "DEF-spine", ["DEF-spine.001", "DEF-spine.002", "DEF-spine.003"], ["DEF-spine.004", "DEF-spine.005"],
        "DEF-spine.006", "DEF-shoulder.{S}", "DEF-upper_arm.{S}", "DEF-forearm.{S}", "DEF-hand.{S}", "DEF-thigh.{S}",
        "DEF-shin.{S}", "DEF-foot.{S}", "DEF-toe.{S}", arm_twist=("DEF-upper_arm.{S}.001", "DEF-forearm.{S}.001"),
        twist_inline=True, thigh_twist="DEF-thigh.{S}.001",
        extras_sided=[("DEF-pelvis.{S}", "hips"), ("DEF-breast.{S}", "chest")],
    ),
    "vrm": Convention(
        "hips", ["spine", "chest", "upperChest"], ["neck"], "head", "{side}Shoulder", "{side}UpperArm",
        "{side}LowerArm", "{side}Hand", "{side}UpperLeg", "{side}LowerLeg", "{side}Foot", "{side}Toes",
        finger="{side}IndexProximal",
    ),
    "character_creator": Convention(
        "CC_Base_Hip", ["CC_Base_Waist", "CC_Base_Spine01", "CC_Base_Spine02"],
        ["CC_Base_NeckTwist01", "CC_Base_NeckTwist02"], "CC_Base_Head", "CC_Base_{S}_Clavicle",
        "CC_Base_{S}_Upperarm", "CC_Base_{S}_Forearm", "CC_Base_{S}_Hand", "CC_Base_{S}_Thigh", "CC_Base_{S}_Calf",
        "CC_Base_{S}_Foot", "CC_Base_{S}_ToeBase", root="CC_Base_BoneRoot", legs_parent="CC_Base_Pelvis",
        arm_twist=("CC_Base_{S}_UpperarmTwist01", "CC_Base_{S}_ForearmTwist01"), finger="CC_Base_{S}_Index1",
    ),
    "daz_genesis8": Convention(
        "hip", ["abdomenLower", "abdomenUpper", "chestLower", "chestUpper"], ["neckLower", "neckUpper"], "head",
        "{s}Collar", "{s}ShldrBend", "{s}ForearmBend", "{s}Hand", "{s}ThighBend", "{s}Shin", "{s}Foot", "{s}Toe",
        legs_parent="pelvis", arm_twist=("{s}ShldrTwist", "{s}ForearmTwist"), twist_inline=True,
        thigh_twist="{s}ThighTwist", extras_sided=[("{s}Metatarsals", "foot"), ("{s}Pectoral", "chest")],
    ),
    "mmd_english": Convention(
        "Center", ["upper body", "upper body2"], ["Neck"], "Head", "{Side} shoulder", "{Side} arm", "{Side} elbow",
        "{Side} wrist", "{Side} leg", "{Side} knee", "{Side} ankle", "{Side} toe", legs_parent="lower body",
    ),
    "nameless": Convention(
        "Bone", ["Bone.001", "Bone.002", "Bone.003"], ["Bone.004"], "Bone.005", "Bone.{s}c", "Bone.{s}u", "Bone.{s}f",
        "Bone.{s}h", "Bone.{s}t", "Bone.{s}k", "Bone.{s}a", "Bone.{s}o",
    ),
}  # fmt: skip
#: (rest pose arm angle below horizontal in degrees, facing yaw in degrees, units per metre) per convention.
REST_POSES = {
    "mixamo": (0.0, 0.0, 100.0),
    "mixamo1_apose": (45.0, 0.0, 1.0),
    "unreal": (0.0, 90.0, 100.0),
    "unreal5": (10.0, 90.0, 100.0),
    "game_feet_from_root": (0.0, 0.0, 1.0),
    "rigify_metarig": (45.0, 0.0, 1.0),
    "rigify_def_only": (45.0, 0.0, 1.0),
    "vrm": (0.0, 180.0, 1.0),
    "character_creator": (45.0, 0.0, 100.0),
    "daz_genesis8": (45.0, 0.0, 100.0),
    "mmd_english": (35.0, 180.0, 1.0),
    "nameless": (0.0, 0.0, 1.0),
}


@dataclass
class TestRig:
    skeleton: TargetSkeleton
    expected: dict[str, str]  # SMPL joint -> bone the mapper must pick
    turn: dict[str, NDArray]  # bone -> its rest turn relative to SMPL's rest (limbs)
    units: float


def build_rig(name: str, seed: int = 0) -> TestRig:
    conv = CONVENTIONS[name]
    apose, yaw, units = REST_POSES[name]
    rng = np.random.default_rng(seed)
    p = {n: v.copy() for n, v in zip(JOINT_NAMES, Skeleton.neutral(1.75).rest_joints(), strict=True)}
    for s, sx in (("left", 1.0), ("right", -1.0)):
        for chain, factors in (
            (("shoulder", "elbow", "wrist"), (1.08, 0.95)),
            (("hip", "knee", "ankle", "foot"), (1.05, 1.02, 1.0)),
        ):
            old = [p[f"{s}_{c}"].copy() for c in chain]
            for k in range(1, len(chain)):
                p[f"{s}_{chain[k]}"] = p[f"{s}_{chain[k - 1]}"] + factors[k - 1] * (old[k] - old[k - 1])
        p[f"{s}_tip"] = p[f"{s}_wrist"] + 0.35 * (p[f"{s}_wrist"] - p[f"{s}_elbow"])
        p[f"{s}_toetip"] = p[f"{s}_foot"] + np.array([0.0, -0.06, 0.0])
        turn_a = Rotation.from_euler("y", sx * apose, degrees=True).as_matrix()
        for c in ("elbow", "wrist", "tip"):
            p[f"{s}_{c}"] = p[f"{s}_shoulder"] + turn_a @ (p[f"{s}_{c}"] - p[f"{s}_shoulder"])
    p["head_top"] = p["head"] + np.array([0.0, 0.0, 0.13])
    trunk = [p["pelvis"], p["spine1"], p["spine2"], p["spine3"], p["neck"]]
    seg = np.cumsum([0.0] + [np.linalg.norm(b - a) for a, b in zip(trunk, trunk[1:], strict=False)])

    def along(frac: float) -> NDArray:
        t = frac * seg[-1]
        k = min(int(np.searchsorted(seg, t, side="right")) - 1, len(trunk) - 2)
        return trunk[k] + (t - seg[k]) / (seg[k + 1] - seg[k]) * (trunk[k + 1] - trunk[k])

    bones: list[tuple[str, str | None, NDArray, NDArray]] = []
    turn: dict[str, NDArray] = {}
    expected: dict[str, str] = {}
    if conv.root:
        bones.append((conv.root, None, np.zeros(3), np.array([0.0, -0.2, 0.0])))
    ks = len(conv.spine)
    spine_heads = [along(0.25 + 0.65 * i / max(ks - 1, 1)) for i in range(ks)]
    hips_tail = spine_heads[0]
    if name == "mmd_english":  # MMD's centre sits below the hips
        bones.append((conv.hips, conv.root, p["pelvis"] - [0, 0, 0.15], p["pelvis"]))
    else:
        bones.append((conv.hips, conv.root, p["pelvis"], hips_tail))
    expected["pelvis"] = conv.hips
    prev = conv.hips
    for i, nm in enumerate(conv.spine):
        tail = spine_heads[i + 1] if i + 1 < ks else p["neck"]
        bones.append((nm, prev, spine_heads[i], tail))
        prev = nm
    expected["spine3"] = conv.spine[-1]
    expected["spine1"] = conv.spine[0]
    if ks >= 3:
        expected["spine2"] = conv.spine[-2] if ks == 3 else conv.spine[int(round(0.82 * ks)) - 1]
    chest = conv.spine[-1]
    kn = len(conv.neck)
    for i, nm in enumerate(conv.neck):
        h = p["neck"] + i / kn * (p["head"] - p["neck"])
        bones.append((nm, prev, h, p["neck"] + (i + 1) / kn * (p["head"] - p["neck"])))
        prev = nm
    expected["neck"] = conv.neck[0]
    bones.append((conv.head, prev, p["head"], p["head_top"]))
    expected["head"] = conv.head
    if conv.head_end:
        bones.append((conv.head_end, conv.head, p["head_top"], p["head_top"] + [0, 0, 0.05]))
    legs_parent = conv.hips
    if conv.legs_parent:
        bones.append((conv.legs_parent, conv.hips, p["pelvis"], p["pelvis"] - [0, 0, 0.1]))
        legs_parent = conv.legs_parent
    for side in ("L", "R"):
        s = "left" if side == "L" else "right"
        n = {k: _side(getattr(conv, k), side) for k in ("upperarm", "forearm", "hand", "thigh", "shin", "foot")}
        arm_parent = chest
        if conv.collar:
            n["collar"] = _side(conv.collar, side)
            bones.append((n["collar"], chest, p[f"{s}_collar"], p[f"{s}_shoulder"]))
            arm_parent = n["collar"]
            expected[f"{s}_collar"] = n["collar"]
        mid_u = 0.5 * (p[f"{s}_shoulder"] + p[f"{s}_elbow"])
        mid_f = 0.5 * (p[f"{s}_elbow"] + p[f"{s}_wrist"])
        if conv.arm_twist and conv.twist_inline:
            tu, tf = (_side(t, side) for t in conv.arm_twist)
            bones += [
                (n["upperarm"], arm_parent, p[f"{s}_shoulder"], mid_u),
                (tu, n["upperarm"], mid_u, p[f"{s}_elbow"]),
                (n["forearm"], tu, p[f"{s}_elbow"], mid_f),
                (tf, n["forearm"], mid_f, p[f"{s}_wrist"]),
                (n["hand"], tf, p[f"{s}_wrist"], p[f"{s}_tip"]),
            ]
        else:
            bones += [
                (n["upperarm"], arm_parent, p[f"{s}_shoulder"], p[f"{s}_elbow"]),
                (n["forearm"], n["upperarm"], p[f"{s}_elbow"], p[f"{s}_wrist"]),
                (n["hand"], n["forearm"], p[f"{s}_wrist"], p[f"{s}_tip"]),
            ]
            if conv.arm_twist:
                tu, tf = (_side(t, side) for t in conv.arm_twist)
                bones += [(tu, n["upperarm"], mid_u, p[f"{s}_elbow"]), (tf, n["forearm"], mid_f, p[f"{s}_wrist"])]
        if conv.finger:
            tip = p[f"{s}_tip"]
            bones.append((_side(conv.finger, side), n["hand"], tip, tip + 0.3 * (tip - p[f"{s}_wrist"])))
        mid_t = 0.5 * (p[f"{s}_hip"] + p[f"{s}_knee"])
        if conv.thigh_twist and conv.twist_inline:
            tt = _side(conv.thigh_twist, side)
            bones += [(n["thigh"], legs_parent, p[f"{s}_hip"], mid_t), (tt, n["thigh"], mid_t, p[f"{s}_knee"])]
            shin_parent = tt
        else:
            bones.append((n["thigh"], legs_parent, p[f"{s}_hip"], p[f"{s}_knee"]))
            if conv.thigh_twist:
                bones.append((_side(conv.thigh_twist, side), n["thigh"], mid_t, p[f"{s}_knee"]))
            shin_parent = n["thigh"]
        bones.append((n["shin"], shin_parent, p[f"{s}_knee"], p[f"{s}_ankle"]))
        foot_parent = conv.root if conv.feet_from_root else n["shin"]
        bones.append((n["foot"], foot_parent, p[f"{s}_ankle"], p[f"{s}_foot"]))
        if conv.toe:
            n["toe"] = _side(conv.toe, side)
            bones.append((n["toe"], n["foot"], p[f"{s}_foot"], p[f"{s}_toetip"]))
            expected[f"{s}_foot"] = n["toe"]
        for role, joint in (("upperarm", "shoulder"), ("forearm", "elbow"), ("hand", "wrist")):
            expected[f"{s}_{joint}"] = n[role]
        for role, joint in (("thigh", "hip"), ("shin", "knee"), ("foot", "ankle")):
            expected[f"{s}_{joint}"] = n[role]
        sx = 1.0 if side == "L" else -1.0
        for role in ("upperarm", "forearm", "hand"):
            turn[n[role]] = Rotation.from_euler("y", sx * apose, degrees=True).as_matrix()
        for role in ("thigh", "shin", "foot"):
            turn[n[role]] = np.eye(3)
        role_bone = {"hips": conv.hips, "chest": chest, **n}
        for extra, parent_role in conv.extras_sided:
            par = role_bone[parent_role]
            h = dict((b[0], b[2]) for b in bones)[par]
            bones.append((_side(extra, side), par, h, h + np.array([0.0, -0.05, 0.0])))
        if conv.ik_targets:
            for what, where in (("foot", p[f"{s}_ankle"]), ("hand", p[f"{s}_wrist"])):
                if f"ik_{what}_root" not in [b[0] for b in bones]:
                    bones.append((f"ik_{what}_root", conv.root, np.zeros(3), np.array([0.0, 0.0, 0.1])))
                bones.append((f"ik_{what}_{side.lower()}", f"ik_{what}_root", where, where + [0, 0, 0.1]))
    yaw_m = Rotation.from_euler("z", yaw, degrees=True).as_matrix()
    names = [b[0] for b in bones]
    heads = np.array([b[2] for b in bones]) @ yaw_m.T * units
    tails = np.array([b[3] for b in bones]) @ yaw_m.T * units
    rest = []
    for h, t in zip(heads, tails, strict=True):  # Blender-like bone axes: Y along the bone, a random roll
        y = (t - h) / np.linalg.norm(t - h)
        ref = np.array([0.0, 0.0, 1.0]) if abs(y[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
        x = np.cross(y, ref)
        x /= np.linalg.norm(x)
        frame = np.stack([x, y, np.cross(x, y)], axis=-1)
        rest.append(Rotation.from_rotvec(y * rng.uniform(-np.pi, np.pi)).as_matrix() @ frame)
    parents = tuple(names.index(b[1]) if b[1] else -1 for b in bones)
    skel = TargetSkeleton(tuple(names), parents, heads, tails, np.array(rest))
    return TestRig(skel, expected, {k: yaw_m @ v for k, v in turn.items()}, units)


def sample_motion(frames: int = 90, seed: int = 1) -> Motion:
    """A smooth synthetic motion: every joint swinging up to ~40 degrees, the body turning and walking."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 30.0
    amp = rng.uniform(0.1, 0.7, (22, 3))
    freq = rng.uniform(0.3, 1.2, (22, 3))
    phase = rng.uniform(0, 2 * np.pi, (22, 3))
    aa = amp * np.sin(2 * np.pi * freq * t[:, None, None] + phase)
    aa[:, 0] = [0.0, 0.0, 1.0] * (0.8 * t[:, None]) + 0.1 * aa[:, 0]  # pelvis turns about Z
    local = rot.axis_angle_to_matrix(aa)
    body = Skeleton.neutral(1.75)
    root = np.stack([0.4 * t, 0.2 * np.sin(t), 0.03 * np.sin(4 * t)], axis=-1)
    _, pos = forward_kinematics(local, body.rest_offsets, root)
    q = rot.quat_make_continuous(rot.matrix_to_quat(local), axis=0)
    return Motion(q, root, pos, body.rest_offsets, fps=30.0)


def longer_shins(skel: TargetSkeleton, bone_map: BoneMap, extra: float) -> TargetSkeleton:
    """The same character with shins ``extra`` (skeleton units) longer: legs not built like ours."""
    heads, tails = skel.heads.copy(), skel.tails.copy()
    for side in ("left", "right"):
        foot = skel.index(bone_map.joints[f"{side}_ankle"])
        below = [b for b in range(len(skel.names)) if b == foot or foot in skel.ancestors(b)]
        heads[below, 2] -= extra
        tails[below, 2] -= extra
        tails[skel.index(bone_map.joints[f"{side}_knee"]), 2] -= extra
    return TargetSkeleton(skel.names, skel.parents, heads, tails, skel.rest_rotations)


def standing_motion(frames: int = 90, seed: int = 3) -> Motion:
    """A calm motion a body can do with its feet planted: joints swaying up to ~17 degrees, the pelvis
    shifting a few centimetres and sinking 4 cm (bent knees)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 30.0
    amp = rng.uniform(0.05, 0.3, (22, 3))
    aa = amp * np.sin(2 * np.pi * rng.uniform(0.3, 1.0, (22, 3)) * t[:, None, None] + rng.uniform(0, 6.3, (22, 3)))
    aa[:, 0] *= 0.3
    local = rot.axis_angle_to_matrix(aa)
    body = Skeleton.neutral(1.75)
    root = np.stack([0.08 * np.sin(t), 0.05 * np.sin(1.3 * t), -0.04 + 0.02 * np.sin(3 * t)], axis=-1)
    _, pos = forward_kinematics(local, body.rest_offsets, root)
    return Motion(rot.quat_make_continuous(rot.matrix_to_quat(local), axis=0), root, pos, body.rest_offsets, fps=30.0)


def global_rotations(motion: Motion) -> NDArray[np.float64]:
    return forward_kinematics(rot.quat_to_matrix(motion.local_rotations), motion.rest_offsets, motion.root_translation)[
        0
    ]


JOINT_INDEX = _J
