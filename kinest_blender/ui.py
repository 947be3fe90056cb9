# SPDX-License-Identifier: GPL-3.0-or-later
"""The "KineST" sidebar panel (View3D > Sidebar): take, model, body, mode, progress, export."""

from __future__ import annotations

import os

import bpy

from . import keys, prefs, reconstruct_op, takes


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
        col.prop(settings, "pin_hands")
        col.prop(settings, "plant_feet")
        col.prop(settings, "float32")
        col.prop(settings, "bone_names")
        sub = layout.column(heading="Calibration")
        sub.use_property_split = True
        sub.prop(settings, "head_offset")
        sub.prop(settings, "hand_offset")

        if progress.running and reconstruct_op.active_jobs():
            frac = progress.done / progress.total if progress.total else 0.0
            if progress.stage == "bake":
                text = f"Baking: {progress.done} / {progress.total} curves, {_time_text(progress.seconds_left)}"
            else:
                text = f"{progress.done} / {progress.total} frames, {_time_text(progress.seconds_left)}"
            layout.progress(factor=frac, type="BAR", text=text)
            layout.operator("kinest.cancel", icon="CANCEL")
        else:
            layout.operator("kinest.reconstruct", icon="ARMATURE_DATA")
        if progress.message:
            layout.label(text=progress.message)
        if progress.last_result:
            layout.label(text=progress.last_result, icon="TIME")

        worker, _timeout = prefs.worker_settings(context)
        layout.label(
            text=f"Runs in worker: {os.path.basename(worker) or worker}" if worker else "Runs in Blender (bundled CPU)",
            icon="SYSTEM" if worker else "BLENDER",
        )

        box = layout.box()
        box.label(text="Export", icon="EXPORT")
        row = box.row(align=True)
        for preset, label in (("UNITY", "Unity"), ("UNREAL", "Unreal"), ("BLENDER", "Blender")):
            row.operator("kinest.export_fbx", text=f"FBX {label}").preset = preset
        box.operator("kinest.export_bvh", text="BVH")


class KINEST_PT_jitter(bpy.types.Panel):
    """Where the take shakes, and a smoothing pass with numbers"""

    bl_label = "Jitter"
    bl_idname = "KINEST_PT_jitter"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "KineST"
    bl_parent_id = "KINEST_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.kinest
        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "body_mesh")
        if settings.body_mesh:
            col.prop(settings, "smpl_model")
        row = layout.row(align=True)
        row.prop(settings, "show_jitter_colors", toggle=True)
        row.prop(settings, "show_trails", toggle=True)
        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "trail_frames")
        col.prop(settings, "jitter_shaky")
        obj = takes.current_armature(context)
        if obj is None or "kinest_jitter_mean" not in obj:
            layout.label(text="Reconstruct a take to see its jitter", icon="INFO")
            return
        box = layout.box()
        box.label(text=f"{obj.name}: mean {float(obj['kinest_jitter_mean']):.2f} x100 m/s^3", icon="GRAPH")
        per_joint = list(obj.get("kinest_jitter_per_joint", []))
        names = keys.BONE_NAME_PRESETS.get(str(obj.get(takes.BONE_NAMES_PROP, "SMPL")), ())
        worst = [int(j) for j in obj.get("kinest_jitter_worst_joints", [])]
        if worst and per_joint and names:
            box.label(
                text="Worst joints: " + ", ".join(f"{names[j]} {per_joint[j]:.1f}" for j in worst if j < len(names))
            )
        frames = list(obj.get("kinest_jitter_worst_frames", []))
        values = list(obj.get("kinest_jitter_worst_values", []))
        if frames:
            box.label(text="Worst frames:")
            flow = box.grid_flow(columns=3, align=True)
            for f, v in zip(frames, values, strict=False):
                flow.operator("kinest.jump_to_frame", text=f"{int(f)} ({v:.0f})").frame = int(f)

        box = layout.box()
        box.label(text="Smoothing", icon="MOD_SMOOTH")
        col = box.column()
        col.use_property_split = True
        col.prop(settings, "smooth_method")
        for part in ("legs", "spine", "arms", "head"):
            col.prop(settings, f"smooth_{part}", slider=True)
        box.operator("kinest.smooth", icon="MOD_SMOOTH")
        if obj.get("kinest_smoothing"):
            for part in str(obj["kinest_smoothing"]).split("; "):
                box.label(text=part)


classes = (KINEST_PT_main, KINEST_PT_jitter)

register, unregister = bpy.utils.register_classes_factory(classes)
