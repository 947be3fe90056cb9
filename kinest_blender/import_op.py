# SPDX-License-Identifier: GPL-3.0-or-later
"""File > Import > VR Tracking: read with ``kinest_core.io`` and show the raw tracks as empties.

Reading and scene building are separate steps (as in Blender's BVH importer): the core turns
the file into a ``TrackingSequence``; this module turns that into one "tracking" empty with
three animated children (head, left wrist, right wrist) sharing one slotted action. The
reconstruction reads its input back from these keys, so hand-fixing a tracking glitch works.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.props import BoolProperty, EnumProperty, FloatProperty, StringProperty
from bpy_extras.io_utils import ImportHelper

from . import takes

if TYPE_CHECKING:
    from kinest_core.fixes import Fix
    from kinest_core.types import TrackingSequence

DEVICES = ("head", "left_wrist", "right_wrist")
DEVICE_PROP = "kinest_device"

# Identifiers match kinest_core.io.reader.OPTION_CHOICES (a test checks it); they are spelled
# out here so that registering the add-on imports no torch.
FORMAT_ITEMS = [
    ("auto", "Auto", "From the file extension and its first bytes"),
    ("csv", "CSV", "Comma-separated columns (time, head and hand positions and rotations)"),
    ("bvh", "BVH", "A head + hands hierarchy, or full-body mocap"),
    ("bsor", "Beat Saber replay", "BS Open Replay (.bsor)"),
    ("npz", "NumPy tracking", "KineST tracking .npz (times, head, left_wrist, right_wrist)"),
]
TIME_UNIT_ITEMS = [
    ("auto", "Auto", "From the column name, then the sample spacing"),
    ("s", "Seconds", ""),
    ("ms", "Milliseconds", ""),
    ("us", "Microseconds", ""),
    ("ns", "Nanoseconds", ""),
]
CONVENTION_ITEMS = [
    ("auto", "Auto", "Pick the convention from the file format and its data"),
    ("openxr", "OpenXR / WebXR", "Right-handed, Y up, -Z forward, metres"),
    ("openvr", "SteamVR / OpenVR", "Right-handed, Y up, -Z forward, metres"),
    ("unity", "Unity / Beat Saber", "Left-handed, Y up, +Z forward, metres"),
    ("unreal", "Unreal", "Left-handed, Z up, +X forward, centimetres"),
    ("blender", "Blender", "Right-handed, Z up, -Y forward, metres"),
    ("bvh", "BVH", "Right-handed, Y up, rest pose facing +Z"),
]
UNIT_ITEMS = [
    ("auto", "Auto", "Guess the unit from the data (a head 1.7 units above the floor is metres)"),
    ("m", "Metres", ""),
    ("cm", "Centimetres", ""),
    ("mm", "Millimetres", ""),
]
FAMILY_ITEMS = [
    ("auto", "Auto", "From device names in the file, else generic offsets"),
    ("generic", "Generic", "Average headset and controller offsets"),
    ("quest", "Meta Quest", "Quest / Rift with Touch controllers"),
    ("vive", "HTC Vive", "Vive wand controllers"),
    ("index", "Valve Index", "Index (Knuckles) controllers"),
    ("joints", "Joints", "The file already holds head and wrist joints (full-body mocap)"),
]
QUAT_ORDER_ITEMS = [
    ("auto", "Auto", "Use the column names or the format's convention"),
    ("wxyz", "W X Y Z", "Scalar first"),
    ("xyzw", "X Y Z W", "Scalar last (Unity, OpenXR)"),
]


class CoreMissingError(RuntimeError):
    """The extension's bundled libraries are not importable (wrong platform zip, broken install)."""


def core_import_hint(exc: BaseException) -> str:
    """A message a user can act on when ``kinest_core`` or torch does not import."""
    return (
        f"KineST could not load its libraries ({exc}). Install the KineST zip built for this "
        f"platform ({platform.system()} {platform.machine()}, Python {platform.python_version()}) "
        "from Edit > Preferences > Get Extensions > Install from Disk, then restart Blender"
    )


