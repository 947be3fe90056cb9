# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest.smooth``: smooth the take's motion (``kinest_core.postprocess.smoothing``), re-bake, report jitter before/after."""

from __future__ import annotations

import json

import bpy

from . import contacts, import_op, jitter_view, takes
from .armature import motion_from_armature
from .bake import bake_motion


def smoothing_options(settings: bpy.types.PropertyGroup):  # -> kinest_core.postprocess.smoothing.SmoothingOptions
    from kinest_core.postprocess.smoothing import SmoothingOptions

    return SmoothingOptions(
        method=settings.smooth_method,
        strengths={
            "legs": settings.smooth_legs,
            "spine": settings.smooth_spine,
            "arms": settings.smooth_arms,
            "head": settings.smooth_head,
        },
    )


def smooth_take(context: bpy.types.Context, obj: bpy.types.Object) -> str:
    """Smooth what the armature's action holds now (hand edits included) and re-bake; returns the report."""
    from kinest_core.postprocess.smoothing import smooth_motion

    motion = motion_from_armature(obj)
    motion.contacts = contacts.read_contacts(obj)  # kept through the re-bake; a planted take is planted again
    planted = obj.get(contacts.PLANTED_PROP)
    if planted and motion.contacts is not None:
        motion.info["plant_feet"] = json.loads(str(planted))
    result = smooth_motion(motion, smoothing_options(context.scene.kinest))
    take = str(obj.get(takes.TAKE_PROP))
    body_obj = next((o for o in bpy.data.objects if o.get(takes.ROLE_PROP) == "body" and o.parent == obj), None)
    source = str(body_obj.get("kinest_body_source", "procedural")) if body_obj is not None else "procedural"
    bake_motion(
        context,
        result.motion,
        take,
        str(obj.get(takes.BONE_NAMES_PROP, "SMPL")),
        int(obj.get(takes.FRAME_START_PROP, 1)),
        body=body_obj is not None,
        smpl_model="" if source == "procedural" else source,
    )
    text = (
        f"Jitter {result.before.mean:.2f} -> {result.after.mean:.2f} (100 m/s^3): "
        f"{result.reduction_percent:.0f}% lower; joints moved {result.joint_shift_mean_m * 1000:.0f} mm on average, "
        f"the head at most {result.head_shift_max_m * 1000:.0f} mm"
    )
    obj["kinest_smoothing"] = text
    if context.scene.kinest.show_jitter_colors:
        jitter_view.color_bones(context.scene, obj)
    return text


class KINEST_OT_smooth(bpy.types.Operator):
    """Smooth the take's motion (strength per body part), re-bake it and report jitter before and after"""

    bl_idname = "kinest.smooth"
    bl_label = "Smooth"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and takes.current_armature(context) is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = takes.current_armature(context)
        if obj is None:
            self.report({"ERROR"}, "No KineST armature: reconstruct a take first")
            return {"CANCELLED"}
        try:
            text = smooth_take(context, obj)
        except ImportError as exc:
            self.report({"ERROR"}, import_op.core_import_hint(exc))
            return {"CANCELLED"}
        except (ValueError, KeyError, RuntimeError) as exc:
            self.report({"ERROR"}, f"Smoothing failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, text)
        return {"FINISHED"}


classes = (KINEST_OT_smooth,)

register, unregister = bpy.utils.register_classes_factory(classes)
