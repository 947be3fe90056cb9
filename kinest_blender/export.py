# SPDX-License-Identifier: GPL-3.0-or-later
"""FBX presets per engine and plain BVH for the take's armature.

Engines read an FBX's own axis and unit settings; the presets pick them so a character comes
in upright, facing the engine's forward and at its real size, with only this take's action,
no leaf bones and every key kept (no simplification).
"""

from __future__ import annotations

import os
from typing import Any

import bpy
from bpy.props import EnumProperty, StringProperty
from bpy_extras.io_utils import ExportHelper

from . import takes
from .armature import motion_from_armature

#: Blender FBX exporter options per preset. The figure faces Blender's -Y.
#: UNITY: FBX Y up, figure facing +Z, file in metres (Unity's "Convert Units" gives scale 1).
#: UNREAL: FBX Z up (Unreal's own up), figure facing -Y (+Y once Unreal flips Y, like the UE
#:   mannequin), file unit centimetres (Unreal's unit; the armature node carries the x100).
#: BLENDER: Blender's own FBX defaults for a round trip (Y up, -Z forward, centimetres).
FBX_PRESETS: dict[str, dict[str, Any]] = {
    "UNITY": {
        "axis_forward": "-Z",
        "axis_up": "Y",
        "apply_unit_scale": True,
        "apply_scale_options": "FBX_SCALE_UNITS",
        "primary_bone_axis": "Y",
        "secondary_bone_axis": "X",
    },
    "UNREAL": {
        "axis_forward": "Y",
        "axis_up": "Z",
        "apply_unit_scale": True,
        "apply_scale_options": "FBX_SCALE_NONE",
        "primary_bone_axis": "Y",
        "secondary_bone_axis": "X",
    },
    "BLENDER": {
        "axis_forward": "-Z",
        "axis_up": "Y",
        "apply_unit_scale": True,
        "apply_scale_options": "FBX_SCALE_NONE",
        "primary_bone_axis": "Y",
        "secondary_bone_axis": "X",
    },
}
FBX_PRESET_ITEMS = [
    ("UNITY", "Unity", "Y up, facing +Z, metres: upright at real size with scale 1 in Unity"),
    ("UNREAL", "Unreal", "Z up, centimetres: upright at real size in Unreal Engine"),
    ("BLENDER", "Blender", "Blender's FBX defaults, for a round trip into Blender or other DCCs"),
]
#: Options every preset shares: mocap wants exact keys, no extra bones, only this take.
FBX_COMMON: dict[str, Any] = {
    "use_selection": True,
    "object_types": {"ARMATURE"},
    "add_leaf_bones": False,
    "bake_anim": True,
    "bake_anim_use_all_bones": True,
    "bake_anim_use_nla_strips": False,
    "bake_anim_use_all_actions": False,
    "bake_anim_force_startend_keying": True,
    "bake_anim_step": 1.0,
    "bake_anim_simplify_factor": 0.0,
    "bake_space_transform": False,
    "use_armature_deform_only": False,
    "armature_nodetype": "NULL",
    "path_mode": "AUTO",
}


def skinned_meshes(obj: bpy.types.Object) -> list[bpy.types.Object]:
    """The meshes an armature deforms: its mesh children and meshes with an Armature modifier on it."""
    out = [c for c in obj.children_recursive if c.type == "MESH"]
    for o in bpy.data.objects:
        if o.type == "MESH" and o not in out and any(m.type == "ARMATURE" and m.object == obj for m in o.modifiers):
            out.append(o)
    return out


