# SPDX-License-Identifier: GPL-3.0-or-later
"""Jitter in Blender: keyed curves, summary, bone colours, trail data, frame jumps, smoothing, body mesh."""

from __future__ import annotations

import numpy as np
import pytest
from kb_helpers import bpy, mod, synthetic_motion

from kinest_core import rotations as rot
from kinest_core.jitter import jitter_colors, jitter_summary, trail_segments
from kinest_core.skeleton import Skeleton, forward_kinematics
from kinest_core.types import Motion


def _shaky_motion(frames: int = 180, noise: float = 0.03) -> Motion:
    base = synthetic_motion(frames)
    rng = np.random.default_rng(0)
    aa = rot.quat_to_axis_angle(base.local_rotations) + noise * rng.standard_normal((frames, 22, 3))
    local = rot.axis_angle_to_matrix(aa)
    _, pos = forward_kinematics(local, base.rest_offsets, base.root_translation)
    return Motion(rot.matrix_to_quat(local), base.root_translation, pos, base.rest_offsets, 60.0)


def _curve(obj, path):
    ad = obj.animation_data
    cb = ad.action.layers[0].strips[0].channelbag(ad.action_slot)
    fc = cb.fcurves.find(path)
    co = np.empty(2 * len(fc.keyframe_points), dtype=np.float32)
    fc.keyframe_points.foreach_get("co", co)
    return co[0::2], co[1::2]


def test_bake_keys_jitter_and_stores_the_summary(clean):
    motion = _shaky_motion()
    obj = mod("bake").bake_motion(clean, motion, "take")
    ref = jitter_summary(motion.joint_positions)
    frames, values = _curve(obj, 'pose.bones["left_wrist"]["kinest_jitter"]')
    np.testing.assert_array_equal(frames, np.arange(1, 181))
    np.testing.assert_allclose(values, ref.per_frame_joint[:, 20], rtol=1e-5)
    assert obj["kinest_jitter_mean"] == pytest.approx(ref.mean)
    assert list(obj["kinest_jitter_worst_frames"]) == [f + 1 for f in ref.worst_frames]  # scene frames
    assert list(obj["kinest_jitter_worst_joints"]) == ref.worst_joints
    # the animated property is there for the Graph Editor, on the pose bone itself
    clean.scene.frame_set(50)
    assert obj.pose.bones["left_wrist"]["kinest_jitter"] == pytest.approx(ref.per_frame_joint[49, 20], rel=1e-4)


def test_bone_colours_follow_the_frame(clean):
    motion = _shaky_motion()
    obj = mod("bake").bake_motion(clean, motion, "take")
    ref = jitter_summary(motion.joint_positions).per_frame_joint
    scene = clean.scene
    assert scene.kinest.show_jitter_colors
    for frame in (10, 120):
        scene.frame_set(frame)  # the frame_change_post handler colours the bones
        for j, name in ((20, "left_wrist"), (0, "pelvis")):
            col = obj.pose.bones[name].color
            assert col.palette == "CUSTOM"
            want = jitter_colors(ref[frame - 1, j], scene.kinest.jitter_shaky)
            np.testing.assert_allclose(tuple(col.custom.normal), want, atol=2e-3)
    scene.kinest.show_jitter_colors = False
    assert obj.pose.bones["left_wrist"].color.palette == "DEFAULT"


def test_trail_data_is_what_the_core_computes_moved_with_the_object(clean):
    view = mod("jitter_view")
    motion = _shaky_motion(120)
    obj = mod("bake").bake_motion(clean, motion, "take", frame_start=11)
    obj.location = (1.0, -2.0, 0.5)
    clean.view_layer.update()
    data = view.trail_data(obj, frame=60, before=20)
    m = np.eye(4)
    m[:3, 3] = (1.0, -2.0, 0.5)
    jit = jitter_summary(motion.joint_positions).per_frame_joint
    want = trail_segments(motion.joint_positions, jit, 49, before=20, matrix=m)
    assert data.num_segments == 20 * 22
    np.testing.assert_allclose(data.points, want.points, atol=1e-5)
    np.testing.assert_allclose(data.colors, want.colors, atol=1e-5)
    view.forget_all()  # e.g. after reopening the file: read back from the action
    again = view.trail_data(obj, frame=60, before=20)
    np.testing.assert_allclose(again.points, want.points, atol=2e-4)
    np.testing.assert_allclose(again.colors, want.colors, atol=2e-2)


def test_motion_reads_back_from_the_action(clean):
    motion = _shaky_motion(90)
    obj = mod("bake").bake_motion(clean, motion, "take", bone_names="UNREAL")
    back = mod("armature").motion_from_armature(obj)
    np.testing.assert_allclose(back.joint_positions, motion.joint_positions, atol=1e-4)
    np.testing.assert_allclose(back.root_translation, motion.root_translation, atol=1e-5)


