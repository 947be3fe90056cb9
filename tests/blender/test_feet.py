# SPDX-License-Identifier: GPL-3.0-or-later
"""Feet in Blender: contact keys and markers on the bake, Mark / Clear Contact, Plant Feet from edited
contacts (feet held still as Blender poses them), and Smooth keeping planted feet planted."""

from __future__ import annotations

import numpy as np
from kb_helpers import bpy, mod, synthetic_motion

FOOT = 7  # left ankle: the left foot's bone


def _contacts(n: int) -> np.ndarray:
    c = np.zeros((n, 2), dtype=bool)
    c[20:90, 0] = True
    c[130:200, 0] = True
    c[50:170, 1] = True
    return c


def _motion(frames: int):
    """The helpers' stepping, turning body, walking on the spot (a foot held in place stays within reach)."""
    from kinest_core import rotations as rot
    from kinest_core.skeleton import forward_kinematics

    motion = synthetic_motion(frames)
    t = np.arange(frames) / 60.0
    motion.root_translation = np.stack([0.03 * np.sin(t), 0.03 * np.sin(1.3 * t), 0.01 * np.sin(4 * t)], -1)
    local = rot.quat_to_matrix(motion.local_rotations)
    motion.joint_positions = forward_kinematics(local, motion.rest_offsets, motion.root_translation)[1]
    return motion


def _baked(context, frames: int = 240):
    motion = _motion(frames)
    motion.contacts = _contacts(frames)
    obj = mod("bake").bake_motion(context, motion, "take")
    context.view_layer.objects.active = obj
    return obj, motion


def _foot_travel(context, obj, frames) -> np.ndarray:
    names = mod("keys").BONE_NAME_PRESETS["SMPL"]
    pos = mod("armature").armature_joint_positions(context, obj, names, list(frames))
    return np.linalg.norm(np.diff(pos[:, FOOT, :2], axis=0), axis=-1)


def test_bake_keys_contacts_and_marks_spans(clean):
    obj, motion = _baked(clean)
    contacts = mod("contacts")
    for j in (7, 8):
        assert contacts.CONTACT_PROP in obj.pose.bones[mod("keys").BONE_NAME_PRESETS["SMPL"][j]]
    np.testing.assert_array_equal(contacts.read_contacts(obj), motion.contacts)
    names = sorted(m.name for m in clean.scene.timeline_markers)
    assert names == ["KineST L", "KineST L", "KineST R"]
    assert sorted(m.frame for m in clean.scene.timeline_markers if m.name == "KineST L") == [21, 131]
    assert contacts.PLANTED_PROP not in obj  # this motion was not planted


def test_mark_and_clear_contact_edit_the_keys(clean):
    obj, motion = _baked(clean)
    contacts = mod("contacts")
    scene = clean.scene
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = 101, 110
    assert bpy.ops.kinest.mark_contact(foot="LEFT") == {"FINISHED"}
    c = contacts.read_contacts(obj)
    assert c[100:110, 0].all() and c[:100, 0].sum() == 70  # the left foot's other keys are as they were
    np.testing.assert_array_equal(c[:, 1], motion.contacts[:, 1])
    assert sorted(m.frame for m in scene.timeline_markers if m.name == "KineST L") == [21, 101, 131]
    scene.use_preview_range = False
    scene.frame_current = 60
    assert bpy.ops.kinest.clear_contact(foot="BOTH") == {"FINISHED"}
    c2 = contacts.read_contacts(obj)
    assert not c2[59].any() and c2[58, 0] and c2[60, 1]
    np.testing.assert_array_equal(np.delete(c2, 59, axis=0), np.delete(c, 59, axis=0))


def test_plant_feet_holds_the_edited_contacts(clean):
    obj, motion = _baked(clean)
    contacts = mod("contacts")
    before = _foot_travel(clean, obj, range(131, 201))
    assert before.mean() > 2e-3  # the synthetic foot steps around in that span
    assert bpy.ops.kinest.plant_feet() == {"FINISHED"}
    assert contacts.PLANTED_PROP in obj
    travel = _foot_travel(clean, obj, range(131, 201))
    # the foot rolls on its heel or toe: its ankle moves a little at most, never slides along
    assert travel.max() < 0.002 and travel.mean() < 0.1 * before.mean()
    # an edit changes the result: a new span where the foot moved freely is now held
    free = _foot_travel(clean, obj, range(96, 126))
    assert free.mean() > 1e-3
    scene = clean.scene
    scene.use_preview_range = True
    scene.frame_preview_start, scene.frame_preview_end = 96, 125
    assert bpy.ops.kinest.mark_contact(foot="LEFT") == {"FINISHED"}
    assert bpy.ops.kinest.plant_feet() == {"FINISHED"}
    held = _foot_travel(clean, obj, range(97, 126))
    assert held.mean() < 0.2 * free.mean()
    np.testing.assert_array_equal(contacts.read_contacts(obj)[95:125, 0], True)


def test_plant_feet_without_contacts_says_what_to_do(clean):
    motion = synthetic_motion(60)
    obj = mod("bake").bake_motion(clean, motion, "take")
    clean.view_layer.objects.active = obj
    try:
        bpy.ops.kinest.plant_feet()
    except RuntimeError as exc:
        assert "Mark Contact" in str(exc)
    else:
        raise AssertionError("Plant Feet ran without contacts")


def test_smooth_keeps_planted_feet_planted(clean):
    obj, motion = _baked(clean)
    assert bpy.ops.kinest.plant_feet() == {"FINISHED"}
    s = clean.scene.kinest
    s.smooth_legs = s.smooth_spine = s.smooth_arms = 0.8
    assert bpy.ops.kinest.smooth() == {"FINISHED"}
    assert mod("contacts").PLANTED_PROP in obj
    np.testing.assert_array_equal(mod("contacts").read_contacts(obj), motion.contacts)
    assert _foot_travel(clean, obj, range(131, 201)).max() < 0.002


def test_reconstruct_panel_has_the_planting_toggle(clean):
    assert clean.scene.kinest.plant_feet is True
    assert "UNDO" in bpy.types.KINEST_OT_plant_feet.bl_options
