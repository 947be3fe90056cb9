# SPDX-License-Identifier: GPL-3.0-or-later
"""Settings the panel edits (saved with the .blend) and the running job's progress (not saved)."""

from __future__ import annotations

import bpy
from bpy.props import (
    BoolProperty,
    EnumProperty,
    FloatProperty,
    FloatVectorProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from . import jitter_view
from .keys import BONE_NAME_ITEMS
from .takes import ROLE_PROP


def _update_colors(self: bpy.types.PropertyGroup, context: bpy.types.Context) -> None:
    jitter_view.update_colors(self, context)


def _redraw_views(self: bpy.types.PropertyGroup, context: bpy.types.Context) -> None:
    for area in getattr(context.screen, "areas", ()):
        if area.type == "VIEW_3D":
            area.tag_redraw()


def _is_tracking(self: bpy.types.PropertyGroup, obj: bpy.types.Object) -> bool:
    return obj.get(ROLE_PROP) == "tracking"


class KinestSettings(bpy.types.PropertyGroup):
    """Per-scene reconstruction and export settings."""

    tracking: PointerProperty(
        name="Take", type=bpy.types.Object, poll=_is_tracking, description="The imported tracking to reconstruct"
    )
    model_path: StringProperty(
        name="Model",
        subtype="FILE_PATH",
        default="",
        description="A KineST checkpoint (.safetensors); empty uses the bundled model",
    )
    device: EnumProperty(
        name="Device",
        items=[
            ("auto", "Auto", "CUDA when available, else CPU"),
            ("cpu", "CPU", ""),
            ("cuda", "CUDA", "An NVIDIA GPU"),
        ],
        default="auto",
    )
    mode: EnumProperty(
        name="Mode",
        items=[
            ("offline", "Offline", "Whole recording, overlapping windows blended: the smoothest result"),
            ("online", "Online", "Causal: each frame only from the frames before it (as in live use)"),
        ],
        default="offline",
    )
    stride: IntProperty(
        name="Stride",
        default=1,
        min=1,
        max=96,
        description="Online mode: run the network every this many frames (faster, up to stride-1 frames of extra latency)",
    )
    body_height: FloatProperty(
        name="Body Height",
        default=0.0,
        min=0.0,
        max=2.8,
        unit="LENGTH",
        subtype="DISTANCE",
        description="Performer's standing height; 0 estimates it from the headset",
    )
    pin_hands: BoolProperty(
        name="Pin Hands",
        default=True,
        description="Bend the arms so the wrists land exactly on the tracked controllers "
        "(off: keep the network's arms as predicted)",
    )
    plant_feet: BoolProperty(
        name="Plant Feet",
        default=True,
        description="Lock each foot where it stands while it is in contact and keep the feet above the floor "
        "(off: keep the network's legs as predicted; the contacts are keyed either way)",
    )
    float32: BoolProperty(
        name="Float32 Network",
        default=False,
        description="Run the network in float32 (off: bfloat16 on CPUs that compute it natively, about 1.4x faster "
        "with the same accuracy; float32 elsewhere)",
    )
    head_offset: FloatVectorProperty(
        name="Head Offset",
        size=3,
        default=(0.0, 0.0, 0.0),
        unit="LENGTH",
        subtype="TRANSLATION",
        description="Head joint relative to the tracked head, in the head's own axes (x left, y back, z up)",
    )
    hand_offset: FloatVectorProperty(
        name="Hand Offset",
        size=3,
        default=(0.0, 0.0, 0.0),
        unit="LENGTH",
        subtype="TRANSLATION",
        description="Wrist joint relative to the tracked hand, in the hand's own axes; mirrored for the right hand",
    )
    bone_names: EnumProperty(name="Bone Names", items=BONE_NAME_ITEMS, default="SMPL")
    threads: IntProperty(
        name="CPU Threads", default=0, min=0, max=256, description="Torch threads; 0 leaves one core for Blender"
    )
    body_mesh: BoolProperty(
        name="Body Mesh",
        default=True,
        description="Build a low-poly body skinned to the armature, so the motion reads as a person",
    )
    smpl_model: StringProperty(
        name="SMPL Model",
        subtype="FILE_PATH",
        default="",
        description=(
            "Your own SMPL model file (e.g. SMPL_NEUTRAL.pkl from smpl.is.tue.mpg.de; needs the smplx package) "
            "for the SMPL mesh instead of the built-in body; empty: built-in body"
        ),
    )
    show_jitter_colors: BoolProperty(
        name="Bone Colours",
        default=True,
        update=_update_colors,
        description="Colour each bone by its jitter on the current frame (calm teal, yellow, shaking red)",
    )
    show_trails: BoolProperty(
        name="Trails",
        default=True,
        update=_redraw_views,
        description="Draw each joint's recent path in the viewport, coloured by jitter",
    )
    trail_frames: IntProperty(
        name="Trail Length", default=30, min=2, max=600, update=_redraw_views, description="Frames of path to draw"
    )
    jitter_shaky: FloatProperty(
        name="Red At",
        default=30.0,
        min=0.1,
        soft_max=200.0,
        update=_update_colors,
        description="Jitter (100 m/s^3, the metric's unit) shown fully red (the KineST paper's mean on AMASS is about 6; real mocap measures 5-22)",
    )
    smooth_method: EnumProperty(
        name="Filter",
        items=[
            ("savgol", "Savitzky-Golay", "Cubic fit over a window that grows with the strength: no lag, keeps peaks"),
            ("one_euro", "One Euro", "Smooths slow motion strongly and fast swings little (run both ways: no lag)"),
        ],
        default="savgol",
    )
    smooth_legs: FloatProperty(name="Legs", default=0.5, min=0.0, max=1.0, subtype="FACTOR")
    smooth_spine: FloatProperty(name="Spine", default=0.5, min=0.0, max=1.0, subtype="FACTOR")
    smooth_arms: FloatProperty(name="Arms", default=0.3, min=0.0, max=1.0, subtype="FACTOR")
    smooth_head: FloatProperty(name="Head", default=0.3, min=0.0, max=1.0, subtype="FACTOR")


class KinestProgress(bpy.types.PropertyGroup):
    """The running reconstruction as the panel shows it (window-manager data: never saved)."""

    running: BoolProperty(default=False)
    done: IntProperty(default=0)
    total: IntProperty(default=0)
    seconds_left: FloatProperty(default=-1.0)
    stage: StringProperty(default="")  # "reconstruct", then "bake"
    message: StringProperty(default="")
    last_result: StringProperty(default="")


classes = (KinestSettings, KinestProgress)


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.kinest = PointerProperty(type=KinestSettings)
    bpy.types.WindowManager.kinest_progress = PointerProperty(type=KinestProgress)


def unregister() -> None:
    del bpy.types.WindowManager.kinest_progress
    del bpy.types.Scene.kinest
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
