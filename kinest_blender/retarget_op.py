# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest.retarget``: the scene's KineST take played on the animator's own armature.

Everything happens on the main thread in short steps (:meth:`RetargetJob.step`), so a long take
neither freezes Blender nor leaves half a result: the job first finds where the character's feet
stand (the take's contact keys; the ankles a chunk of frames at a time, then one hold per
contact span), then computes the keys a chunk of frames at a time (the core's
:func:`~kinest_core.postprocess.retarget.retarget`, then
:mod:`.retarget_keys` for what the rig's constraints do), then writes them a few F-curves at a
time into a new action that nothing uses yet, and only its last step touches the target (the
action assigned, Rigify's switches set to FK, the mapping stored; the action also keys the take's
contacts on the character's foot bones). A cancel at any point removes
that action and nothing else; the finished operator is one undo step. Called from a script or
in background mode it runs to the end, like ``kinest.reconstruct``.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, StringProperty

from . import armature, contacts, retarget_bake, takes
from .retarget_keys import ParentModel, continue_signs, pose_keys

if TYPE_CHECKING:
    from kinest_core.postprocess.bone_map import BoneMap, TargetSkeleton
    from kinest_core.types import Motion

RUNNING, FINISHED, CANCELLED, FAILED = "RUNNING", "FINISHED", "CANCELLED", "FAILED"
ROOT_MOTION_ITEMS = [
    ("hips", "Hips", "The hips bone carries the whole root motion"),
    ("root", "Root Bone", "The rig's top bone carries the horizontal motion (game engines' root motion)"),
    ("in_place", "In Place", "No horizontal motion: the character moves on the spot"),
]
#: Frames the core retargets per step, and seconds of F-curve writing per step.
CHUNK_FRAMES = 512
STEP_S = 0.1
#: The action a running retarget is filling (found again by name and this token between steps).
TOKEN_PROP = "kinest_retarget_token"

_JOBS: list[RetargetJob] = []


def active_job() -> RetargetJob | None:
    return next((j for j in _JOBS if j.state == RUNNING), None)


def find_target(context: bpy.types.Context, name: str) -> bpy.types.Object:
    """The armature to retarget onto: ``name``, else the Retarget panel's pick (a clear error otherwise)."""
    settings = getattr(context.scene, "kinest_retarget", None)
    if not name and settings is not None and settings.target is not None:
        name = settings.target.name
    if not name:
        raise ValueError("No target armature: pick your character in the Retarget panel or pass target=NAME")
    found = [o for o in context.scene.objects if o.name == name]
    obj = next((o for o in found if o.library is None), found[0] if found else None)
    if obj is None:
        raise ValueError(f"No object {name!r} in the scene: import or link your character first")
    if obj.type != "ARMATURE":
        raise ValueError(f"{name} is a {obj.type.lower()}, not an armature: pick the character's armature")
    if obj.library is not None:
        raise ValueError(f"{name} is linked from {obj.library.filepath}: make a library override first")
    if takes.is_take_armature(obj):
        raise ValueError(f"{name} is a KineST take: pick your own character as the target")
    return obj


def find_source(context: bpy.types.Context, name: str) -> bpy.types.Object:
    """The KineST take to play: ``name``, else the scene's take (whatever is selected)."""
    if name:
        obj = bpy.data.objects.get(name)
        if not takes.is_take_armature(obj):
            raise ValueError(f"{name!r} is not a KineST take armature: reconstruct a take and pass its armature")
        return obj
    obj = takes.current_armature(context)
    if obj is None:
        raise ValueError("No KineST take in the scene: import a recording and press Reconstruct first")
    return obj


def panel_mapping(context: bpy.types.Context, target: bpy.types.Object) -> dict[str, str] | None:
    """The mapping edited in the Retarget panel, when it was made for this target."""
    settings = getattr(context.scene, "kinest_retarget", None)
    if settings is None or settings.mapping_target != target.name or not len(settings.mapping):
        return None
    return {item.joint: item.bone for item in settings.mapping if item.bone}


def _chunk(motion: Motion, a: int, b: int) -> Motion:
    return dataclasses.replace(
        motion,
        local_rotations=motion.local_rotations[a:b],
        root_translation=motion.root_translation[a:b],
        joint_positions=motion.joint_positions[a:b],
        contacts=None if motion.contacts is None else motion.contacts[a:b],
    )


class RetargetJob:
    """One retarget, in main-thread steps: keys by chunks of frames, then F-curves, then the target."""

    def __init__(
        self,
        context: bpy.types.Context,
        target: str = "",
        source: str = "",
        use_ik: bool = False,
        root_motion: str = "hips",
        mapping: dict[str, str] | None = None,
        plant_feet: bool = True,
    ) -> None:
        """Resolve and check everything (raises ValueError with a message for the user)."""
        from kinest_core.postprocess.bone_map import BoneMap, BoneMapError, map_skeleton
        from kinest_core.postprocess.retarget import retarget

        self.obj = find_target(context, target)
        self.source = find_source(context, source)
        self.use_ik, self.root_motion = use_ik, root_motion
        self.motion = armature.motion_from_armature(self.source)
        take_contacts = contacts.read_contacts(self.source)  # as the animator left them
        if take_contacts is not None and take_contacts.shape == (self.motion.num_frames, 2):
            self.motion = dataclasses.replace(self.motion, contacts=take_contacts)
        self.plant_feet = plant_feet and self.motion.contacts is not None and bool(self.motion.contacts.any())
        self.frame_start = int(self.source.get(takes.FRAME_START_PROP, 1))
        rest = retarget_bake.target_skeleton(self.obj)
        if mapping is None:
            mapping = panel_mapping(context, self.obj)
        try:
            self.bone_map: BoneMap = BoneMap.from_mapping(mapping, rest) if mapping else map_skeleton(rest)
            self.bone_map.require()
            keyed = retarget(
                _chunk(self.motion, 0, 1), rest, self.bone_map, root_motion=root_motion, plant_feet=False
            ).keyed
        except BoneMapError as exc:
            raise ValueError(f"{self.obj.name}: {exc}") from None
        self.switches = retarget_bake.rigify_switches(self.obj)
        with retarget_bake.neutral_pose(context, self.obj, keyed, self.switches):
            self.skeleton: TargetSkeleton = retarget_bake.sub_skeleton(
                retarget_bake.evaluated_skeleton(self.obj), keyed
            )
            self.model: ParentModel = retarget_bake.probe_parents(context, self.obj, keyed)
        self.keyed = keyed
        self._kidx = [self.skeleton.index(n) for n in keyed]
        n = self.motion.num_frames
        self.feet = (self.bone_map.joints["left_ankle"], self.bone_map.joints["right_ankle"])
        self.ankles = np.empty((n if self.plant_feet else 0, 2, 3))
        self.located = 0 if self.plant_feet else n  # frames whose ankles are known
        self.goals: np.ndarray | None = None
        self.quats = np.empty((n, len(keyed), 4), dtype=np.float32)
        self.locs = np.empty((n, len(keyed), 3), dtype=np.float32)
        self.computed = 0
        self.curves: list[tuple[str, int, str, int, int]] = []  # (path, index, group, bone k, 0 rot / 1 loc)
        self.written = 0
        self.state = RUNNING
        self.error = ""
        self.started = time.perf_counter()
        self._prev: np.ndarray | None = None
        self._token = uuid.uuid4().hex
        self._action_name = ""
        _JOBS.append(self)

    # progress -------------------------------------------------------------------------------
    def fraction(self) -> float:
        """Frames located (when planting) and computed, then F-curves written, over all of them."""
        located = self.located if self.plant_feet else 0
        frames = self.motion.num_frames * (2 if self.plant_feet else 1)
        total = frames + max(len(self.curves), 4 * len(self.keyed))
        return min(1.0, (located + self.computed + self.written) / max(total, 1))

    # steps ----------------------------------------------------------------------------------
    def _locate_chunk(self) -> None:
        """The character's ankles for a chunk of frames; once all are known, the held foot goals."""
        from kinest_core.postprocess.retarget import foot_goals, target_ankles

        a = self.located
        b = min(a + CHUNK_FRAMES, self.motion.num_frames)
        self.ankles[a:b] = target_ankles(
            _chunk(self.motion, a, b), self.skeleton, self.bone_map, self.root_motion, self.use_ik
        )
        self.located = b
        if b == self.motion.num_frames:
            assert self.motion.contacts is not None
            self.goals = foot_goals(self.ankles, self.motion.contacts, self.skeleton, self.bone_map)

    def _compute_chunk(self) -> None:
        from kinest_core.postprocess.retarget import pose_world, retarget

        a = self.computed
        b = min(a + CHUNK_FRAMES, self.motion.num_frames)
        res = retarget(
            _chunk(self.motion, a, b),
            self.skeleton,
            self.bone_map,
            root_motion=self.root_motion,
            use_ik=self.use_ik,
            plant_feet=False,
            goals=None if self.goals is None else self.goals[a:b],
        )
        if res.keyed != tuple(self.keyed):
            raise RuntimeError("the rig's keyed bones changed during the retarget (was it edited?)")
        world, heads = pose_world(res)
        q, loc = pose_keys(
            self.model,
            world[:, self._kidx],
            heads[:, self._kidx],
            self.skeleton.rest_rotations[self._kidx],
            self.skeleton.heads[self._kidx],
        )
        q = continue_signs(q, self._prev)
        self._prev = q[-1]
        self.quats[a:b] = q
        self.locs[a:b] = loc / retarget_bake.object_scale(self.obj)
        self.computed = b
        if b == self.motion.num_frames:
            self._plan_curves()

    def _plan_curves(self) -> None:
        tol = 1e-5 * self.skeleton.size / retarget_bake.object_scale(self.obj)
        moving = np.max(np.abs(self.locs), axis=(0, 2)) > tol
        for k, bone in enumerate(self.keyed):
            self.curves += [(takes.rotation_path(bone), i, bone, k, 0) for i in range(4)]
            if moving[k]:
                self.curves += [(takes.location_path(bone), i, bone, k, 1) for i in range(3)]

    def _action(self) -> bpy.types.Action:
        action = bpy.data.actions.get(self._action_name) if self._action_name else None
        if action is None or action.get(TOKEN_PROP) != self._token:
            raise RuntimeError("the retarget's new action went away (undo or file load during the retarget)")
        return action

    def _begin_action(self) -> None:
        take = str(self.source.get(takes.TAKE_PROP, self.source.name))
        action = bpy.data.actions.new(f"{self.obj.name}_KineST_{take}")
        action.use_fake_user = True  # nothing uses it until the last step
        action[TOKEN_PROP] = self._token
        action[takes.TAKE_PROP] = take
        action.slots.new(id_type="OBJECT", name=self.obj.name)
        self._action_name = action.name

    def step(self, context: bpy.types.Context, budget_s: float | None = STEP_S) -> str:
        """Work for about ``budget_s`` seconds (None: to the end); returns the job's state."""
        if self.state != RUNNING:
            return self.state
        t0 = time.perf_counter()
        try:
            while self.located < self.motion.num_frames:
                self._locate_chunk()
                if budget_s is not None and time.perf_counter() - t0 >= budget_s:
                    return RUNNING
            while self.computed < self.motion.num_frames:
                self._compute_chunk()
                if budget_s is not None and time.perf_counter() - t0 >= budget_s:
                    return RUNNING
            if not self._action_name:
                self._begin_action()
            action = self._action()
            cb = takes.slot_channelbag(action, action.slots[0])
            frames = np.arange(self.frame_start, self.frame_start + self.motion.num_frames, dtype=np.float32)
            while self.written < len(self.curves):
                path, index, group, k, kind = self.curves[self.written]
                values = self.quats[:, k, index] if kind == 0 else self.locs[:, k, index]
                takes.write_fcurve_keys(cb, path, index, frames, values, group)
                self.written += 1
                if budget_s is not None and time.perf_counter() - t0 >= budget_s:
                    return RUNNING
            self._assemble(context, action, cb)
        except (RuntimeError, ValueError, ReferenceError) as exc:
            self.error = f"Retarget failed: {exc}"
            self._discard()
            self.state = FAILED
        return self.state

    def _assemble(self, context: bpy.types.Context, action: bpy.types.Action, cb: Any) -> None:
        """The one step that changes the target: switches keyed to FK, the action assigned, the map stored."""
        obj = self.obj
        for (bone, prop), value in self.switches.items():
            obj.pose.bones[bone][prop] = value
            takes.write_fcurve_keys(
                cb, f'pose.bones["{bone}"]["{prop}"]', 0, np.array([self.frame_start]), np.array([value]), bone
            )
        if self.motion.contacts is not None:  # the take's contacts travel with the motion
            contacts.prepare_foot_bones(obj, self.feet)
            contacts.key_foot_contacts(cb, self.feet, self.motion.contacts, self.frame_start)
        for bone in self.keyed:
            pb = obj.pose.bones[bone]
            pb.rotation_mode = "QUATERNION"
        ad = obj.animation_data or obj.animation_data_create()
        old = ad.action
        if old is not None and old.users <= 1 and not old.use_fake_user:
            old.use_fake_user = True  # the character's own action stays in the file
        ad.action = action
        ad.action_slot = action.slots[0]
        action.use_fake_user = False
        del action[TOKEN_PROP]
        self._action_name = ""
        retarget_bake.store_map(obj, self.bone_map)
        obj["kinest_retarget_source"] = self.source.name
        self.state = FINISHED
        self.finished_at = time.perf_counter()

    def _discard(self) -> None:
        if self._action_name:
            try:
                bpy.data.actions.remove(self._action())
            except (RuntimeError, ReferenceError):
                pass
            self._action_name = ""
        self.quats = self.locs = np.empty((0, 0, 0), dtype=np.float32)
        self.ankles, self.goals = np.empty((0, 2, 3)), None

    def cancel(self) -> None:
        """Stop; the target stays as it was (the unfinished action is removed)."""
        if self.state == RUNNING:
            self._discard()
            self.state = CANCELLED

    def summary(self) -> str:
        n = self.motion.num_frames
        secs = getattr(self, "finished_at", time.perf_counter()) - self.started
        text = f"Retargeted {n} frames of {self.source.name} onto {self.obj.name} ({len(self.keyed)} bones) in {secs:.1f} s"
        if self.plant_feet:
            text += "; feet held through the take's contacts"
        if self.model.partial:
            text += f"; parents that follow part way (keys may be off): {', '.join(self.model.partial)}"
        return text


def finish(job: RetargetJob) -> None:
    if job in _JOBS:
        _JOBS.remove(job)


class KinestRetargetProgress(bpy.types.PropertyGroup):
    """The running retarget as the panel shows it (window-manager data: never saved)."""

    running: BoolProperty(default=False)
    fraction: FloatProperty(default=0.0)
    frames: IntProperty(default=0)
    message: StringProperty(default="")


class KINEST_OT_retarget(bpy.types.Operator):
    """Play the KineST take on your own character's armature (one new action; its mesh, constraints and other actions stay)"""

    bl_idname = "kinest.retarget"
    bl_label = "Retarget"
    bl_options = {"REGISTER", "UNDO"}

    target: StringProperty(name="Target", default="", description="The character's armature (empty: the panel's)")
    source: StringProperty(name="Source", default="", description="The KineST take armature (empty: the scene's take)")
    use_ik: BoolProperty(
        name="Use IK", default=False, description="Bend arms and legs so hands and feet reach the scaled tracked ones"
    )
    root_motion: EnumProperty(name="Root Motion", items=ROOT_MOTION_ITEMS, default="hips")
    plant_feet: BoolProperty(
        name="Plant Feet", default=True, description="Hold each foot still where the take's contact keys say it stands"
    )

    _job: RetargetJob | None = None
    _timer: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and active_job() is None

    def _start(self, context: bpy.types.Context) -> RetargetJob | None:
        try:
            job = RetargetJob(
                context, self.target, self.source, self.use_ik, self.root_motion, plant_feet=self.plant_feet
            )
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return None
        except ImportError as exc:
            self.report({"ERROR"}, f"KineST's core is not installed ({exc}): reinstall the extension")
            return None
        prog = context.window_manager.kinest_retarget_progress
        prog.running, prog.fraction, prog.frames = True, 0.0, job.motion.num_frames
        prog.message = f"Retargeting onto {job.obj.name}"
        return job

    def _end(self, context: bpy.types.Context, job: RetargetJob) -> set[str]:
        self._job = None
        finish(job)
        prog = context.window_manager.kinest_retarget_progress
        prog.running = False
        if job.state == FINISHED:
            prog.message = job.summary()
            self.report({"WARNING"} if job.model.partial else {"INFO"}, prog.message)
            return {"FINISHED"}
        if job.state == CANCELLED:
            prog.message = f"Retarget cancelled; {job.obj.name} is unchanged"
            self.report({"WARNING"}, prog.message)
        else:
            prog.message = job.error
            self.report({"ERROR"}, job.error)
        return {"CANCELLED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Runs to the end before returning (scripts, background mode, redo)."""
        job = self._start(context)
        if job is None:
            return {"CANCELLED"}
        job.step(context, None)
        return self._end(context, job)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        self._job = self._start(context)
        if self._job is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.05, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        job = self._job
        if job is None:
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
        if event.type not in {"TIMER", "ESC"}:
            return {"PASS_THROUGH"}
        state = job.step(context)
        wm = context.window_manager
        if state == RUNNING:
            wm.kinest_retarget_progress.fraction = job.fraction()
            wm.progress_update(int(1000 * job.fraction()))
            for area in getattr(context.screen, "areas", ()):
                if area.type == "VIEW_3D":
                    area.tag_redraw()
            return {"PASS_THROUGH"}
        self._cleanup(context)
        return self._end(context, job)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (window closed, file loaded): drop the unfinished action."""
        if self._job is not None:
            self._job.cancel()
            finish(self._job)
            self._job = None
        self._cleanup(context)

    def _cleanup(self, context: bpy.types.Context) -> None:
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        context.window_manager.progress_end()


class KINEST_OT_retarget_cancel(bpy.types.Operator):
    """Stop the running retarget; the character stays as it was"""

    bl_idname = "kinest.retarget_cancel"
    bl_label = "Cancel Retarget"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active_job() is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        job = active_job()
        if job is not None:
            job.cancel()
        return {"FINISHED"}


classes = (KinestRetargetProgress, KINEST_OT_retarget, KINEST_OT_retarget_cancel)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.WindowManager.kinest_retarget_progress = bpy.props.PointerProperty(type=KinestRetargetProgress)


def unregister() -> None:
    for job in list(_JOBS):
        job.cancel()
    _JOBS.clear()
    del bpy.types.WindowManager.kinest_retarget_progress
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
