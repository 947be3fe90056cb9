# SPDX-License-Identifier: GPL-3.0-or-later
"""Feet on a baked take: Mark Contact / Clear Contact edit the contact keys, Plant Feet re-solves the legs.

Plant Feet reads the take as its action holds it now (hand edits included) and its contact keys
(:mod:`.contacts`), runs ``kinest_core.postprocess.foot_planting.plant_feet`` on a worker thread
(no ``bpy`` there) and re-bakes the take a few F-curves per step (``bake.BakeJob``), with
progress; Esc cancels at any point and leaves the scene as it was; the finished bake is one
undo step. The legs are re-solved from what the take holds: a foot planted before stays where it
was planted when its span is cleared (it is not unlocked back to the network's raw legs).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.props import EnumProperty

from . import contacts, import_op, keys, takes
from .armature import motion_from_armature
from .bake import BakeJob, BakePlan, plan_bake

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from kinest_core.types import Motion

FEET = (
    ("SELECTED", "Selected Feet", "Feet with a selected leg bone (both when none is selected)"),
    ("LEFT", "Left", "The left foot"),
    ("RIGHT", "Right", "The right foot"),
    ("BOTH", "Both", "Both feet"),
)
#: Bones of each leg (SMPL joints: hip, knee, ankle, foot) whose selection picks that foot.
LEG_JOINTS = ((1, 4, 7, 10), (2, 5, 8, 11))
BAKE_STEP_S = 0.1


def chosen_feet(obj: bpy.types.Object, foot: str) -> list[int]:
    """Foot indices (0 left, 1 right) an operator's ``foot`` option means for this armature."""
    if foot == "LEFT":
        return [0]
    if foot == "RIGHT":
        return [1]
    if foot == "SELECTED":
        names = keys.bone_names(str(obj.get(takes.BONE_NAMES_PROP, "SMPL")))
        picked = [
            side
            for side, joints in enumerate(LEG_JOINTS)
            if any(obj.data.bones[names[j]].select for j in joints if names[j] in obj.data.bones)
        ]
        if picked:
            return picked
    return [0, 1]


def chosen_frames(context: bpy.types.Context, obj: bpy.types.Object, feet: list[int]) -> NDArray[np.int64]:
    """Take frames (0-based) an edit applies to: the selected keys of the feet's contact curves, else
    the preview range when it is on, else the current frame."""
    start, n = int(obj.get(takes.FRAME_START_PROP, 1)), int(obj.get(takes.FRAMES_PROP, 0))
    names = keys.bone_names(str(obj.get(takes.BONE_NAMES_PROP, "SMPL")))
    cb = takes.object_channelbag(obj)
    picked: set[int] = set()
    if cb is not None:
        for side in feet:
            path, index, _ = contacts.contact_curves(names)[side]
            fc = cb.fcurves.find(path, index=index)
            if fc is None:
                continue
            sel = np.zeros(len(fc.keyframe_points), dtype=bool)
            fc.keyframe_points.foreach_get("select_control_point", sel)
            if sel.any():
                co = np.empty(2 * len(fc.keyframe_points), dtype=np.float32)
                fc.keyframe_points.foreach_get("co", co)
                picked.update(int(round(f)) for f in co[0::2][sel])
    scene = context.scene
    if picked:
        frames = np.array(sorted(picked), dtype=np.int64)
    elif scene.use_preview_range:
        frames = np.arange(scene.frame_preview_start, scene.frame_preview_end + 1, dtype=np.int64)
    else:
        frames = np.array([scene.frame_current], dtype=np.int64)
    frames = frames - start
    return frames[(frames >= 0) & (frames < n)]


def set_contacts(context: bpy.types.Context, obj: bpy.types.Object, foot: str, value: bool) -> int:
    """Set the chosen feet's contact on the chosen frames; returns the number of foot-frames changed."""
    n = int(obj.get(takes.FRAMES_PROP, 0))
    current = contacts.read_contacts(obj)
    c = np.zeros((n, 2), dtype=bool) if current is None else current.copy()
    feet = chosen_feet(obj, foot)
    frames = chosen_frames(context, obj, feet)
    before = c.copy()
    for side in feet:
        c[frames, side] = value
    contacts.write_contacts(obj, c, context.scene)
    return int((c != before).sum())


