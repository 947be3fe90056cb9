# SPDX-License-Identifier: GPL-3.0-or-later
"""The take's armature, both ways: built on the performer's rest pose, and read back as a ``Motion``.

:func:`ensure_armature` makes the bones :mod:`.keys` lays out (heads on the SMPL-22 joints);
:func:`motion_from_armature` is the one way back from a baked armature to the core's
``Motion`` (what the smoothing, the BVH export and the jitter overlay start from), so hand
edits to the keys reach all of them. Main thread only (``bpy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import bpy
import numpy as np
from mathutils import Vector

from . import keys, takes

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from kinest_core.types import Motion


def ensure_armature(
    context: bpy.types.Context, take: str, rest_offsets: NDArray, names: Sequence[str]
) -> bpy.types.Object:
    """Build (or rebuild in place) the take's armature on the performer's rest pose.

    An existing armature of the same take keeps its object (and so the user's parenting and
    modifiers); its bones are rebuilt. Bones are not connected so that each head sits
    exactly on its joint.
    """
    from kinest_core.skeleton import PARENTS

    scene = context.scene
    obj = takes.find_take_object(take, "armature")
    if obj is None or obj.type != "ARMATURE":
        data = bpy.data.armatures.new(f"KineST_{take}")
        obj = bpy.data.objects.new(f"KineST_{take}", data)
        obj[takes.TAKE_PROP] = take
        obj[takes.ROLE_PROP] = "armature"
        data[takes.TAKE_PROP] = take
        takes.take_collection(scene).objects.link(obj)
    elif obj.name not in context.view_layer.objects:
        takes.take_collection(scene).objects.link(obj)
    data = obj.data
    data.display_type = "STICK"
    heads, tails, zref = keys.bone_layout(rest_offsets)

    prev_active = context.view_layer.objects.active
    prev_mode = prev_active.mode if prev_active is not None else "OBJECT"
    if prev_active is not None and prev_mode != "OBJECT":
        with context.temp_override(active_object=prev_active, object=prev_active):
            bpy.ops.object.mode_set(mode="OBJECT")
    obj.hide_set(False)
    obj.hide_viewport = False
    context.view_layer.objects.active = obj
    with context.temp_override(active_object=obj, object=obj, selected_objects=[obj]):
        bpy.ops.object.mode_set(mode="EDIT")
        try:
            ebones = data.edit_bones
            for eb in list(ebones):
                ebones.remove(eb)
            made = []
            for j, name in enumerate(names):
                eb = ebones.new(name)
                eb.head = Vector(heads[j])
                eb.tail = Vector(tails[j])
                eb.align_roll(Vector(zref[j]))
                eb.use_deform = True
                made.append(eb)
            for j, p in enumerate(PARENTS):
                if p >= 0:
                    made[j].parent = made[p]
                    made[j].use_connect = False
        finally:
            bpy.ops.object.mode_set(mode="OBJECT")
    for pb in obj.pose.bones:
        pb.rotation_mode = "QUATERNION"
    if prev_active is not None and prev_active != obj:
        context.view_layer.objects.active = prev_active
        if prev_mode != "OBJECT":  # give the user back the mode they were working in
            try:
                with context.temp_override(active_object=prev_active, object=prev_active):
                    bpy.ops.object.mode_set(mode=prev_mode)
            except (RuntimeError, TypeError):
                pass
    return obj


def rest_matrices(obj: bpy.types.Object, names: Sequence[str]) -> NDArray[np.float64]:
    """Armature-space rest rotations (22, 3, 3) exactly as Blender stored them."""
    return np.array([np.array(obj.data.bones[n].matrix_local.to_3x3()) for n in names], dtype=np.float64)


def motion_from_armature(obj: bpy.types.Object) -> Motion:
    """The take as the armature's action holds it now (hand edits included), as a core ``Motion``.

    Reads the baked frame range (keys edited by hand are evaluated by Blender), undoes the
    bake's key maths with the bones' stored rest rotations (:func:`.keys.unbake`), with the
    rest offsets the bake stored for the joint positions.
    """
    from kinest_core.types import Motion

    if takes.REST_PROP not in obj or takes.FRAMES_PROP not in obj:
        raise ValueError(f"{obj.name} is not a KineST bake: reconstruct the take first")
    names = keys.bone_names(str(obj.get(takes.BONE_NAMES_PROP, "SMPL")))
    rest_offsets = np.asarray(obj[takes.REST_PROP], dtype=np.float64).reshape(-1, 3)
    start, n = int(obj.get(takes.FRAME_START_PROP, 1)), int(obj[takes.FRAMES_PROP])
    frames = np.arange(start, start + n, dtype=np.float64)
    cb = takes.take_channelbag(obj)

    def curve(path: str, index: int) -> NDArray[np.float64]:
        values = takes.fcurve_values(cb, path, index, frames)
        if values is None:
            raise ValueError(f"{obj.name}: the take's action has no curve {path}[{index}]; reconstruct the take again")
        return values

    quats = np.stack([np.stack([curve(takes.rotation_path(nm), i) for i in range(4)], -1) for nm in names], axis=1)
    loc = np.stack([curve(takes.location_path(names[0]), i) for i in range(3)], -1)
    local, root, positions = keys.unbake(quats, loc, rest_matrices(obj, names), rest_offsets)
    fps = float(obj.get(takes.FPS_PROP, 60.0))
    return Motion(local, root, positions, rest_offsets, fps, info={"source": obj.name})


def armature_joint_positions(
    context: bpy.types.Context, obj: bpy.types.Object, names: Sequence[str], frames: Sequence[int]
) -> NDArray[np.float64]:
    """World positions (len(frames), 22, 3) of the bone heads at the given frames, as Blender poses them (for checks)."""
    out = np.empty((len(frames), len(names), 3))
    scene = context.scene
    keep = scene.frame_current
    for k, f in enumerate(frames):
        scene.frame_set(int(f))
        mw = obj.matrix_world
        for j, n in enumerate(names):
            out[k, j] = np.array(mw @ obj.pose.bones[n].head)
    scene.frame_set(keep)
    return out
