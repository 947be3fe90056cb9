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

from .bake import BONE_NAME_ITEMS, ROLE_PROP


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


class KinestProgress(bpy.types.PropertyGroup):
    """The running reconstruction as the panel shows it (window-manager data: never saved)."""

    running: BoolProperty(default=False)
    done: IntProperty(default=0)
    total: IntProperty(default=0)
    seconds_left: FloatProperty(default=-1.0)
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