class _ContactEdit:
    foot: EnumProperty(name="Foot", items=FEET, default="SELECTED")  # type: ignore[valid-type]
    value = True

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and takes.current_armature(context) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = takes.current_armature(context)
        if obj is None or takes.FRAMES_PROP not in obj:
            self.report({"ERROR"}, "No KineST take: reconstruct one first")  # type: ignore[attr-defined]
            return {"CANCELLED"}
        try:
            changed = set_contacts(context, obj, self.foot, self.value)
        except ImportError as exc:
            self.report({"ERROR"}, import_op.core_import_hint(exc))  # type: ignore[attr-defined]
            return {"CANCELLED"}
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))  # type: ignore[attr-defined]
            return {"CANCELLED"}
        word = "marked" if self.value else "cleared"
        self.report({"INFO"}, f"Contact {word} on {changed} foot-frame(s); press Plant Feet to re-solve the legs")  # type: ignore[attr-defined]
        return {"FINISHED"}


class KINEST_OT_mark_contact(_ContactEdit, bpy.types.Operator):
    """Mark the chosen feet as planted on the selected contact keys (or the preview range, or the current frame)"""

    bl_idname = "kinest.mark_contact"
    bl_label = "Mark Contact"
    bl_options = {"REGISTER", "UNDO"}
    value = True


class KINEST_OT_clear_contact(_ContactEdit, bpy.types.Operator):
    """Clear the chosen feet's contact on the selected contact keys (or the preview range, or the current frame)"""

    bl_idname = "kinest.clear_contact"
    bl_label = "Clear Contact"
    bl_options = {"REGISTER", "UNDO"}
    value = False


def _bake_settings(obj: bpy.types.Object) -> dict[str, Any]:
    body_obj = next((o for o in bpy.data.objects if o.get(takes.ROLE_PROP) == "body" and o.parent == obj), None)
    source = str(body_obj.get("kinest_body_source", "procedural")) if body_obj is not None else "procedural"
    return {"body": body_obj is not None, "smpl_model": "" if source == "procedural" else source}


def read_take(obj: bpy.types.Object) -> tuple[Motion, NDArray[np.bool_]]:
    """The take's motion and its contacts (main thread); a user-facing ValueError without contacts."""
    motion = motion_from_armature(obj)
    c = contacts.read_contacts(obj)
    if c is None:
        raise ValueError(f"{obj.name} has no foot contacts: reconstruct it again, or Mark Contact first")
    return motion, c


def planted_plan(obj_info: dict[str, Any], motion: Motion, c: NDArray, cancel: Any = None) -> BakePlan:
    """Plant the feet and plan the re-bake (thread-safe: no ``bpy``)."""
    from kinest_core.postprocess.foot_planting import plant_feet

    planted = plant_feet(motion, c, cancel=cancel)
    return plan_bake(planted, obj_info["take"], obj_info["bone_names"], obj_info["frame_start"])


def _take_info(obj: bpy.types.Object) -> dict[str, Any]:
    return {
        "take": str(obj.get(takes.TAKE_PROP)),
        "bone_names": str(obj.get(takes.BONE_NAMES_PROP, "SMPL")),
        "frame_start": int(obj.get(takes.FRAME_START_PROP, 1)),
    }


def plant_take(context: bpy.types.Context, obj: bpy.types.Object) -> str:
    """Plant Feet in one call (scripts, headless); returns the report."""
    motion, c = read_take(obj)
    plan = planted_plan(_take_info(obj), motion, c)
    BakeJob(plan, **_bake_settings(obj)).run(context)
    return _report(c)


def _report(c: NDArray) -> str:
    from kinest_core.postprocess.contacts import contact_spans

    spans = contact_spans(c)
    return f"Feet planted: {len(spans[0])} left and {len(spans[1])} right contact span(s)"


