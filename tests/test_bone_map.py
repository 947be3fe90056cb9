# SPDX-License-Identifier: GPL-3.0-or-later
"""Bone mapping onto SMPL-22 for every skeleton convention the retarget issue names (armatures built in code)."""

from __future__ import annotations

import numpy as np
import pytest
from retarget_rigs import CONVENTIONS, build_rig

from kinest_core.postprocess.bone_map import (
    REQUIRED_JOINTS,
    BoneMap,
    BoneMapError,
    TargetSkeleton,
    map_skeleton,
    parse_name,
    vrm_hints,
)


@pytest.mark.parametrize(
    ("name", "side", "key", "number"),
    [
        ("mixamorig:LeftForeArm", "L", "forearm", 0),
        ("mixamorig1:RightUpLeg", "R", "upleg", 0),
        ("Armature|mixamorig:Spine2", "", "spine", 2),
        ("upperarm_twist_01_l", "L", "upperarmtwist", 1),
        ("clavicle_r", "R", "clavicle", 0),
        ("upper_arm_fk.L", "L", "upperarm", 0),
        ("DEF-upper_arm.L.001", "L", "upperarm", 1),
        ("ORG-thigh.R", "R", "thigh", 0),
        ("leftUpperArm", "L", "upperarm", 0),
        ("CC_Base_L_Upperarm", "L", "upperarm", 0),
        ("lShldrBend", "L", "shldr", 0),
        ("rForearmBend", "R", "forearm", 0),
        ("Left elbow", "L", "elbow", 0),
        ("J_Bip_L_UpperArm", "L", "upperarm", 0),
        ("spine.003", "", "spine", 3),
        ("upperarm.l", "L", "upperarm", 0),
        ("DEF-thumb.01.L.001", "L", "thumb", 1),  # two trailing numbers (a generated Rigify rig's fingers)
    ],
)
def test_names_reduce_to_side_key_and_number(name: str, side: str, key: str, number: int) -> None:
    info = parse_name(name)
    assert (info.side, info.key, info.number) == (side, key, number)


def test_helper_bones_are_skipped() -> None:
    for name in ("upperarm_twist_01_l", "ik_foot_l", "MCH-upper_arm_parent.L", "LeftHandIndex1", "hand_ik.L",
                 "HeadTop_End", "heel.02.L", "lShldrTwist", "f_index.01.L", "upper_arm_parent.L"):  # fmt: skip
        assert parse_name(name).skip, name
    assert parse_name("upper_arm_fk.L").control
    assert not parse_name("CC_Base_L_Hand").skip


@pytest.mark.parametrize("convention", sorted(CONVENTIONS))
def test_every_convention_maps_every_joint_it_has(convention: str) -> None:
    rig = build_rig(convention)
    bm = map_skeleton(rig.skeleton)
    bm.require()
    assert bm.joints == rig.expected, bm.describe()
    for joint in set(bm.missing) - set(rig.expected):
        assert joint in ("spine2", "left_collar", "right_collar", "left_foot", "right_foot"), joint


def test_nameless_rig_is_mapped_from_structure_and_geometry() -> None:
    bm = map_skeleton(build_rig("nameless").skeleton)
    assert {bm.how[j] for j in bm.joints} <= {"structure", "geometry"}
    assert set(REQUIRED_JOINTS) <= set(bm.joints)


def test_sides_follow_the_feet_when_names_disagree() -> None:
    rig = build_rig("mixamo")
    skel = rig.skeleton
    swap = [n.replace("Left", "TMP").replace("Right", "Left").replace("TMP", "Right") for n in skel.names]
    bm = map_skeleton(TargetSkeleton(tuple(swap), skel.parents, skel.heads, skel.tails, skel.rest_rotations))
    assert bm.joints["left_shoulder"] == "mixamorig:RightArm"  # the bone named Right rests on the left
    assert any("swapped" in n for n in bm.notes)


def test_character_facing_plus_y_keeps_its_sides() -> None:
    bm = map_skeleton(build_rig("vrm").skeleton)  # built facing +Y
    assert bm.joints["left_shoulder"] == "leftUpperArm"
    assert not any("swapped" in n for n in bm.notes)


