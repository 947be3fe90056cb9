# SPDX-License-Identifier: GPL-3.0-or-later
"""The "KineST" sidebar panel (View3D > Sidebar): take, model, body, mode, progress, export."""

from __future__ import annotations

import bpy

from . import reconstruct_op


def _time_text(seconds: float) -> str:
    if seconds < 0:
        return "estimating..."
    if seconds < 60:
        return f"{seconds:.0f} s left"
    return f"{seconds / 60:.0f} min {seconds % 60:.0f} s left"


class KINEST_PT_main(bpy.types.Panel):
    """Reconstruct full-body motion from head and hand tracking"""

    bl_label = "KineST"
    bl_idname = "KINEST_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "KineST"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.kinest
        progress = context.window_manager.kinest_progress
        layout.operator("import_scene.kinest_tracking", icon="IMPORT")
        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "tracking")
        if settings.tracking is not None and settings.tracking.get("kinest_detected"):
            box = layout.box()
            box.label(text="Detected:", icon="INFO")
            for part in str(settings.tracking["kinest_detected"]).split(", "):
                box.label(text=part)

        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "model_path")
        col.prop(settings, "device")
        col.prop(settings, "threads")
        col.prop(settings, "mode", expand=True)
        if settings.mode == "online":
            col.prop(settings, "stride")
        col.prop(settings, "body_height")
        col.prop(settings, "bone_names")
        sub = layout.column(heading="Calibration")
        sub.use_property_split = True
        sub.prop(settings, "head_offset")
        sub.prop(settings, "hand_offset")

        if progress.running and reconstruct_op.active_jobs():
            frac = progress.done / progress.total if progress.total else 0.0
            layout.progress(
                factor=frac,
                type="BAR",
                text=f"{progress.done} / {progress.total} frames, {_time_text(progress.seconds_left)}",
            )
            layout.operator("kinest.cancel", icon="CANCEL")
        else:
            layout.operator("kinest.reconstruct", icon="ARMATURE_DATA")
        if progress.message:
            layout.label(text=progress.message)
        if progress.last_result:
            layout.label(text=progress.last_result, icon="TIME")

        box = layout.box()
        box.label(text="Export", icon="EXPORT")
        row = box.row(align=True)
        for preset, label in (("UNITY", "Unity"), ("UNREAL", "Unreal"), ("BLENDER", "Blender")):
            row.operator("kinest.export_fbx", text=f"FBX {label}").preset = preset
        box.operator("kinest.export_bvh", text="BVH")


classes = (KINEST_PT_main,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)


def unregister() -> None:
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
