# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest.retarget`` in real headless Blender: the script workflow, a generated Rigify rig, cancel, undo, errors, presets."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from kb_helpers import FIXTURES, REPO, bpy, mod, scene_state

sys.path.insert(0, str(REPO / "tests"))
from retarget_rigs import build_rig, longer_shins, sample_motion, standing_motion  # noqa: E402

from kinest_core import rotations as rot  # noqa: E402
from kinest_core.postprocess import retarget as rt  # noqa: E402
from kinest_core.skeleton import JOINT_NAMES, forward_kinematics  # noqa: E402

FRAMES = 40
#: DEF bones (head -> head) of a generated Rigify rig for each limb segment.
RIGIFY_DEF = {
    "left thigh": ("DEF-thigh.L", "DEF-shin.L"),
    "right thigh": ("DEF-thigh.R", "DEF-shin.R"),
    "left shin": ("DEF-shin.L", "DEF-foot.L"),
    "right shin": ("DEF-shin.R", "DEF-foot.R"),
    "left upper arm": ("DEF-upper_arm.L", "DEF-forearm.L"),
    "right upper arm": ("DEF-upper_arm.R", "DEF-forearm.R"),
    "left forearm": ("DEF-forearm.L", "DEF-hand.L"),
    "right forearm": ("DEF-forearm.R", "DEF-hand.R"),
}


def _take(context, frames: int = FRAMES):
    motion = sample_motion(frames=frames)
    return motion, mod("bake").bake_motion(context, motion, "take", body=False, jitter=False)


def _character(context, convention: str = "mixamo", mesh: bool = True, shins: float = 0.0) -> bpy.types.Object:
    """A code-built character of a convention (its units as object scale) with a box per limb bone, skinned;
    ``shins``: metres added to its shins (legs built unlike ours)."""
    rig = build_rig(convention)
    skel = rig.skeleton
    if shins:
        from kinest_core.postprocess.bone_map import map_skeleton

        skel = longer_shins(skel, map_skeleton(skel), shins * rig.units)
    data = bpy.data.armatures.new(f"{convention}_arm")
    obj = bpy.data.objects.new(convention, data)
    context.scene.collection.objects.link(obj)
    obj.scale = (1.0 / rig.units,) * 3
    context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    made = []
    for i, name in enumerate(skel.names):
        eb = data.edit_bones.new(name)
        eb.head, eb.tail = skel.heads[i] / 1.0, skel.tails[i] / 1.0
        made.append(eb)
    for i, p in enumerate(skel.parents):
        if p >= 0:
            made[i].parent = made[p]
    bpy.ops.object.mode_set(mode="OBJECT")
    if mesh:
        verts, faces, groups = [], [], []
        for i, name in enumerate(skel.names):
            h, t = skel.heads[i], skel.tails[i]
            r = 0.03 * rig.units
            base = len(verts)
            for end in (h, t):
                for dx, dy in ((-r, -r), (r, -r), (r, r), (-r, r)):
                    verts.append(tuple(end + np.array([dx, dy, 0.0])))
            faces += [(base + a, base + b, base + 4 + b, base + 4 + a) for a, b in ((0, 1), (1, 2), (2, 3), (3, 0))]
            groups.append((name, list(range(base, base + 8))))
        me = bpy.data.meshes.new(f"{convention}_body")
        me.from_pydata(verts, [], faces)
        body = bpy.data.objects.new(f"{convention}_body", me)
        context.scene.collection.objects.link(body)
        body.parent = obj
        for name, idx in groups:
            body.vertex_groups.new(name=name).add(idx, 1.0, "REPLACE")
        body.modifiers.new("Armature", "ARMATURE").object = obj
    return obj


def _def_directions(context, obj, segments: dict[str, tuple[str, str]], frames: list[int]) -> dict[str, np.ndarray]:
    names = sorted({b for seg in segments.values() for b in seg})
    heads = mod("retarget_bake").world_heads(context, obj, names, frames)
    pos = {n: heads[:, k] for k, n in enumerate(names)}
    return {seg: pos[b] - pos[a] for seg, (a, b) in segments.items()}


def _errors(motion, dirs: dict[str, np.ndarray], frames: list[int], start: int = 1) -> dict[str, float]:
    _, ours = forward_kinematics(
        rot.quat_to_matrix(motion.local_rotations), motion.rest_offsets, motion.root_translation
    )
    sel = [f - start for f in frames]
    out = {}
    for seg, (a, b) in rt.LIMB_SEGMENTS.items():
        o = ours[sel, JOINT_NAMES.index(b)] - ours[sel, JOINT_NAMES.index(a)]
        t = dirs[seg]
        cos = np.sum(t * o, -1) / np.linalg.norm(t, axis=-1) / np.linalg.norm(o, axis=-1)
        out[seg] = float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean())
    return out