def test_panel_summary_and_jump_buttons(clean):
    from test_addon import _Layout

    motion = synthetic_motion(180)
    motion.joint_positions[100, 21] += 0.03  # a spike on the right wrist
    obj = mod("bake").bake_motion(clean, motion, "take")
    clean.view_layer.objects.active = obj
    log: list[str] = []
    bpy.types.KINEST_PT_jitter.draw(type("P", (), {"layout": _Layout(log)})(), clean)
    text = "\n".join(log)
    assert "mean" in text and "Worst joints: right_wrist" in text and "kinest.jump_to_frame" in text
    assert "kinest.smooth" in text
    worst = int(obj["kinest_jitter_worst_frames"][0])
    assert 101 <= worst <= 104
    assert bpy.ops.kinest.jump_to_frame(frame=worst) == {"FINISHED"}
    assert clean.scene.frame_current == worst


def test_smooth_operator_lowers_jitter_and_says_by_how_much(clean):
    obj = mod("bake").bake_motion(clean, _shaky_motion(), "take")
    clean.view_layer.objects.active = obj
    before = float(obj["kinest_jitter_mean"])
    s = clean.scene.kinest
    s.smooth_legs = s.smooth_spine = s.smooth_arms = 0.6
    s.smooth_head = 0.3
    assert bpy.ops.kinest.smooth() == {"FINISHED"}
    after = float(obj["kinest_jitter_mean"])
    assert after < 0.5 * before
    assert "% lower" in obj["kinest_smoothing"] and f"{before:.2f}" in obj["kinest_smoothing"]
    arm_actions = [a for a in bpy.data.actions if a.get("kinest_take") == "take"]
    assert len(arm_actions) == 1  # re-baked in place: still one action for the take
    frames, _ = _curve(obj, 'pose.bones["pelvis"].rotation_quaternion')
    assert len(frames) == 180


def test_body_mesh_is_skinned_to_the_armature(clean):
    motion = synthetic_motion(60)
    obj = mod("bake").bake_motion(clean, motion, "take")
    body = next(o for o in bpy.data.objects if o.get("kinest_role") == "body")
    assert body.type == "MESH" and body.parent == obj
    mod_ = next(m for m in body.modifiers if m.type == "ARMATURE")
    assert mod_.object == obj
    assert {g.name for g in body.vertex_groups} == {b.name for b in obj.data.bones}
    assert 300 < len(body.data.vertices) < 2000  # low poly
    clean.scene.frame_set(40)
    deps = clean.evaluated_depsgraph_get()
    ev = body.evaluated_get(deps).to_mesh()
    co = np.empty(3 * len(ev.vertices))
    ev.vertices.foreach_get("co", co)
    co = co.reshape(-1, 3)
    body.evaluated_get(deps).to_mesh_clear()
    gi = body.vertex_groups["left_wrist"].index
    hand = [v.index for v in body.data.vertices if any(g.group == gi for g in v.groups)]
    centre = co[hand].mean(axis=0)
    wrist = motion.joint_positions[39, 20]
    assert np.linalg.norm(centre - wrist) < 0.12, "the hand mesh follows the wrist bone"
    # a second bake (other names) rebuilds it in place
    mod("bake").bake_motion(clean, motion, "take", bone_names="MIXAMO")
    bodies = [o for o in bpy.data.objects if o.get("kinest_role") == "body"]
    assert len(bodies) == 1 and "mixamorig:LeftHand" in bodies[0].vertex_groups


def test_bake_without_body(clean):
    mod("bake").bake_motion(clean, synthetic_motion(20), "take", body=False)
    assert not [o for o in bpy.data.objects if o.get("kinest_role") == "body"]


def test_body_geometry_is_closed():
    body = mod("body")
    sk = Skeleton.neutral(1.75)
    heads, tails, _ = mod("keys").bone_layout(sk.rest_offsets)
    verts, faces, groups = body.body_geometry(heads, tails)
    assert verts.shape[0] == groups.shape[0] == 22 * (3 * body.SIDES + 2)
    edges: dict[tuple[int, int], int] = {}
    for f in faces:
        for a, b in zip(f, f[1:] + f[:1], strict=True):
            key = (min(a, b), max(a, b))
            edges[key] = edges.get(key, 0) + 1
    assert set(edges.values()) == {2}, "every edge has two faces: closed capsules"