def test_generated_rigify_names_pick_fk_controls() -> None:
    """Bone names and parents as Blender's bundled Rigify generates them (a subset of its 706 bones)."""
    bones = {
        "root": None, "MCH-torso.parent": "root", "torso": "MCH-torso.parent", "hips": "torso", "chest": "torso",
        "MCH-spine.001": "torso", "spine_fk.001": "MCH-spine.001", "MCH-spine": "spine_fk.001", "spine_fk": "MCH-spine",
        "MCH-spine.002": "torso", "spine_fk.002": "MCH-spine.002", "MCH-spine.003": "spine_fk.002",
        "spine_fk.003": "MCH-spine.003", "ORG-spine": "spine_fk", "ORG-spine.003": "spine_fk.003",
        "MCH-ROT-neck": "spine_fk.003", "neck": "MCH-ROT-neck", "MCH-ROT-head": "neck", "head": "MCH-ROT-head",
        "DEF-spine": "ORG-spine", "DEF-spine.006": "head",
    }  # fmt: skip
    for s in ("L", "R"):
        bones.update({
            f"shoulder.{s}": "ORG-spine.003", f"ORG-shoulder.{s}": "ORG-spine.003",
            f"MCH-upper_arm_parent.{s}": f"ORG-shoulder.{s}", f"upper_arm_parent.{s}": f"ORG-shoulder.{s}",
            f"upper_arm_fk.{s}": f"MCH-upper_arm_parent.{s}", f"forearm_fk.{s}": f"upper_arm_fk.{s}",
            f"MCH-hand_fk.{s}": f"forearm_fk.{s}", f"hand_fk.{s}": f"MCH-hand_fk.{s}", f"hand_ik.{s}": "root",
            f"upper_arm_ik.{s}": f"MCH-upper_arm_parent.{s}", f"ORG-upper_arm.{s}": f"ORG-shoulder.{s}",
            f"DEF-upper_arm.{s}": f"ORG-shoulder.{s}", f"DEF-upper_arm.{s}.001": f"DEF-upper_arm.{s}",
            f"MCH-thigh_parent.{s}": "ORG-spine", f"thigh_fk.{s}": f"MCH-thigh_parent.{s}",
            f"shin_fk.{s}": f"thigh_fk.{s}", f"MCH-foot_fk.{s}": f"shin_fk.{s}", f"foot_fk.{s}": f"MCH-foot_fk.{s}",
            f"MCH-toe_fk.{s}": f"foot_fk.{s}", f"toe_fk.{s}": f"MCH-toe_fk.{s}", f"foot_ik.{s}": "root",
            f"ORG-thigh.{s}": "ORG-spine", f"DEF-thigh.{s}": "ORG-spine",
        })  # fmt: skip
    names = list(bones)
    skel = TargetSkeleton(
        tuple(names),
        tuple(names.index(p) if p else -1 for p in bones.values()),
        np.random.default_rng(0).normal(size=(len(names), 3)),
        np.random.default_rng(1).normal(size=(len(names), 3)),
    )
    bm = map_skeleton(skel)
    assert bm.joints["pelvis"] == "torso"
    # spine_fk.001 and spine_fk hang below the torso's pivot and carry the legs: they turn with the pelvis
    assert bm.joints["spine1"] == "spine_fk.002" and bm.joints["spine3"] == "spine_fk.003"
    assert "spine2" not in bm.joints
    assert bm.shared == {"spine_fk.001": "pelvis", "spine_fk": "pelvis"}
    for s, side in (("L", "left"), ("R", "right")):
        assert bm.joints[f"{side}_shoulder"] == f"upper_arm_fk.{s}"
        assert bm.joints[f"{side}_elbow"] == f"forearm_fk.{s}"
        assert bm.joints[f"{side}_wrist"] == f"hand_fk.{s}"
        assert bm.joints[f"{side}_hip"] == f"thigh_fk.{s}"
        assert bm.joints[f"{side}_ankle"] == f"foot_fk.{s}"
        assert bm.joints[f"{side}_foot"] == f"toe_fk.{s}"
        assert bm.joints[f"{side}_collar"] == f"shoulder.{s}"


def test_non_humanoid_gets_an_error_naming_what_is_missing() -> None:
    n = 8  # a tail or tentacle: one chain of bones
    heads = np.stack([np.zeros(n), np.arange(n) * 0.1, np.zeros(n)], axis=-1)
    skel = TargetSkeleton(tuple(f"tail.{i:03d}" for i in range(n)), tuple(range(-1, n - 1)), heads, heads + [0, 0.1, 0])
    bm = map_skeleton(skel)
    with pytest.raises(BoneMapError) as err:
        bm.require()
    msg = str(err.value)
    for joint in ("pelvis", "left_hip", "left_shoulder", "head"):
        assert joint in msg


def test_vrm_humanoid_maps_win_over_names() -> None:
    rig = build_rig("nameless")
    names = list(rig.skeleton.names)
    human = {"hips": "Bone", "spine": "Bone.001", "chest": "Bone.002", "upperChest": "Bone.003", "neck": "Bone.004",
             "head": "Bone.005", "leftUpperArm": "Bone.lu", "leftLowerArm": "Bone.lf", "leftHand": "Bone.lh",
             "rightUpperLeg": "Bone.rt"}  # fmt: skip
    v0 = {
        "extensions": {
            "VRM": {"humanoid": {"humanBones": [{"bone": b, "node": names.index(n)} for b, n in human.items()]}}
        }
    }
    v1 = {
        "extensions": {
            "VRMC_vrm": {"humanoid": {"humanBones": {b: {"node": names.index(n)} for b, n in human.items()}}}
        }
    }
    for doc in (v0, v1):
        hints = vrm_hints(doc, names)
        assert hints["pelvis"] == "Bone" and hints["spine3"] == "Bone.003" and hints["left_shoulder"] == "Bone.lu"
        assert hints["right_hip"] == "Bone.rt"
        bm = map_skeleton(rig.skeleton, hints)
        assert bm.how["left_elbow"] == "user" and bm.joints["left_elbow"] == "Bone.lf"


def test_user_mapping_is_checked_against_the_skeleton() -> None:
    skel = build_rig("mixamo").skeleton
    auto = map_skeleton(skel)
    bm = BoneMap.from_mapping(dict(auto.joints), skel)
    assert bm.joints == auto.joints and set(bm.how.values()) == {"user"}
    with pytest.raises(BoneMapError, match="no bone 'Nope'"):
        BoneMap.from_mapping({"head": "Nope"}, skel)
    with pytest.raises(BoneMapError, match="two joints"):
        BoneMap.from_mapping({"head": "mixamorig:Head", "neck": "mixamorig:Head"}, skel)
    assert '"pelvis": "mixamorig:Hips"' in auto.to_json()
