# SPDX-License-Identifier: GPL-3.0-or-later
"""The Retarget section of the KineST panel: the target, its bone mapping (editable, presets), Retarget.

The mapping is a list of (SMPL joint, bone) rows kept on the scene for one target: "Auto Map"
fills it from the core's mapper, each row's bone can be changed by hand (searching the
target's bones), and it can be saved and loaded as a JSON preset (``{"joint": "bone"}``, the
same form as the ``kinest retarget --map`` file and the ``kinest_retarget_map`` property). The
``kinest.retarget`` operator uses this list when it was made for the target it keys.
"""

from __future__ import annotations

import json
import os

import bpy
from bpy.props import BoolProperty, CollectionProperty, EnumProperty, IntProperty, PointerProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import retarget_bake, retarget_op, takes

#: A preset larger than this is not a mapping.
MAX_PRESET_BYTES = 1_000_000


def _is_target(self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    scene = self.id_data
    return obj.type == "ARMATURE" and not takes.is_take_armature(obj) and obj.name in scene.objects


class KinestRetargetBone(bpy.types.PropertyGroup):
    """One row of the mapping: the SMPL joint and the target bone that plays it (empty: none)."""

    joint: StringProperty(name="Joint")
    bone: StringProperty(name="Bone", description="The character's bone that plays this joint (empty: none)")


class KinestRetargetSettings(bpy.types.PropertyGroup):
    """Per-scene retarget settings: the character, its mapping and the options."""

    target: PointerProperty(
        name="Character", type=bpy.types.Object, poll=_is_target, description="Your character's armature"
    )
    mapping: CollectionProperty(type=KinestRetargetBone)
    mapping_index: IntProperty(default=0)
    mapping_target: StringProperty(default="", description="The armature the mapping was made for")
    use_ik: BoolProperty(
        name="Use IK", default=False, description="Bend arms and legs so hands and feet reach the scaled tracked ones"
    )
    root_motion: EnumProperty(name="Root Motion", items=retarget_op.ROOT_MOTION_ITEMS, default="hips")
    plant_feet: BoolProperty(
        name="Plant Feet", default=True, description="Hold each foot still where the take's contact keys say it stands"
    )


def fill_mapping(settings: KinestRetargetSettings, target: bpy.types.Object, mapping: dict[str, str]) -> None:
    """Rows for all 22 SMPL joints (in skeleton order), bones from ``mapping``."""
    from kinest_core.skeleton import JOINT_NAMES

    settings.mapping.clear()
    for joint in JOINT_NAMES:
        item = settings.mapping.add()
        item.joint = joint
        item.bone = mapping.get(joint, "")
    settings.mapping_target = target.name
    settings.mapping_index = 0


def read_preset(path: str) -> dict[str, str]:
    """A mapping preset: a JSON object of SMPL joint -> bone name; a clear error for anything else."""
    from kinest_core.skeleton import JOINT_NAMES

    try:
        if os.path.getsize(path) > MAX_PRESET_BYTES:
            raise ValueError(f"{path} is larger than a mapping preset can be: pick a saved mapping (.json)")
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} line {exc.lineno}: not JSON ({exc.msg}); pick a mapping saved by KineST") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} cannot be read: {exc}") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{path}: a mapping is a JSON object of joint name -> bone name")
    unknown = [k for k in data if k not in JOINT_NAMES]
    if unknown:
        raise ValueError(f"{path}: unknown joints {', '.join(unknown)}; use the names {', '.join(JOINT_NAMES[:3])}...")
    return data


def write_preset(path: str, mapping: dict[str, str]) -> None:
    """The mapping as JSON, written beside the file and renamed into place (no half-written preset)."""
    from kinest_core.outputs import staged_outputs  # the core's one atomic writer; imported when used

    with staged_outputs(path) as (tmp,):
        tmp.write_text(json.dumps(mapping, indent=1), encoding="utf-8")


def _settings_target(context: bpy.types.Context) -> tuple[KinestRetargetSettings, bpy.types.Object | None]:
    settings = context.scene.kinest_retarget
    return settings, settings.target


class KINEST_OT_retarget_auto_map(bpy.types.Operator):
    """Map the character's bones to the 22 SMPL joints automatically (names, then structure and geometry)"""

    bl_idname = "kinest.retarget_auto_map"
    bl_label = "Auto Map"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        from kinest_core.postprocess.bone_map import map_skeleton

        settings, target = _settings_target(context)
        if target is None:
            self.report({"ERROR"}, "Pick your character's armature first")
            return {"CANCELLED"}
        try:
            bm = map_skeleton(retarget_bake.target_skeleton(target))
        except ValueError as exc:
            self.report({"ERROR"}, f"{target.name}: {exc}")
            return {"CANCELLED"}
        fill_mapping(settings, target, bm.joints)
        missing = [j for j in bm.missing if j not in bm.joints]
        text = f"Mapped {len(bm.joints)} of 22 joints"
        if missing:
            text += f"; none for {', '.join(missing)}"
        self.report({"INFO"}, "; ".join([text, *bm.notes]))
        return {"FINISHED"}