def _mesh_positions(context, body, frame: int) -> np.ndarray:
    context.scene.frame_set(frame)
    ev = body.evaluated_get(context.evaluated_depsgraph_get())
    me = ev.to_mesh()
    co = np.empty(3 * len(me.vertices))
    me.vertices.foreach_get("co", co)
    ev.to_mesh_clear()
    return co.reshape(-1, 3)


def test_script_workflow_record_reconstruct_retarget_export(clean, checkpoint, tmp_path):
    """What a user's script does headless: import a recording, reconstruct, retarget, export FBX, re-import."""
    rec = FIXTURES / "vr" / "mlt_examples_data_first300.csv"
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(rec)) == {"FINISHED"}
    clean.scene.kinest.model_path = str(checkpoint)
    clean.scene.kinest.body_mesh = False
    assert bpy.ops.kinest.reconstruct() == {"FINISHED"}
    char = _character(clean, "mixamo")
    own = bpy.data.actions.new("their_walk")
    char.animation_data_create().action = own
    body = next(o for o in char.children if o.type == "MESH")
    modifiers = [(m.type, m.object) for m in body.modifiers]
    assert bpy.ops.kinest.retarget(target=char.name) == {"FINISHED"}
    action = char.animation_data.action
    assert action is not own and "their_walk" in bpy.data.actions and own.use_fake_user
    assert [(m.type, m.object) for m in body.modifiers] == modifiers
    stored = json.loads(char["kinest_retarget_map"])
    assert stored["pelvis"] == "mixamorig:Hips" and stored["left_elbow"] == "mixamorig:LeftForeArm"
    assert set(stored) <= set(JOINT_NAMES) and len(stored) == 22
    take = mod("takes").current_armature(clean)
    n = int(take["kinest_frames"])
    fc = action.layers[0].strips[0].channelbag(action.slots[0]).fcurves
    assert {len(c.keyframe_points) for c in fc} == {n}
    assert _mesh_positions(clean, body, 10).tolist() != _mesh_positions(clean, body, 60).tolist()

    path = tmp_path / "character.fbx"
    assert bpy.ops.kinest.export_fbx(filepath=str(path), preset="BLENDER", target=char.name) == {"FINISHED"}
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.render.fps = 60
    assert bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0) == {"FINISHED"}
    meshes = [o for o in bpy.context.scene.objects if o.type == "MESH"]
    arms = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"]
    assert len(meshes) == 1 and len(arms) == 1
    a, b = _mesh_positions(bpy.context, meshes[0], 10), _mesh_positions(bpy.context, meshes[0], 60)
    assert np.abs(a - b).max() > 0.01  # the skinned mesh deforms with the retargeted keys


def test_the_take_contacts_travel_to_the_character_and_hold_its_feet(clean):
    """The character's foot bones get the take's contact keys, its feet stand still through the spans
    (its shins are longer than ours, so copied rotations alone slide them), and an edited contact or
    Plant Feet off changes that."""
    from kinest_core.postprocess.foot_planting import plant_feet

    c = np.zeros((90, 2), dtype=bool)
    c[20:50, 0] = True
    c[40:70, 1] = True
    take = mod("bake").bake_motion(clean, plant_feet(standing_motion(), c), "take", body=False, jitter=False)
    char = _character(clean, "mixamo", mesh=False, shins=0.12)
    start = int(take["kinest_frame_start"])
    span = list(range(start + 20, start + 50))
    foot = "mixamorig:LeftFoot"

    def left_foot_travel() -> float:
        heads = mod("retarget_bake").world_heads(clean, char, [foot], span)[:, 0]
        return float(np.linalg.norm(np.diff(heads, axis=0), axis=-1).sum())

    assert bpy.ops.kinest.retarget(target=char.name, source=take.name) == {"FINISHED"}
    cb = char.animation_data.action.layers[0].strips[0].channelbag(char.animation_data.action_slot)
    for side, bone in enumerate((foot, "mixamorig:RightFoot")):
        fc = cb.fcurves.find(f'pose.bones["{bone}"]["kinest_contact"]')
        values = np.empty(2 * len(fc.keyframe_points))
        fc.keyframe_points.foreach_get("co", values)
        assert np.array_equal(values[1::2] >= 0.5, c[:, side])
    held = left_foot_travel()
    assert bpy.ops.kinest.retarget(target=char.name, source=take.name, plant_feet=False) == {"FINISHED"}
    free = left_foot_travel()
    edited = c.copy()
    edited[:, 0] = False  # the animator clears the left foot's contacts on the take
    mod("contacts").write_contacts(take, edited, clean.scene)
    assert bpy.ops.kinest.retarget(target=char.name, source=take.name) == {"FINISHED"}
    cleared = left_foot_travel()
    assert free > 0.02  # metres over the span: the longer shins slide the copied foot
    assert held < 1e-3 * free, (held, free)
    assert cleared > 0.5 * free, (cleared, free)