class KINEST_OT_plant_feet(bpy.types.Operator):
    """Re-solve the legs so each foot stays put where its contact keys say (and above the floor); Esc cancels"""

    bl_idname = "kinest.plant_feet"
    bl_label = "Plant Feet"
    # UNDO: the finished bake is one undo step; the work runs in steps, so no REGISTER (redo).
    bl_options = {"UNDO"}

    _thread: threading.Thread | None = None
    _result: dict[str, Any] | None = None
    _job: BakeJob | None = None
    _timer: Any = None
    _cancel: Any = None
    _contacts: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and takes.current_armature(context) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = takes.current_armature(context)
        if obj is None:
            self.report({"ERROR"}, "No KineST armature: reconstruct a take first")
            return {"CANCELLED"}
        try:
            text = plant_take(context, obj)
        except ImportError as exc:
            self.report({"ERROR"}, import_op.core_import_hint(exc))
            return {"CANCELLED"}
        except (ValueError, KeyError, RuntimeError) as exc:
            self.report({"ERROR"}, f"Plant Feet failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, text)
        return {"FINISHED"}

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        obj = takes.current_armature(context)
        if obj is None:
            self.report({"ERROR"}, "No KineST armature: reconstruct a take first")
            return {"CANCELLED"}
        try:
            from kinest_core.cancel import CancelToken

            motion, c = read_take(obj)
        except ImportError as exc:
            self.report({"ERROR"}, import_op.core_import_hint(exc))
            return {"CANCELLED"}
        except (ValueError, KeyError) as exc:
            self.report({"ERROR"}, f"Plant Feet failed: {exc}")
            return {"CANCELLED"}
        self._cancel, self._contacts, self._result = CancelToken(), c, {}
        info, result, token = _take_info(obj), self._result, self._cancel

        def work() -> None:  # worker thread: NumPy only, no bpy
            try:
                result["plan"] = planted_plan(info, motion, c, token)
            except Exception as exc:  # reported on the main thread
                result["error"] = exc

        self._bake_settings = _bake_settings(obj)
        self._thread = threading.Thread(target=work, name="kinest-plant-feet", daemon=True)
        self._thread.start()
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        context.workspace.status_text_set("Plant Feet: solving the legs (Esc cancels)")
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if event.type == "ESC" and event.value == "PRESS":
            self._stop()
            self._cleanup(context)
            self.report({"WARNING"}, "Plant Feet cancelled; the take is unchanged")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        if self._job is None:
            if self._thread is not None and self._thread.is_alive():
                return {"PASS_THROUGH"}
            result = self._result or {}
            if "error" in result or "plan" not in result:
                self._cleanup(context)
                exc = result.get("error")
                self.report({"ERROR"}, f"Plant Feet failed: {exc}" if exc else "Plant Feet failed")
                return {"CANCELLED"}
            self._job = BakeJob(result["plan"], **self._bake_settings)
        try:
            done = self._job.step(context, BAKE_STEP_S)
        except (RuntimeError, ValueError, KeyError) as exc:
            self._stop()
            self._cleanup(context)
            self.report({"ERROR"}, f"Plant Feet failed: {exc}")
            return {"CANCELLED"}
        if not done:
            context.window_manager.progress_update(int(1000 * self._job.done / max(1, self._job.total)))
            context.workspace.status_text_set(f"Plant Feet: baking {self._job.done} / {self._job.total} curves")
            return {"PASS_THROUGH"}
        self._cleanup(context)
        self.report({"INFO"}, _report(self._contacts))
        return {"FINISHED"}

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (window closed, file loaded): drop the work."""
        self._stop()
        try:
            self._cleanup(context)
        except (AttributeError, RuntimeError):  # the context may be half torn down
            pass

    def _stop(self) -> None:
        if self._cancel is not None:
            self._cancel.cancel()
        if self._job is not None:
            self._job.cancel()
        self._job = None
        self._result = None

    def _cleanup(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()
        if context.workspace is not None:
            context.workspace.status_text_set(None)


class KINEST_PT_feet(bpy.types.Panel):
    """Foot contacts of the take, and the legs re-solved from them"""

    bl_label = "Feet"
    bl_idname = "KINEST_PT_feet"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "KineST"
    bl_parent_id = "KINEST_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        obj = takes.current_armature(context)
        if obj is None:
            layout.label(text="Reconstruct a take to edit its foot contacts", icon="INFO")
            return
        planted = contacts.PLANTED_PROP in obj
        layout.label(text="Feet planted" if planted else "Feet as predicted", icon="PINNED" if planted else "UNPINNED")
        row = layout.row(align=True)
        row.operator("kinest.mark_contact", icon="KEYFRAME_HLT")
        row.operator("kinest.clear_contact", icon="KEYFRAME")
        layout.operator("kinest.plant_feet", icon="PINNED")
        layout.label(text="Keys: kinest_contact on each foot bone; markers: KineST L / R")


classes = (KINEST_OT_mark_contact, KINEST_OT_clear_contact, KINEST_OT_plant_feet, KINEST_PT_feet)

register, unregister = bpy.utils.register_classes_factory(classes)
