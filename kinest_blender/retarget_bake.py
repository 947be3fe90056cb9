# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender armature <-> the core's retarget: the target's rest skeleton out, one slotted action of keys in.

The core works in world space (Z up, the scene's units): each bone's head, tail and rest axes
are taken through the armature object's world matrix (uniform scale removed from the axes),
and locations come back in world units, so they are divided by the object's scale here.
Keys are written whole-array with ``foreach_set`` into a new action; the target's own actions,
mesh and constraints are left as they are.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import bpy
import numpy as np

from .takes import write_fcurve_keys

if TYPE_CHECKING:
    from kinest_core.postprocess.bone_map import BoneMap, TargetSkeleton
    from kinest_core.postprocess.retarget import RetargetResult

MAP_PROP = "kinest_retarget_map"


def object_scale(obj: bpy.types.Object) -> float:
    """The armature object's uniform world scale; non-uniform scale is refused (bones would shear)."""
    s = np.array(obj.matrix_world.to_scale())
    if np.ptp(s) > 1e-4 * float(np.max(np.abs(s))):
        raise ValueError(f"{obj.name} has a non-uniform scale {tuple(np.round(s, 4))}: apply the scale first")
    return float(s[0])


def target_skeleton(obj: bpy.types.Object) -> TargetSkeleton:
    """The armature's rest skeleton in world space (what the core's mapper and retarget read)."""
    from kinest_core.postprocess.bone_map import TargetSkeleton

    mw = np.array(obj.matrix_world)
    scale = object_scale(obj)
    turn = mw[:3, :3] / scale
    bones = list(obj.data.bones)
    index = {b.name: k for k, b in enumerate(bones)}
    heads = np.array([mw[:3, :3] @ np.array(b.head_local) + mw[:3, 3] for b in bones])
    tails = np.array([mw[:3, :3] @ np.array(b.tail_local) + mw[:3, 3] for b in bones])
    rest = np.array([turn @ np.array(b.matrix_local.to_3x3()) for b in bones])
    parents = tuple(index[b.parent.name] if b.parent else -1 for b in bones)
    return TargetSkeleton(tuple(b.name for b in bones), parents, heads, tails, rest)


def apply_result(obj: bpy.types.Object, result: RetargetResult, frame_start: int, name: str) -> bpy.types.Action:
    """A new slotted action holding every keyed bone's rotation (and location where it moves), assigned."""
    from bpy_extras import anim_utils

    scale = object_scale(obj)
    action = bpy.data.actions.new(name)
    slot = action.slots.new(id_type="OBJECT", name=obj.name)
    cb = anim_utils.action_ensure_channelbag_for_slot(action, slot)
    frames = np.arange(frame_start, frame_start + result.num_frames, dtype=np.float32)
    for k, bone in enumerate(result.keyed):
        path = f'pose.bones["{bone}"].rotation_quaternion'
        for i in range(4):
            write_fcurve_keys(cb, path, i, frames, result.rotations[:, k, i].astype(np.float32), bone)
        obj.pose.bones[bone].rotation_mode = "QUATERNION"
    for bone, loc in result.locations.items():
        for i in range(3):
            write_fcurve_keys(
                cb, f'pose.bones["{bone}"].location', i, frames, (loc[:, i] / scale).astype(np.float32), bone
            )
    ad = obj.animation_data or obj.animation_data_create()
    ad.action = action
    ad.action_slot = slot
    return action


def store_map(obj: bpy.types.Object, bone_map: BoneMap) -> None:
    obj[MAP_PROP] = bone_map.to_json()


def stored_map(obj: bpy.types.Object) -> dict[str, str] | None:
    raw = obj.get(MAP_PROP)
    if not raw:
        return None
    try:
        value = json.loads(str(raw))
    except json.JSONDecodeError:
        return None
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else None


def world_heads(context: bpy.types.Context, obj: bpy.types.Object, bones: list[str], frames: list[int]) -> np.ndarray:
    """World positions (len(frames), len(bones), 3) of pose-bone heads as Blender evaluates them (constraints included)."""
    out = np.empty((len(frames), len(bones), 3))
    keep = context.scene.frame_current
    for k, f in enumerate(frames):
        context.scene.frame_set(int(f))
        mw = obj.matrix_world
        for j, b in enumerate(bones):
            out[k, j] = np.array(mw @ obj.pose.bones[b].head)
    context.scene.frame_set(keep)
    return out