def read_tracking_file(path: str, **options: Any) -> TrackingSequence:
    """Read any supported tracking file (.csv, .bvh, .bsor, .npz) with the core's reader.

    "auto" and empty values are not passed (the reader detects them).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file; pick a .csv, .bvh, .bsor or .npz tracking recording")
    opts = {k: v for k, v in options.items() if v not in (None, "auto", "")}
    try:
        from kinest_core.io import read_tracking
    except ImportError as exc:
        raise CoreMissingError(core_import_hint(exc)) from exc
    return read_tracking(path, **opts)


def describe_detected(info: dict[str, Any], fps: float, frames: int) -> str:
    """One line saying what the reader detected or assumed."""
    parts = []
    labels = (
        ("format", "format"),
        ("convention", "convention"),
        ("handedness", "handed"),
        ("up_axis", "up"),
        ("units", "units"),
        ("quat_order", "quaternions"),
        ("device_family", "devices"),
        ("original_rate_hz", "source Hz"),
    )
    for key, label in labels:
        value = info.get(key)
        if value not in (None, ""):
            parts.append(f"{label} {value:.4g}" if isinstance(value, float) else f"{label} {value}")
    parts.append(f"{frames} frames at {fps:g} fps")
    return ", ".join(parts)


#: Reader facts with one entry per source sample: not kept on the take (an hour of tracking
#: made a 6 MB JSON property, copied by every save and undo step; reconstruction needs none).
_PER_SAMPLE_INFO = ("original_times",)


def _jsonable(info: dict[str, Any]) -> str:
    info = {k: v for k, v in info.items() if k not in _PER_SAMPLE_INFO}

    def conv(v: Any) -> Any:
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [conv(x) for x in v]
        return v if isinstance(v, str | int | float | bool | type(None)) else str(v)

    return json.dumps(conv(info))


def build_tracking_objects(
    context: bpy.types.Context, tracking: TrackingSequence, take: str, frame_start: int = 1
) -> bpy.types.Object:
    """The take's tracking empty and its three animated device empties (rebuilt on re-import)."""
    from kinest_core import rotations as rot

    scene = context.scene
    coll = takes.take_collection(scene)
    root = takes.find_take_object(take, "tracking")
    if root is None:
        root = bpy.data.objects.new(f"KineST_{take}_tracking", None)
        root[takes.TAKE_PROP] = take
        root[takes.ROLE_PROP] = "tracking"
        root.empty_display_type = "PLAIN_AXES"
        root.empty_display_size = 0.1
        coll.objects.link(root)
    children = {c.get(DEVICE_PROP): c for c in root.children}
    n = tracking.num_frames
    frames = np.arange(frame_start, frame_start + n, dtype=np.float64)
    action_name = f"KineST_{take}_tracking"
    takes.retire_old_action(action_name, take, children.values())
    action = bpy.data.actions.new(action_name)
    action[takes.TAKE_PROP] = take
    for dev, mats in zip(DEVICES, (tracking.head, tracking.left_wrist, tracking.right_wrist), strict=True):
        obj = children.get(dev)
        if obj is None:
            obj = bpy.data.objects.new(f"KineST_{take}_{dev}", None)
            obj[DEVICE_PROP] = dev
            obj[takes.TAKE_PROP] = take
            obj[takes.ROLE_PROP] = "tracker"
            obj.empty_display_type = "CUBE" if dev == "head" else "SPHERE"
            obj.empty_display_size = 0.08 if dev == "head" else 0.04
            obj.parent = root
            coll.objects.link(obj)
        obj.rotation_mode = "QUATERNION"
        cb = takes.assign_new_slot(action, obj)
        m = np.asarray(mats, dtype=np.float64)
        quats = rot.quat_make_continuous(rot.matrix_to_quat(m[:, :3, :3]), axis=0)
        for i in range(3):
            takes.write_fcurve_keys(cb, "location", i, frames, m[:, i, 3], dev)
        for i in range(4):
            takes.write_fcurve_keys(cb, "rotation_quaternion", i, frames, quats[:, i], dev)
    root["kinest_valid"] = np.asarray(tracking.valid, dtype=np.int32).ravel().tolist()
    root["kinest_fps"] = float(tracking.fps)
    root["kinest_frame_start"] = int(frame_start)
    root["kinest_info"] = _jsonable(tracking.info)
    root["kinest_detected"] = describe_detected(tracking.info, tracking.fps, n)
    takes.set_scene_timing(scene, tracking.fps, frame_start, n)
    return root