def export_fbx(
    context: bpy.types.Context, obj: bpy.types.Object, filepath: str, preset: str, meshes: bool = False
) -> None:
    """Write the armature (with ``meshes``, also the meshes it deforms) and only its action as FBX
    with an engine preset (main thread)."""
    opts = {**FBX_COMMON, **FBX_PRESETS[preset]}
    extra = [m for m in skinned_meshes(obj) if m.name in context.view_layer.objects] if meshes else []
    if extra:
        opts["object_types"] = {"ARMATURE", "MESH"}
    action = obj.animation_data.action if obj.animation_data else None
    if action is not None:
        # The exporter bakes the scene range: match it to this take's keys.
        start, end = (int(round(f)) for f in action.frame_range)
        keep_range = context.scene.frame_start, context.scene.frame_end
        context.scene.frame_start, context.scene.frame_end = start, end
    keep_sel = [o for o in context.view_layer.objects if o.select_get()]
    keep_active = context.view_layer.objects.active
    scene = context.scene
    keep_scene_name = scene.name
    try:
        if action is not None and action.name not in bpy.data.scenes:
            # The exporter names the single take after the scene: engines then list the clip as
            # "Scene". Lend the scene the action's name for the export.
            scene.name = action.name
        for o in keep_sel:
            o.select_set(False)
        obj.select_set(True)
        for m in extra:
            m.select_set(True)
        context.view_layer.objects.active = obj
        with context.temp_override(active_object=obj, selected_objects=[obj, *extra]):
            result = bpy.ops.export_scene.fbx(filepath=filepath, **opts)
        if "FINISHED" not in result:
            raise RuntimeError(f"Blender's FBX exporter did not write {filepath}")
    finally:
        scene.name = keep_scene_name
        for o in (obj, *extra):
            o.select_set(False)
        for o in keep_sel:
            o.select_set(True)
        context.view_layer.objects.active = keep_active
        if action is not None:
            scene.frame_start, scene.frame_end = keep_range


def export_bvh(context: bpy.types.Context, obj: bpy.types.Object, filepath: str) -> None:
    """Plain SMPL-22 BVH (Y up, centimetres) through the core's writer."""
    from kinest_core.io.bvh import write_motion_bvh

    motion = motion_from_armature(obj)
    write_motion_bvh(filepath, motion.local_rotations, motion.root_translation, motion.rest_offsets, motion.fps)


class KINEST_OT_export_fbx(bpy.types.Operator, ExportHelper):
    """Export the take's armature and its action as FBX for a game engine"""

    bl_idname = "kinest.export_fbx"
    bl_label = "Export FBX"
    bl_options = {"REGISTER"}

    filename_ext = ".fbx"
    filter_glob: StringProperty(default="*.fbx", options={"HIDDEN"})
    preset: EnumProperty(name="Preset", items=FBX_PRESET_ITEMS, default="UNITY")
    target: StringProperty(
        name="Armature",
        default="",
        description="A character's armature to export with the meshes it deforms (empty: the KineST take)",
    )

    def _armature(self, context: bpy.types.Context) -> bpy.types.Object | None:
        if self.target:
            obj = bpy.data.objects.get(self.target)
            return obj if obj is not None and obj.type == "ARMATURE" else None
        return takes.current_armature(context)

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        obj = self._armature(context)
        if obj is not None and not self.filepath:
            self.filepath = f"{obj.name}_{self.preset.lower()}.fbx"
        return super().invoke(context, event)

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = self._armature(context)
        if obj is None:
            what = f"No armature {self.target!r}" if self.target else "No KineST armature"
            self.report({"ERROR"}, f"{what} to export: press Reconstruct first or pick an armature")
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath)
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            export_fbx(context, obj, path, self.preset, meshes=bool(self.target))
        except (OSError, RuntimeError) as exc:
            self.report({"ERROR"}, f"FBX export failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {path} ({self.preset.title()} preset)")
        return {"FINISHED"}


class KINEST_OT_export_bvh(bpy.types.Operator, ExportHelper):
    """Export the take's motion as a plain SMPL-22 BVH (Y up, centimetres)"""

    bl_idname = "kinest.export_bvh"
    bl_label = "Export BVH"
    bl_options = {"REGISTER"}

    filename_ext = ".bvh"
    filter_glob: StringProperty(default="*.bvh", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        obj = takes.current_armature(context)
        if obj is None:
            self.report({"ERROR"}, "No KineST armature to export: press Reconstruct first")
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath)
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            export_bvh(context, obj, path)
        except (OSError, ValueError) as exc:
            self.report({"ERROR"}, f"BVH export failed: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Wrote {path}")
        return {"FINISHED"}


classes = (KINEST_OT_export_fbx, KINEST_OT_export_bvh)

register, unregister = bpy.utils.register_classes_factory(classes)