def test_generated_rigify_rig_keyed_on_fk_controls(clean, capsys):
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    motion, take = _take(clean)
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    rig = bpy.context.active_object
    assert rig.name == "rig" and "upper_arm_parent.L" in rig.pose.bones
    assert bpy.ops.kinest.retarget(target=rig.name, source=take.name) == {"FINISHED"}
    cb = rig.animation_data.action.layers[0].strips[0].channelbag(rig.animation_data.action_slot)
    keyed = {fc.data_path.split('"')[1] for fc in cb.fcurves}
    assert not [b for b in keyed if b.startswith(("DEF-", "ORG-", "MCH-"))]
    assert {"torso", "upper_arm_fk.L", "forearm_fk.R", "thigh_fk.L", "shin_fk.R", "hand_fk.L"} <= keyed
    for bone in ("upper_arm_parent.L", "upper_arm_parent.R", "thigh_parent.L", "thigh_parent.R"):
        assert rig.pose.bones[bone]["IK_FK"] == 1.0
    frames = list(range(1, FRAMES + 1, 3))
    errs = _errors(motion, _def_directions(clean, rig, RIGIFY_DEF, frames), frames)
    with capsys.disabled():
        print("\ngenerated Rigify rig, DEF limb direction error (deg):", {k: round(v, 2) for k, v in errs.items()})
    assert np.mean(list(errs.values())) < 5.0


@pytest.mark.parametrize("convention", ["mixamo", "rigify_def_only", "mmd_english"])
def test_code_built_rigs_follow_our_limbs(clean, convention, capsys):
    motion, take = _take(clean)
    char = _character(clean, convention, mesh=False)
    assert bpy.ops.kinest.retarget(target=char.name) == {"FINISHED"}
    stored = json.loads(char["kinest_retarget_map"])
    if convention == "rigify_def_only":
        assert all(b.startswith("DEF-") for b in stored.values())
    segs = {seg: (stored[a], stored[b]) for seg, (a, b) in rt.LIMB_SEGMENTS.items()}
    frames = list(range(1, FRAMES + 1, 3))
    errs = _errors(motion, _def_directions(clean, char, segs, frames), frames)
    with capsys.disabled():
        print(f"\n{convention}: limb direction error (deg) mean {np.mean(list(errs.values())):.3f}")
    assert np.mean(list(errs.values())) < 0.5


def test_plain_rig_keys_equal_the_cores(clean):
    """On a rig without constraints the measured parents reproduce the core's own keys."""
    from kinest_core.postprocess.bone_map import map_skeleton

    motion, take = _take(clean, 12)
    char = _character(clean, "unreal", mesh=False)
    assert bpy.ops.kinest.retarget(target=char.name) == {"FINISHED"}
    skel = mod("retarget_bake").target_skeleton(char)
    res = rt.retarget(motion, skel, map_skeleton(skel))
    cb = char.animation_data.action.layers[0].strips[0].channelbag(char.animation_data.action_slot)
    for k, bone in enumerate(res.keyed):
        q = np.stack(
            [mod("takes").fcurve_values(cb, f'pose.bones["{bone}"].rotation_quaternion', i) for i in range(4)], -1
        )
        assert np.allclose(np.abs(np.sum(q * res.rotations[:, k], -1)), 1.0, atol=1e-4), bone


