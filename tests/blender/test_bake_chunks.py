# SPDX-License-Identifier: GPL-3.0-or-later
"""The bake in steps (hour-long takes): same keys as one call, progress, and a cancel that leaves no trace."""

from __future__ import annotations

import numpy as np
import pytest
from kb_helpers import bpy, mod, recording_path, scene_state, synthetic_compute, synthetic_motion


def _keys(obj) -> dict[tuple[str, int], np.ndarray]:
    ad = obj.animation_data
    cb = ad.action.layers[0].strips[0].channelbag(ad.action_slot)
    out = {}
    for fc in cb.fcurves:
        co = np.empty(2 * len(fc.keyframe_points), dtype=np.float32)
        fc.keyframe_points.foreach_get("co", co)
        ipo = np.empty(len(fc.keyframe_points), dtype=np.int32)
        fc.keyframe_points.foreach_get("interpolation", ipo)
        out[(fc.data_path, fc.array_index)] = np.concatenate([co, ipo.astype(np.float32)])
    return out


def _snapshot(context) -> dict:
    """Everything a bake could change: data-block names, every action's keys, bones, scene timing."""
    state: dict = dict(scene_state())
    state["meshes"] = sorted(m.name for m in bpy.data.meshes)
    for obj in bpy.data.objects:
        if obj.animation_data is not None and obj.animation_data.action is not None:
            state[f"action of {obj.name}"] = obj.animation_data.action.name
            state[f"keys of {obj.name}"] = {k: v.tobytes() for k, v in _keys(obj).items()}
        if obj.type == "ARMATURE":
            state[f"bones of {obj.name}"] = [(b.name, tuple(b.head_local), tuple(b.tail_local)) for b in obj.data.bones]
            state[f"props of {obj.name}"] = {k: str(obj[k]) for k in obj.keys()}
    scene = context.scene
    state["timing"] = (scene.frame_start, scene.frame_end, scene.render.fps, scene.render.fps_base)
    return state


@pytest.mark.parametrize("preset", ["SMPL", "UNREAL"])
def test_rest_frames_are_blenders_own(clean, preset):
    """The keys are computed before the bones exist: the predicted rest frames must be Blender's."""
    from kinest_core.skeleton import Skeleton

    keys, armature = mod("keys"), mod("armature")
    names = keys.BONE_NAME_PRESETS[preset]
    for height in (1.45, 1.75, 2.05):
        offsets = Skeleton.neutral(height).rest_offsets
        obj = armature.ensure_armature(clean, f"h{height}", offsets, names)
        np.testing.assert_allclose(keys.rest_frames(offsets), armature.rest_matrices(obj, names), atol=1e-5)


def test_stepped_bake_writes_the_same_keys_as_one_call(clean):
    bake = mod("bake")
    motion = synthetic_motion(300)
    whole = bake.bake_motion(clean, motion, "take")
    expected = _keys(whole)
    props = {k: str(whole[k]) for k in whole.keys() if k != "kinest_bake_id"}
    bpy.ops.wm.read_homefile(use_empty=True)

    job = bake.BakeJob(bake.plan_bake(motion, "take"))
    steps = 1
    while not job.step(bpy.context, budget_s=0.0):  # one F-curve per step
        steps += 1
    assert steps == job.total + 1 == len(expected) + 1  # the last step puts the take together
    obj = bpy.data.objects[job.obj_name]
    got = _keys(obj)
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        np.testing.assert_array_equal(got[key], value, err_msg=str(key))
    assert {k: str(obj[k]) for k in obj.keys() if k != "kinest_bake_id"} == props
    assert obj.animation_data.action.name == "KineST_take" and not obj.animation_data.action.use_fake_user
    assert "kinest_bake_token" not in obj.animation_data.action


def test_cancel_mid_bake_leaves_the_scene_as_it_was(clean):
    """A take is baked; a second bake of another body and length is cancelled half way."""
    from kinest_core.skeleton import Skeleton

    bake = mod("bake")
    bake.bake_motion(clean, synthetic_motion(120), "take")
    before = _snapshot(clean)
    n_actions = len(bpy.data.actions)
    other = synthetic_motion(200, height=1.5)
    assert not np.allclose(other.rest_offsets, Skeleton.neutral(1.8).rest_offsets)
    job = bake.BakeJob(bake.plan_bake(other, "take"))
    for _ in range(20):
        assert not job.step(clean, budget_s=0.0)
    assert 0 < job.done < job.total
    during = _snapshot(clean)
    filling = during.pop("actions")
    assert during == {k: v for k, v in before.items() if k != "actions"}  # nothing the user sees has changed
    assert len(filling) == n_actions + 1  # but the unassigned action being filled
    job.cancel()
    assert _snapshot(clean) == before and len(bpy.data.actions) == n_actions


def test_cancel_during_the_reconstructions_bake_leaves_the_scene_as_it_was(clean):
    rec = mod("reconstruct_op")
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(recording_path())) == {"FINISHED"}
    before = _snapshot(clean)
    job = rec.start_job(clean, compute=synthetic_compute())
    progress = clean.window_manager.kinest_progress
    while job.baker is None or job.baker.done < 10:
        assert rec.step(clean, job, budget_s=0.0) == rec.RUNNING
        job.wait(0.01)
    assert progress.stage == "bake" and progress.done == job.baker.done and progress.total == job.baker.total
    assert 0.9 <= job.fraction() < 1.0
    assert bpy.ops.kinest.cancel() == {"FINISHED"}
    assert rec.step(clean, job, budget_s=0.0) == rec.CANCELLED
    assert _snapshot(clean) == before
    assert not [a for a in bpy.data.actions if a.use_fake_user or a.users == 0]
    assert not rec.active_jobs() and not progress.running


def test_reconstruction_bakes_in_steps_with_progress(clean):
    rec = mod("reconstruct_op")
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(recording_path())) == {"FINISHED"}
    job = rec.start_job(clean, compute=synthetic_compute())
    progress = clean.window_manager.kinest_progress
    baked = []
    while (state := rec.step(clean, job, budget_s=0.0)) == rec.RUNNING:
        if progress.stage == "bake":
            baked.append(progress.done)
            assert rec.active_jobs() == [job]  # still running for the panel and Cancel
        job.wait(0.01)
    assert state == rec.FINISHED, progress.message
    assert len(baked) >= 100 and baked == sorted(baked)  # one F-curve per step here
    assert "baked in" in progress.last_result and job.plan is None
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert len(arm.animation_data.action.layers[0].strips[0].channelbags[0].fcurves) == 3 + 22 * 4 + 22


def test_bake_fails_cleanly_when_its_action_goes_away(clean):
    """An undo between two steps removes the half-filled action: the bake stops, nothing is left."""
    rec = mod("reconstruct_op")
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(recording_path())) == {"FINISHED"}
    before = _snapshot(clean)
    job = rec.start_job(clean, compute=synthetic_compute())
    while job.baker is None:
        rec.step(clean, job, budget_s=0.0)
        job.wait(0.01)
    filling = next(a for a in bpy.data.actions if a.get("kinest_bake_token"))
    bpy.data.actions.remove(filling)
    assert rec.step(clean, job, budget_s=0.0) == mod("reconstruct_job").FAILED
    assert "Baking failed" in clean.window_manager.kinest_progress.message
    assert _snapshot(clean) == before