class KINEST_OT_retarget_save_map(bpy.types.Operator, ExportHelper):
    """Save the mapping as a JSON preset"""

    bl_idname = "kinest.retarget_save_map"
    bl_label = "Save Mapping"

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings, _target = _settings_target(context)
        mapping = {item.joint: item.bone for item in settings.mapping if item.bone}
        if not mapping:
            self.report({"ERROR"}, "No mapping to save: press Auto Map or load a preset first")
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath)
        try:
            write_preset(path, mapping)
        except (OSError, ValueError) as exc:  # an OutputFileError names the path and the fix
            self.report({"ERROR"}, f"Cannot write {path}: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Saved {len(mapping)} joints to {path}")
        return {"FINISHED"}


class KINEST_OT_retarget_load_map(bpy.types.Operator, ImportHelper):
    """Load a JSON mapping preset for the picked character"""

    bl_idname = "kinest.retarget_load_map"
    bl_label = "Load Mapping"
    bl_options = {"REGISTER", "UNDO"}

    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings, target = _settings_target(context)
        if target is None:
            self.report({"ERROR"}, "Pick your character's armature first")
            return {"CANCELLED"}
        try:
            mapping = read_preset(bpy.path.abspath(self.filepath))
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        absent = sorted(b for b in mapping.values() if b and b not in target.data.bones)
        fill_mapping(settings, target, {j: b for j, b in mapping.items() if b in target.data.bones})
        if absent:
            self.report({"WARNING"}, f"{target.name} has no bones {', '.join(absent)}: those joints are left empty")
        else:
            self.report({"INFO"}, f"Loaded {len(mapping)} joints")
        return {"FINISHED"}


class KINEST_UL_retarget_map(bpy.types.UIList):
    """SMPL joint | the character's bone (searchable)."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):  # noqa: ANN001, PLR0913
        target = data.target
        row = layout.row(align=True)
        split = row.split(factor=0.4)
        split.label(text=item.joint)
        if target is not None and target.type == "ARMATURE":
            split.prop_search(item, "bone", target.data, "bones", text="")
        else:
            split.prop(item, "bone", text="")


class KINEST_PT_retarget(bpy.types.Panel):
    """Play the take on your own character"""

    bl_label = "Retarget"
    bl_idname = "KINEST_PT_retarget"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "KineST"
    bl_parent_id = "KINEST_PT_main"

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        settings = context.scene.kinest_retarget
        progress = context.window_manager.kinest_retarget_progress
        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "target")
        target = settings.target
        row = layout.row(align=True)
        row.operator("kinest.retarget_auto_map", icon="BONE_DATA")
        row.operator("kinest.retarget_load_map", text="", icon="FILEBROWSER")
        row.operator("kinest.retarget_save_map", text="", icon="FILE_TICK")
        if target is not None and settings.mapping_target == target.name and len(settings.mapping):
            layout.template_list("KINEST_UL_retarget_map", "", settings, "mapping", settings, "mapping_index", rows=6)
        elif target is not None:
            layout.label(text="Automatic mapping (press Auto Map to see and edit it)", icon="INFO")
        col = layout.column()
        col.use_property_split = True
        col.prop(settings, "use_ik")
        col.prop(settings, "root_motion")
        col.prop(settings, "plant_feet")
        if progress.running and retarget_op.active_job() is not None:
            layout.progress(factor=progress.fraction, type="BAR", text=f"Retargeting {progress.frames} frames")
            layout.operator("kinest.retarget_cancel", icon="CANCEL")
        else:
            op = layout.operator("kinest.retarget", icon="ARMATURE_DATA")
            op.target = target.name if target is not None else ""
            op.use_ik = settings.use_ik
            op.root_motion = settings.root_motion
            op.plant_feet = settings.plant_feet
        if progress.message:
            layout.label(text=progress.message)
        if target is not None and retarget_bake.MAP_PROP in target:
            layout.label(text=f"{target.name} keeps the mapping it was retargeted with", icon="CHECKMARK")


classes = (
    KinestRetargetBone,
    KinestRetargetSettings,
    KINEST_OT_retarget_auto_map,
    KINEST_OT_retarget_save_map,
    KINEST_OT_retarget_load_map,
    KINEST_UL_retarget_map,
    KINEST_PT_retarget,
)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.kinest_retarget = PointerProperty(type=KinestRetargetSettings)


def unregister() -> None:
    del bpy.types.Scene.kinest_retarget
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