def test_cancel_leaves_the_target_as_it_was(clean):
    _take(clean, 1200)
    char = _character(clean, "mixamo", mesh=False)
    own = bpy.data.actions.new("their_walk")
    char.animation_data_create().action = own
    char.pose.bones["mixamorig:LeftArm"].rotation_quaternion = (0.9, 0.1, 0.2, 0.3)
    before = scene_state()
    pose = [tuple(pb.rotation_quaternion) + tuple(pb.location) + (pb.rotation_mode,) for pb in char.pose.bones]
    ro = mod("retarget_op")
    ro.CHUNK_FRAMES, keep = 200, ro.CHUNK_FRAMES
    try:
        job = ro.RetargetJob(clean, char.name)
        for _ in range(8):  # into the F-curve writing
            job.step(clean, 0.0)
        assert job.computed == 1200 and job.written > 0
        assert len(bpy.data.actions) == len(before["actions"]) + 1  # the unfinished one
        job.cancel()
        ro.finish(job)
    finally:
        ro.CHUNK_FRAMES = keep
    assert scene_state() == before
    assert char.animation_data.action == own and "kinest_retarget_map" not in char
    assert [tuple(pb.rotation_quaternion) + tuple(pb.location) + (pb.rotation_mode,) for pb in char.pose.bones] == pose


def test_retarget_is_one_undo_step(clean):
    """Headless Blender has no undo stack (``ed.undo`` needs a window), so what undo relies on is checked:
    the operator pushes one step, and everything it changes is ID data Blender's undo restores
    (the new action, the object's animation data and ID properties, pose-bone switches and modes)."""
    assert {"UNDO", "REGISTER"} <= set(bpy.types.KINEST_OT_retarget.bl_options)
    _take(clean, 20)
    char = _character(clean, "mixamo", mesh=False)
    before = {p: getattr(char, p) for p in ("location", "rotation_euler", "scale")}
    before_bones = [(b.name, tuple(b.head_local), tuple(b.tail_local)) for b in char.data.bones]
    assert bpy.ops.kinest.retarget(target=char.name) == {"FINISHED"}
    assert {p: getattr(char, p) for p in ("location", "rotation_euler", "scale")} == before
    assert [(b.name, tuple(b.head_local), tuple(b.tail_local)) for b in char.data.bones] == before_bones


def test_non_humanoid_is_refused_naming_what_is_missing(clean):
    _take(clean, 10)
    data = bpy.data.armatures.new("crane")
    obj = bpy.data.objects.new("crane", data)
    clean.scene.collection.objects.link(obj)
    clean.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    prev = None
    for k in range(4):
        eb = data.edit_bones.new(f"Segment{k}")
        eb.head, eb.tail = (0, 0, k), (0, 0, k + 1)
        eb.parent = prev
        prev = eb
    bpy.ops.object.mode_set(mode="OBJECT")
    before = scene_state()
    with pytest.raises(ValueError, match=r"crane: not a humanoid .*no bone for .*left_knee"):
        mod("retarget_op").RetargetJob(clean, "crane")
    with pytest.raises(RuntimeError, match=r"crane: not a humanoid .*no bone for pelvis"):  # the operator's report
        bpy.ops.kinest.retarget(target="crane")
    assert scene_state() == before and obj.animation_data is None and "kinest_retarget_map" not in obj


def test_panel_mapping_edit_and_presets(clean, tmp_path):
    _take(clean, 10)
    char = _character(clean, "mixamo", mesh=False)
    settings = clean.scene.kinest_retarget
    settings.target = char
    assert bpy.ops.kinest.retarget_auto_map() == {"FINISHED"}
    rows = {item.joint: item for item in settings.mapping}
    assert len(rows) == 22 and rows["left_wrist"].bone == "mixamorig:LeftHand"
    rows["neck"].bone = ""  # the user clears a joint: the head then takes the neck's rotation too
    preset = tmp_path / "mixamo.json"
    assert bpy.ops.kinest.retarget_save_map(filepath=str(preset)) == {"FINISHED"}
    saved = json.loads(preset.read_text())
    assert "neck" not in saved and saved["head"] == "mixamorig:Head"
    settings.mapping.clear()
    assert bpy.ops.kinest.retarget_load_map(filepath=str(preset)) == {"FINISHED"}
    assert {i.joint: i.bone for i in settings.mapping if i.bone} == saved
    assert bpy.ops.kinest.retarget(target=char.name) == {"FINISHED"}
    assert json.loads(char["kinest_retarget_map"]) == saved
    bad = tmp_path / "bad.json"
    bad.write_text('{"elbow_left": "x"}')
    with pytest.raises(ValueError, match="unknown joints elbow_left"):
        mod("retarget_ui").read_preset(str(bad))
    with pytest.raises(RuntimeError, match="unknown joints elbow_left"):
        bpy.ops.kinest.retarget_load_map(filepath=str(bad))