def _fake_smpl_file(path):
    """An SMPL-format model file (the keys smplx reads) made from the built-in capsules: no licensed data."""
    import pickle

    from kinest_core.skeleton import PARENTS

    body = mod("body")
    sk = Skeleton.neutral(1.6)  # another size: the fit must scale it onto the armature
    heads, tails, _ = mod("keys").bone_layout(sk.rest_offsets)
    verts, faces, groups = body.body_geometry(heads, tails)
    tris = []
    for f in faces:
        tris += [f] if len(f) == 3 else [(f[0], f[1], f[2]), (f[0], f[2], f[3])]
    v_yup = np.stack([verts[:, 0], verts[:, 2], -verts[:, 1]], -1)
    n = len(v_yup)
    weights = np.zeros((n, 24))
    weights[np.arange(n), groups] = 1.0
    regressor = np.zeros((24, n))
    per = 3 * body.SIDES + 2
    for j in range(24):
        k = j if j < 22 else j - 2
        regressor[j, k * per + 1 : k * per + 1 + body.SIDES] = 1.0 / body.SIDES  # the ring nearest the joint
    parents = np.array([list(PARENTS) + [20, 21], list(range(24))], dtype=np.int64)
    parents[0, 0] = 4294967295
    data = {
        "v_template": v_yup,
        "f": np.array(tris, dtype=np.int64),
        "weights": weights,
        "J_regressor": regressor,
        "kintree_table": parents,
        "shapedirs": np.zeros((n, 3, 10)),
        "posedirs": np.zeros((n, 3, 207)),
    }
    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    return n


def test_smpl_body_from_the_users_model_file(clean, tmp_path):
    pytest.importorskip("smplx")
    path = tmp_path / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"  # SMPL's own name for the file
    n = _fake_smpl_file(path)
    motion = synthetic_motion(60)
    obj = mod("bake").bake_motion(clean, motion, "take", smpl_model=str(path))
    assert "kinest_body_warning" not in obj
    body = next(o for o in bpy.data.objects if o.get("kinest_role") == "body")
    assert len(body.data.vertices) == n and body["kinest_body_source"] == str(path)
    clean.scene.frame_set(30)
    deps = clean.evaluated_depsgraph_get()
    ev = body.evaluated_get(deps).to_mesh()
    co = np.empty(3 * len(ev.vertices))
    ev.vertices.foreach_get("co", co)
    body.evaluated_get(deps).to_mesh_clear()
    gi = body.vertex_groups["left_wrist"].index
    hand = [v.index for v in body.data.vertices if any(g.group == gi and g.weight > 0.5 for g in v.groups)]
    assert np.linalg.norm(co.reshape(-1, 3)[hand].mean(0) - motion.joint_positions[29, 20]) < 0.12
    # the smoothing re-bake keeps the SMPL body
    clean.view_layer.objects.active = obj
    assert bpy.ops.kinest.smooth() == {"FINISHED"}
    body = next(o for o in bpy.data.objects if o.get("kinest_role") == "body")
    assert len(body.data.vertices) == n


def test_unreadable_smpl_file_falls_back_and_says_why(clean, tmp_path):
    obj = mod("bake").bake_motion(clean, synthetic_motion(20), "take", smpl_model=str(tmp_path / "missing.pkl"))
    assert "SMPL model not found" in obj["kinest_body_warning"]
    body = next(o for o in bpy.data.objects if o.get("kinest_role") == "body")
    assert body["kinest_body_source"] == "procedural"


def test_draw_handler_uploads_the_trail_data(clean, monkeypatch):
    """The draw callback, with stand-ins for ``gpu`` (headless Blender has no GPU context to draw in)."""
    import sys
    import types

    calls: list[tuple] = []

    class Shader:
        def uniform_float(self, name, value):
            calls.append(("uniform", name, tuple(value) if not isinstance(value, float) else value))

    class Batch:
        def draw(self, shader):
            calls.append(("draw",))

    def batch_for_shader(shader, kind, data):
        calls.append(("batch", kind, np.asarray(data["pos"]).shape, np.asarray(data["color"]).shape))
        return Batch()

    gpu = types.ModuleType("gpu")
    gpu.shader = types.SimpleNamespace(from_builtin=lambda name: calls.append(("shader", name)) or Shader())
    gpu.state = types.SimpleNamespace(
        viewport_get=lambda: (0, 0, 800, 600),
        blend_set=lambda mode: calls.append(("blend", mode)),
        depth_test_set=lambda mode: calls.append(("depth", mode)),
    )
    extras = types.ModuleType("gpu_extras.batch")
    extras.batch_for_shader = batch_for_shader
    monkeypatch.setitem(sys.modules, "gpu", gpu)
    monkeypatch.setitem(sys.modules, "gpu_extras.batch", extras)

    mod("bake").bake_motion(clean, synthetic_motion(90), "take", body=False)
    clean.scene.frame_set(50)
    clean.scene.kinest.trail_frames = 12
    view = mod("jitter_view")
    view._draw_trails()
    assert ("shader", "POLYLINE_SMOOTH_COLOR") in calls
    assert ("batch", "LINES", (2 * 12 * 22, 3), (2 * 12 * 22, 4)) in calls
    assert ("uniform", "viewportSize", (800, 600)) in calls and ("draw",) in calls
    assert calls[-1] == ("depth", "NONE") and ("blend", "NONE") in calls  # state given back
    calls.clear()
    clean.scene.kinest.show_trails = False
    view._draw_trails()
    assert calls == []
