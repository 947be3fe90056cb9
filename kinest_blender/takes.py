# SPDX-License-Identifier: GPL-3.0-or-later
"""Take bookkeeping: which Blender data belongs to which take, and its keys read and written.

Everything this add-on makes carries ID properties (:data:`TAKE_PROP`, :data:`ROLE_PROP`), so
a re-run finds and replaces only its own results and never a user's data of the same name.
The take's objects live in one "KineST" collection; each take's keys are in one slotted
action whose F-curves are written and read here as whole arrays (``foreach_set`` /
``foreach_get``), never one key at a time. Main thread only (``bpy``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import bpy
import numpy as np
from bpy_extras import anim_utils

if TYPE_CHECKING:
    from numpy.typing import NDArray

#: Marks IDs this add-on made, so re-running replaces only its own results.
TAKE_PROP = "kinest_take"
#: What an object is to its take: "armature", "tracking" (the tracking empty), "tracker", "body".
ROLE_PROP = "kinest_role"
COLLECTION_NAME = "KineST"

#: Armature properties written by the bake (rest offsets let a take be read back as a Motion).
REST_PROP = "kinest_rest_offsets"
FPS_PROP = "kinest_fps"
BONE_NAMES_PROP = "kinest_bone_names"
FRAME_START_PROP = "kinest_frame_start"
FRAMES_PROP = "kinest_frames"
BAKE_ID_PROP = "kinest_bake_id"
#: Each pose bone's keyed jitter (and the prefix of the armature's jitter summary properties).
JITTER_PROP = "kinest_jitter"
#: Marks the action a running bake is filling (so a lookup by name never takes someone else's).
BAKE_TOKEN_PROP = "kinest_bake_token"

# Enum value of 'LINEAR' in Keyframe.interpolation (CONSTANT=0, LINEAR=1, BEZIER=2...).
LINEAR = 1


def take_collection(scene: bpy.types.Scene) -> bpy.types.Collection:
    """The scene's "KineST" collection (made on first use, linked under the scene collection)."""
    coll = bpy.data.collections.get(COLLECTION_NAME)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION_NAME)
    if coll.name not in scene.collection.children:
        scene.collection.children.link(coll)
    return coll


def find_take_object(take: str, role: str) -> bpy.types.Object | None:
    """This add-on's object of a role ("armature", "tracking") for a take, if one exists."""
    for obj in bpy.data.objects:
        if obj.get(TAKE_PROP) == take and obj.get(ROLE_PROP) == role:
            return obj
    return None


def is_take_armature(obj: bpy.types.Object | None) -> bool:
    return obj is not None and obj.type == "ARMATURE" and obj.get(ROLE_PROP) == "armature"


def current_armature(context: bpy.types.Context) -> bpy.types.Object | None:
    """The take an operator or panel is about: the active KineST armature (or the one under the
    active body), else the armature of the panel's tracking take, else the scene's first one."""
    obj = getattr(context, "active_object", None)
    if is_take_armature(obj):
        return obj
    if obj is not None and obj.get(ROLE_PROP) == "body" and obj.parent is not None:
        return obj.parent
    scene = context.scene
    if scene is None:
        return None
    settings = getattr(scene, "kinest", None)
    root = settings.tracking if settings is not None else None
    if root is not None:
        found = find_take_object(str(root.get(TAKE_PROP, root.name)), "armature")
        if found is not None and found.name in scene.objects:
            return found
    return next((o for o in scene.objects if is_take_armature(o)), None)


def location_path(bone: str) -> str:
    return f'pose.bones["{bone}"].location'


def rotation_path(bone: str) -> str:
    return f'pose.bones["{bone}"].rotation_quaternion'


def jitter_path(bone: str) -> str:
    return f'pose.bones["{bone}"]["{JITTER_PROP}"]'


def object_channelbag(obj: bpy.types.Object) -> bpy.types.ActionChannelbag | None:
    """The channelbag of the object's action slot, or None when it has no keys of its own."""
    ad = obj.animation_data
    if ad is None or ad.action is None or ad.action_slot is None or not ad.action.layers:
        return None
    strips = ad.action.layers[0].strips
    return strips[0].channelbag(ad.action_slot) if strips else None


def take_channelbag(obj: bpy.types.Object) -> bpy.types.ActionChannelbag:
    """The armature's channelbag (made if its action has none yet); a user-facing error without an action."""
    ad = obj.animation_data
    if ad is None or ad.action is None or ad.action_slot is None:
        raise ValueError(f"{obj.name} has no action: reconstruct the take first")
    return anim_utils.action_ensure_channelbag_for_slot(ad.action, ad.action_slot)