def tracking_from_objects(root: bpy.types.Object) -> TrackingSequence:
    """Read the take's tracking back from the device empties' keys (main thread)."""
    from kinest_core import rotations as rot
    from kinest_core.types import TrackingSequence

    mats = {}
    n = None
    for child in root.children:
        dev = child.get(DEVICE_PROP)
        cb = takes.object_channelbag(child) if dev in DEVICES else None
        if cb is None:
            continue
        vals = []
        for path, count in (("location", 3), ("rotation_quaternion", 4)):
            for i in range(count):
                values = takes.fcurve_values(cb, path, i)
                if values is None:
                    raise ValueError(f"{child.name}: its {path}[{i}] keys are gone; re-import the recording")
                vals.append(values)
        lens = {len(v) for v in vals}
        if len(lens) != 1 or (n is not None and n not in lens):
            raise ValueError(f"{child.name}: its channels have different key counts; re-import the recording")
        n = lens.pop()
        m = np.tile(np.eye(4), (n, 1, 1))
        m[:, :3, 3] = np.stack(vals[:3], axis=-1)
        m[:, :3, :3] = rot.quat_to_matrix(rot.quat_normalize(np.stack(vals[3:], axis=-1)))
        mats[dev] = m
    missing = [d for d in DEVICES if d not in mats]
    if missing or n is None:
        raise ValueError(f"{root.name}: tracks for {', '.join(missing)} are missing; re-import the recording")
    fps = float(root.get("kinest_fps", 60.0))
    valid_list = root.get("kinest_valid")
    valid = np.asarray(valid_list, dtype=bool).reshape(-1, 3) if valid_list is not None else np.ones((n, 3), bool)
    if valid.shape[0] != n:
        valid = np.ones((n, 3), bool)
    info = json.loads(root.get("kinest_info", "{}"))
    return TrackingSequence(
        np.arange(n) / fps, mats["head"], mats["left_wrist"], mats["right_wrist"], valid, fps=fps, info=info
    )


