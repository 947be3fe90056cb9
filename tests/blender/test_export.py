# SPDX-License-Identifier: GPL-3.0-or-later
"""FBX presets read back with Blender's own FBX parser and importer; BVH read back with the core."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from kb_helpers import bpy, mod, synthetic_motion

FRAMES = 90
HEIGHT = 1.8
#: (UpAxis, UpAxisSign, FrontAxis, FrontAxisSign, UnitScaleFactor) each preset must write.
EXPECTED_AXES = {
    "UNITY": (1, 1, 2, 1, 100.0),  # Y up, front +Z, metres
    "UNREAL": (2, 1, 1, -1, 1.0),  # Z up, front -Y, centimetres
    "BLENDER": (1, 1, 2, 1, 1.0),  # Blender's FBX defaults
}


def parse_fbx(path: Path):
    addons = Path(bpy.utils.resource_path("LOCAL")) / "scripts" / "addons_core"
    if str(addons) not in sys.path:
        sys.path.append(str(addons))
    from io_scene_fbx import parse_fbx as pf

    root, _version = pf.parse(str(path))
    return root


def _child(elem, name: bytes):
    return next((c for c in elem.elems if c.id == name), None)


def global_settings(root) -> dict[bytes, object]:
    props = _child(_child(root, b"GlobalSettings"), b"Properties70")
    return {p.props[0]: p.props[-1] for p in props.elems}


def _baked(context, bone_names="SMPL"):
    motion = synthetic_motion(FRAMES, HEIGHT)
    obj = mod("bake").bake_motion(context, motion, "take", bone_names=bone_names)
    return motion, obj


def _reimport(path: Path, raw: bool):
    """Import into an empty file; ``raw`` keeps the file's own axes (no conversion to Blender's)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps = 60
    opts = {"use_manual_orientation": True, "axis_forward": "Y", "axis_up": "Z"} if raw else {}
    # Blender's exporter writes frame f at f / fps seconds; its importer adds 1 frame by default.
    result = bpy.ops.import_scene.fbx(filepath=str(path), ignore_leaf_bones=False, anim_offset=0.0, **opts)
    assert result == {"FINISHED"}
    arms = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    assert len(arms) == 1
    return arms[0]


def _rest_heads(arm) -> dict[str, np.ndarray]:
    return {b.name: np.array(arm.matrix_world @ b.head_local) for b in arm.data.bones}


@pytest.mark.parametrize("preset", ["UNITY", "UNREAL", "BLENDER"])
def test_fbx_preset(clean, tmp_path, preset):
    motion, obj = _baked(clean)
    path = tmp_path / f"take_{preset.lower()}.fbx"
    clean.view_layer.objects.active = obj
    assert bpy.ops.kinest.export_fbx(filepath=str(path), preset=preset) == {"FINISHED"}

    root = parse_fbx(path)
    gs = global_settings(root)
    got = (gs[b"UpAxis"], gs[b"UpAxisSign"], gs[b"FrontAxis"], gs[b"FrontAxisSign"], gs[b"UnitScaleFactor"])
    assert got == EXPECTED_AXES[preset]
    objects = _child(root, b"Objects")
    models = [e for e in objects.elems if e.id == b"Model"]
    limbs = [m for m in models if m.props[2] == b"LimbNode"]
    assert len(limbs) == 22, "no leaf bones, nothing but the 22 joints"
    stacks = [e for e in objects.elems if e.id == b"AnimationStack"]
    assert len(stacks) == 1, "only this take's action"
    assert stacks[0].props[1].split(b"\x00")[0] == b"KineST_take", "the clip is named after the action"
    assert clean.scene.name == "Scene"
    key_counts = {len(_child(e, b"KeyTime").props[0]) for e in objects.elems if e.id == b"AnimationCurve"}
    assert key_counts == {FRAMES}, "a key on every frame (no simplification)"

    # Back into Blender with axis conversion: the same motion, upright, in metres.
    arm = _reimport(path, raw=False)
    assert len(arm.data.bones) == 22
    names = mod("keys").BONE_NAME_PRESETS["SMPL"]
    frames = [1, 45, FRAMES]
    pos = mod("armature").armature_joint_positions(bpy.context, arm, names, frames)
    err = np.abs(pos - motion.joint_positions[np.array(frames) - 1]).max()
    assert err < 2e-3, f"{preset}: re-imported joints are {err * 1000:.1f} mm off"

    # In the file's own frame (the engine's): upright, real size, facing the engine's forward.
    arm = _reimport(path, raw=True)
    heads = _rest_heads(arm)
    up = {"UNITY": 1, "UNREAL": 2, "BLENDER": 1}[preset]
    fwd_axis, fwd_sign = {"UNITY": (2, 1.0), "UNREAL": (1, -1.0), "BLENDER": (2, 1.0)}[preset]
    stature = heads["head"][up] - heads["left_foot"][up]
    assert 1.45 < stature < 1.8, f"{preset}: head {stature:.2f} m above the feet"
    assert heads["pelvis"][up] > heads["left_knee"][up] > heads["left_ankle"][up]
    toe = (heads["left_foot"] - heads["left_ankle"])[fwd_axis] * fwd_sign
    assert toe > 0.05, f"{preset}: the feet do not point along the engine's forward"
    assert heads["left_shoulder"][0] > heads["right_shoulder"][0]


def test_fbx_uses_the_chosen_bone_names(clean, tmp_path):
    _motion, obj = _baked(clean, "UNREAL")
    path = tmp_path / "ue.fbx"
    clean.view_layer.objects.active = obj
    assert bpy.ops.kinest.export_fbx(filepath=str(path), preset="UNREAL") == {"FINISHED"}
    names = {
        m.props[1].split(b"\x00")[0].decode() for m in _child(parse_fbx(path), b"Objects").elems if m.id == b"Model"
    }
    assert {"pelvis", "thigh_l", "hand_r", "spine_03"} <= names


def test_fbx_without_armature_says_what_to_do(clean, tmp_path):
    with pytest.raises(RuntimeError, match="press Reconstruct first"):
        bpy.ops.kinest.export_fbx(filepath=str(tmp_path / "x.fbx"), preset="UNITY")


def test_bvh_export_round_trip(clean, tmp_path):
    from kinest_core.io.bvh import read_bvh

    motion, obj = _baked(clean, "MIXAMO")
    # a hand edit, as an animator would make, must reach the file: lift the hips at frame 10
    hips = "mixamorig:Hips"
    cb = obj.animation_data.action.layers[0].strips[0].channelbag(obj.animation_data.action_slot)
    cb.fcurves.find(f'pose.bones["{hips}"].location', index=1).keyframe_points[9].co.y += 0.1
    rest = np.array(obj.data.bones[hips].matrix_local.to_3x3())
    expected = motion.joint_positions.copy()
    expected[9] += 0.1 * rest[:, 1]
    path = tmp_path / "take.bvh"
    assert bpy.ops.kinest.export_bvh(filepath=str(path)) == {"FINISHED"}
    data = read_bvh(str(path))
    assert len(data.names) == 22 and data.motion.shape[0] == FRAMES
    assert abs(data.fps - 60.0) < 1e-3
    _rot, pos = data.global_transforms()
    zup = np.stack([pos[..., 0], -pos[..., 2], pos[..., 1]], axis=-1) / 100.0  # Y-up cm -> Z-up m
    from kinest_core.skeleton import JOINT_NAMES

    order = [data.names.index(n) for n in JOINT_NAMES]  # the file lists joints depth-first
    np.testing.assert_allclose(zup[:, order], expected, atol=1e-3)