def write_fcurve_keys(
    channelbag: bpy.types.ActionChannelbag, data_path: str, index: int, frames: NDArray, values: NDArray, group: str
) -> bpy.types.FCurve:
    """One F-curve with a key on every frame, written as whole arrays (no per-key Python loop)."""
    fc = channelbag.fcurves.find(data_path, index=index)
    if fc is not None:
        channelbag.fcurves.remove(fc)
    grp = channelbag.groups.get(group) or channelbag.groups.new(group)
    fc = channelbag.fcurves.new(data_path, index=index)
    fc.group = grp
    n = len(frames)
    fc.keyframe_points.add(n)
    co = np.empty((n, 2), dtype=np.float32)
    co[:, 0] = frames
    co[:, 1] = values
    fc.keyframe_points.foreach_set("co", co.ravel())
    fc.keyframe_points.foreach_set("interpolation", np.full(n, LINEAR, dtype=np.int32))
    fc.update()
    return fc


def fcurve_values(
    channelbag: bpy.types.ActionChannelbag, data_path: str, index: int, frames: NDArray | None = None
) -> NDArray[np.float64] | None:
    """An F-curve's values (None if there is no such curve).

    Without ``frames``: the value of every key. With ``frames``: the values on those frames, read
    from the keys when there is one per frame (what a bake writes), else evaluated by Blender
    (keys deleted or added by hand).
    """
    fc = channelbag.fcurves.find(data_path, index=index)
    if fc is None:
        return None
    n = len(fc.keyframe_points)
    co = np.empty(2 * n, dtype=np.float32)
    fc.keyframe_points.foreach_get("co", co)
    if frames is None or (n == len(frames) and np.allclose(co[0::2], frames)):
        return co[1::2].astype(np.float64)
    return np.array([fc.evaluate(float(f)) for f in frames], dtype=np.float64)


def retire_old_action(
    name: str, take: str, users: Iterable[bpy.types.Object] = (), keep: bpy.types.Action | None = None
) -> None:
    """Free ``name`` for a new action of the take: this add-on's old one is unassigned from
    ``users`` and goes (or, if others still use it, is renamed ``name.old``)."""
    old = bpy.data.actions.get(name)
    if old is None or old == keep or old.get(TAKE_PROP) != take:
        return
    for obj in users:
        if obj is not None and obj.animation_data is not None and obj.animation_data.action == old:
            obj.animation_data.action = None
    if old.users == 0 or (old.users == 1 and old.use_fake_user):
        bpy.data.actions.remove(old)
    else:  # someone else uses it: keep theirs, make ours under a new name
        old.name = name + ".old"


def new_action(name: str, take: str, obj: bpy.types.Object) -> tuple[bpy.types.Action, bpy.types.ActionChannelbag]:
    """A fresh slotted action for ``obj`` (replacing this add-on's previous one of the same name), assigned."""
    retire_old_action(name, take, [obj])
    action = bpy.data.actions.new(name)
    action[TAKE_PROP] = take
    cb = assign_new_slot(action, obj)
    return action, cb


def assign_new_slot(action: bpy.types.Action, obj: bpy.types.Object) -> bpy.types.ActionChannelbag:
    """Give ``obj`` a new slot of ``action`` (assigned) and return that slot's channelbag."""
    slot = action.slots.new(id_type="OBJECT", name=obj.name)
    ad = obj.animation_data or obj.animation_data_create()
    ad.action = action
    ad.action_slot = slot
    return anim_utils.action_ensure_channelbag_for_slot(action, slot)


def slot_channelbag(action: bpy.types.Action, slot: bpy.types.ActionSlot) -> bpy.types.ActionChannelbag:
    """The channelbag of one slot of an action (made if missing)."""
    return anim_utils.action_ensure_channelbag_for_slot(action, slot)


def set_scene_timing(scene: bpy.types.Scene, fps: float, frame_start: int, num_frames: int) -> None:
    """Scene fps and frame range matching a take (fps_base keeps non-integer rates exact)."""
    rounded = max(1, round(fps))
    scene.render.fps = rounded
    scene.render.fps_base = rounded / fps
    scene.frame_start = frame_start
    scene.frame_end = frame_start + max(num_frames, 1) - 1