def take_name(path: str) -> str:
    """A take name from the file name (Blender-safe, short)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:40] or "take"


class KINEST_OT_import_tracking(bpy.types.Operator, ImportHelper):
    """Import a VR tracking recording (head and two hands) as animated empties"""

    bl_idname = "import_scene.kinest_tracking"
    bl_label = "Import VR Tracking"
    bl_options = {"REGISTER", "UNDO", "PRESET"}

    filename_ext = ".csv"
    filter_glob: StringProperty(default="*.csv;*.bvh;*.bsor;*.npz;*.csv.gz;*.bvh.gz", options={"HIDDEN"})
    format: EnumProperty(name="Format", items=FORMAT_ITEMS, default="auto", description="File format")
    time_units: EnumProperty(
        name="Time Units", items=TIME_UNIT_ITEMS, default="auto", description="Unit of a CSV time column"
    )
    convention: EnumProperty(
        name="Convention", items=CONVENTION_ITEMS, default="auto", description="Axes and handedness of the recording"
    )
    units: EnumProperty(name="Units", items=UNIT_ITEMS, default="auto", description="Length unit of the positions")
    quat_order: EnumProperty(
        name="Quaternion Order",
        items=QUAT_ORDER_ITEMS,
        default="auto",
        description="Component order of rotation quaternions in CSV files",
    )
    device_family: EnumProperty(
        name="Devices",
        items=FAMILY_ITEMS,
        default="auto",
        description="Headset and controllers, for the offsets from each device to the head and wrist joints",
    )
    input_fps: FloatProperty(
        name="Source Rate",
        default=0.0,
        min=0.0,
        max=1000.0,
        description="Sample rate of the recording when it has no time column (0: detect); the import resamples to 60 fps",
    )
    set_active: BoolProperty(
        name="Use for Reconstruction", default=True, description="Make this take the one the KineST panel reconstructs"
    )

    def draw(self, context: bpy.types.Context) -> None:
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "format")
        layout.prop(self, "convention")
        layout.prop(self, "units")
        layout.prop(self, "quat_order")
        layout.prop(self, "device_family")
        layout.prop(self, "time_units")
        layout.prop(self, "input_fps")
        layout.prop(self, "set_active")
        detected = _LAST_DETECTED.get(self.filepath)
        if detected:
            box = layout.box()
            box.label(text="Detected:")
            for part in detected.split(", "):
                box.label(text=part)

    def execute(self, context: bpy.types.Context) -> set[str]:
        settings = context.scene.kinest.bl_rna if hasattr(context.scene, "kinest") else None
        spell = field_spelling(self.properties.bl_rna, settings)
        try:
            tracking = read_tracking_file(
                self.filepath,
                format=self.format,
                time_units=self.time_units,
                convention=self.convention,
                units=self.units,
                quat_order=self.quat_order,
                calibration=self.device_family,
                input_fps=self.input_fps or None,
            )
        except CoreMissingError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except (OSError, ValueError) as exc:  # TrackingFileError is a ValueError naming file and line
            text = exc.text(spell) if hasattr(exc, "text") else str(exc)  # its fix named as a dialog field
            self.report({"ERROR"}, f"Could not import: {text}")
            return {"CANCELLED"}
        take = take_name(self.filepath)
        root = build_tracking_objects(context, tracking, take)
        detected = root["kinest_detected"]
        _LAST_DETECTED[self.filepath] = detected
        for w in tracking.warnings:
            frames = w.frames
            where = ""
            if frames is not None:  # frames are 0-based in the sequence; the scene starts at frame 1
                where = f" ({w.device or 'all devices'}, frames {frames[0] + 1}-{frames[1]})"
            self.report({"WARNING"}, f"{w.code}: {w.text(spell)}{where}")
        self.report({"INFO"}, f"Imported {take}: {detected}")
        if self.set_active and hasattr(context.scene, "kinest"):
            context.scene.kinest.tracking = root
        return {"FINISHED"}


#: Reader option (``kinest_core.fixes.FIX_OPTIONS``) -> the import dialog property that sets it.
DIALOG_FIELDS: dict[str, str] = {
    "format": "format",
    "convention": "convention",
    "units": "units",
    "quat_order": "quat_order",
    "time_units": "time_units",
    "calibration": "device_family",
    "input_fps": "input_fps",
}


def field_spelling(dialog: Any, settings: Any) -> Callable[[Fix], str]:
    """Warning fixes named as the fields a user sets: ``Convention: Unity / Beat Saber (import options)``.

    ``dialog`` and ``settings`` are the RNA structs of the import operator and the KineST panel
    settings, so the names are the ones on screen. Options neither offers are named as scripts
    pass them to ``read_tracking``.
    """

    def spell(fix: Fix) -> str:
        if fix.option == "body_height" and settings is not None:
            prop, where = settings.properties["body_height"], "KineST panel"
        elif fix.option in DIALOG_FIELDS:
            prop, where = dialog.properties[DIALOG_FIELDS[fix.option]], "import options"
        else:
            from kinest_core.fixes import python_spelling

            return f"{python_spelling(fix)} (a read_tracking option for scripts; not in the import options)"
        if fix.value is None:
            return f"{prop.name} ({where})"
        if prop.type == "ENUM":
            label = next((i.name for i in prop.enum_items if i.identifier == fix.value), str(fix.value))
        else:
            label = f"{fix.value:g}"
        return f"{prop.name}: {label} ({where})"

    return spell


#: What the last import of a path detected, shown in the import options (F9 / redo panel).
_LAST_DETECTED: dict[str, str] = {}


def menu_func_import(self: bpy.types.Menu, context: bpy.types.Context) -> None:
    self.layout.operator(KINEST_OT_import_tracking.bl_idname, text="VR Tracking (.csv, .bvh, .bsor)")


classes = (KINEST_OT_import_tracking,)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.TOPBAR_MT_file_import.append(menu_func_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(menu_func_import)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
