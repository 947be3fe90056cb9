# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender armature <-> the core's retarget: the target's skeleton out, keys in, as Blender evaluates the rig.

The core works in world space (Z up, the scene's units): each bone's head, tail and rest axes
are taken through the armature object's world matrix (uniform scale removed from the axes),
and locations come back in world units, so they are divided by the object's scale here.
Keys are written whole-array with ``foreach_set`` into a new action; the target's own actions,
mesh and constraints are left as they are.

A control rig's controls hang from helper bones that constraints move, so the skeleton the
retarget aligns to is the rig as Blender evaluates it in its neutral pose (keyed bones at
rest, a generated Rigify rig switched to FK: :func:`neutral_pose`), and what each keyed
bone's parent follows is measured by moving the keyed bones one at a time
(:func:`probe_parents`; the keys are then made for that, :mod:`.retarget_keys`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np

from .retarget_keys import STATIC, ParentModel
from .takes import write_fcurve_keys

if TYPE_CHECKING:
    from kinest_core.postprocess.bone_map import BoneMap, TargetSkeleton
    from kinest_core.postprocess.retarget import RetargetResult

MAP_PROP = "kinest_retarget_map"
#: A generated Rigify rig's switches set for keying its FK controls: (property, value). ``IK_FK``
#: lives on ``upper_arm_parent.L``, ``thigh_parent.L``...; 1.0 is FK. ``neck_follow`` on ``torso``
#: at 1.0 makes the neck follow the chest fully (between 0 and 1 it follows part way, which keys
#: cannot reproduce).
RIGIFY_SWITCHES = (("IK_FK", 1.0), ("neck_follow", 1.0))
#: The test turn and shift that :func:`probe_parents` gives each keyed bone.
_PROBE_TURN = (0.9396926, 0.1038449, 0.1730748, 0.2769197)  # 40 degrees about (0.3, 0.5, 0.8)
_PROBE_SHIFT = np.array([0.31, 0.47, 0.83])
_ANGLE_TOL = np.radians(0.05)


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


def is_rigify_rig(obj: bpy.types.Object) -> bool:
    """A generated Rigify rig (its FK/IK switches and FK controls are there)."""
    names = obj.pose.bones
    return all(n in names for n in ("torso", "upper_arm_fk.L", "thigh_fk.L")) and any(
        "IK_FK" in pb.keys() for pb in obj.pose.bones
    )


def rigify_switches(obj: bpy.types.Object) -> dict[tuple[str, str], float]:
    """(bone, property) -> value for keying a generated Rigify rig's FK controls ({} for other rigs)."""
    if not is_rigify_rig(obj):
        return {}
    out = {}
    for pb in obj.pose.bones:
        for prop, value in RIGIFY_SWITCHES:
            if prop in pb.keys():
                out[(pb.name, prop)] = value
    return out


def sub_skeleton(skel: TargetSkeleton, names: Sequence[str]) -> TargetSkeleton:
    """The bones ``names`` and all their ancestors (the retarget needs no others), in the skeleton's order."""
    from kinest_core.postprocess.bone_map import TargetSkeleton

    keep: set[int] = set()
    for nm in names:
        i = skel.index(nm)
        keep |= {i, *skel.ancestors(i)}
    order = sorted(keep)
    new = {old: k for k, old in enumerate(order)}
    rest = skel.rest_rotations[order] if skel.rest_rotations is not None else None
    return TargetSkeleton(
        tuple(skel.names[i] for i in order),
        tuple(new[skel.parents[i]] if skel.parents[i] >= 0 else -1 for i in order),
        skel.heads[order],
        skel.tails[order],
        rest,
    )


def _save_channels(pb: bpy.types.PoseBone) -> tuple[Any, ...]:
    return (
        pb.rotation_mode,
        tuple(pb.location),
        tuple(pb.rotation_quaternion),
        tuple(pb.rotation_euler),
        tuple(pb.rotation_axis_angle),
        tuple(pb.scale),
    )


def _load_channels(pb: bpy.types.PoseBone, saved: tuple[Any, ...]) -> None:
    pb.rotation_mode = saved[0]
    pb.location, pb.rotation_quaternion, pb.rotation_euler = saved[1], saved[2], saved[3]
    pb.rotation_axis_angle, pb.scale = saved[4], saved[5]


@contextmanager
def neutral_pose(
    context: bpy.types.Context, obj: bpy.types.Object, keyed: Sequence[str], switches: dict[tuple[str, str], float]
) -> Iterator[None]:
    """The rig evaluated with ``keyed`` bones at rest (quaternion mode), ``switches`` set and no action;
    everything is put back on leaving, so a cancel or an error leaves the target as it was."""
    ad = obj.animation_data
    keep_action = (ad.action, ad.action_slot) if ad is not None else None
    saved = {n: _save_channels(obj.pose.bones[n]) for n in keyed}
    saved_props = {(b, p): obj.pose.bones[b][p] for b, p in switches}
    try:
        if ad is not None and ad.action is not None:
            ad.action = None
        for n in keyed:
            pb = obj.pose.bones[n]
            pb.rotation_mode = "QUATERNION"
            pb.location, pb.rotation_quaternion, pb.scale = (0.0, 0.0, 0.0), (1.0, 0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
        for (b, p), v in switches.items():
            obj.pose.bones[b][p] = v
        context.view_layer.update()
        yield
    finally:
        for n, sv in saved.items():
            _load_channels(obj.pose.bones[n], sv)
        for (b, p), v in saved_props.items():
            obj.pose.bones[b][p] = v
        if ad is not None and keep_action is not None and keep_action[0] is not None:
            ad.action = keep_action[0]
            if keep_action[1] is not None:
                ad.action_slot = keep_action[1]
        context.view_layer.update()


def evaluated_skeleton(obj: bpy.types.Object) -> TargetSkeleton:
    """The armature's skeleton as Blender evaluates its pose now, in world space (inside :func:`neutral_pose`)."""
    from kinest_core.postprocess.bone_map import TargetSkeleton

    mw = np.array(obj.matrix_world)
    scale = object_scale(obj)
    pbs = list(obj.pose.bones)
    index = {pb.name: k for k, pb in enumerate(pbs)}
    heads = np.array([mw[:3, :3] @ np.array(pb.head) + mw[:3, 3] for pb in pbs])
    tails = np.array([mw[:3, :3] @ np.array(pb.tail) + mw[:3, 3] for pb in pbs])
    rest = np.array([mw[:3, :3] / scale @ np.array(pb.matrix.to_3x3().normalized()) for pb in pbs])
    parents = tuple(index[pb.parent.name] if pb.parent else -1 for pb in pbs)
    return TargetSkeleton(tuple(pb.name for pb in pbs), parents, heads, tails, rest)


def _world(obj: bpy.types.Object, names: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (n, 3, 3) and heads (n, 3) of pose bones (identity and zeros for None)."""
    mw = np.array(obj.matrix_world)
    turn = mw[:3, :3] / object_scale(obj)
    rots = np.tile(np.eye(3), (len(names), 1, 1))
    heads = np.zeros((len(names), 3))
    for k, n in enumerate(names):
        if n is not None:
            pb = obj.pose.bones[n]
            rots[k] = turn @ np.array(pb.matrix.to_3x3().normalized())
            heads[k] = mw[:3, :3] @ np.array(pb.head) + mw[:3, 3]
    return rots, heads


def _angle(m: np.ndarray) -> np.ndarray:
    return np.arccos(np.clip((np.trace(m, axis1=-2, axis2=-1) - 1.0) / 2.0, -1.0, 1.0))


def probe_parents(context: bpy.types.Context, obj: bpy.types.Object, keyed: Sequence[str]) -> ParentModel:
    """What each keyed bone's parent follows, measured (inside :func:`neutral_pose`).

    Each keyed bone is turned, then shifted, on its own; a parent whose world rotation changes
    exactly as that bone's does follows its rotation, one whose head moves rigidly with it
    follows its head. Of several such bones the innermost one (the one all the others move
    too) is the parent's; a parent that moves part way is reported in ``partial``.
    """
    size = max(float(np.ptp(np.array([b.head_local for b in obj.data.bones]), axis=0).max()), 1e-6)
    tol = 1e-4 * size * object_scale(obj)
    parents = [obj.pose.bones[n].parent.name if obj.pose.bones[n].parent else None for n in keyed]
    k_count = len(keyed)
    own_r0, own_h0 = _world(obj, keyed)
    par_r0, par_h0 = _world(obj, parents)
    # [c, x]: turning/shifting keyed bone c moves x's parent (or x itself) fully (1), not (0), part way (2)
    par_rot = np.zeros((k_count, k_count), dtype=int)
    par_head = np.zeros((k_count, k_count), dtype=int)
    own_rot = np.zeros((k_count, k_count), dtype=bool)
    own_head = np.zeros((k_count, k_count), dtype=bool)
    for c, name in enumerate(keyed):
        pb = obj.pose.bones[name]
        pb.rotation_quaternion = _PROBE_TURN
        context.view_layer.update()
        own_r, own_h = _world(obj, keyed)
        par_r, par_h = _world(obj, parents)
        turn = own_r[c] @ own_r0[c].T
        par_turn = par_r @ np.swapaxes(par_r0, -1, -2)
        moved = _angle(par_turn) > _ANGLE_TOL
        full = _angle(par_turn @ turn.T) < _ANGLE_TOL
        par_rot[c] = np.where(moved, np.where(full, 1, 2), 0)
        own_rot[c] = _angle(own_r @ np.swapaxes(own_r0, -1, -2) @ turn.T) < _ANGLE_TOL
        rigid_par = own_h0[c] + (par_h0 - own_h0[c]) @ turn.T
        rigid_own = own_h0[c] + (own_h0 - own_h0[c]) @ turn.T
        head_rot_ok = np.linalg.norm(par_h - rigid_par, axis=-1) < tol
        head_rot_still = np.linalg.norm(par_h - par_h0, axis=-1) < tol
        own_head_rot_ok = np.linalg.norm(own_h - rigid_own, axis=-1) < tol
        pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        pb.location = tuple(_PROBE_SHIFT * size)
        context.view_layer.update()
        own_r, own_h = _world(obj, keyed)
        par_r, par_h = _world(obj, parents)
        shift = own_h[c] - own_h0[c]
        follows = np.linalg.norm(par_h - par_h0 - shift, axis=-1) < tol
        still = np.linalg.norm(par_h - par_h0, axis=-1) < tol
        par_head[c] = np.where(follows & head_rot_ok, 1, np.where(still & head_rot_still, 0, 2))
        own_head[c] = own_head_rot_ok & (np.linalg.norm(own_h - own_h0 - shift, axis=-1) < tol)
        pb.location = (0.0, 0.0, 0.0)
        context.view_layer.update()
    rot_parent, head_parent, partial = [], [], []
    for x in range(k_count):
        if parents[x] is None:
            rot_parent.append(STATIC)
            head_parent.append(STATIC)
            continue
        for table, own, out in ((par_rot, own_rot, rot_parent), (par_head, own_head, head_parent)):
            col = table[:, x].copy()
            col[x] = 0
            if np.any(col == 2):
                partial.append(keyed[x])
            fulls = [c for c in range(k_count) if col[c] == 1]
            inner = [c for c in fulls if all(own[o, c] for o in fulls if o != c)]
            if fulls and len(inner) != 1:
                partial.append(keyed[x])
            out.append(inner[0] if len(inner) == 1 else STATIC)
    ph = np.array([par_h0[k] if parents[k] is not None else own_h0[k] for k in range(k_count)])
    return ParentModel(tuple(rot_parent), tuple(head_parent), ph, tuple(dict.fromkeys(partial)))


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
