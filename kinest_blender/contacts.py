# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot contacts on a take: keyed ``kinest_contact`` on each foot bone, and timeline markers per span.

The bake keys each foot bone's (the ankle joint's bone) ``kinest_contact`` property, 0 or 1 on
every frame, in the take's own action (:func:`contact_curves`), so the contacts travel with the
take (a re-bake, an export, a retarget) and show in the Graph Editor and Dope Sheet; a
timeline marker at the start of each span (``KineST L`` / ``KineST R``) shows where a foot is
locked. An animator edits the keys (by hand, or with Mark / Clear Contact); Plant Feet reads
them back (:func:`read_contacts`, a key counts from 0.5 up). Retarget keys the same property on
a character's foot bones (:func:`key_foot_contacts`). Main thread only (``bpy``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np

from . import keys, takes

if TYPE_CHECKING:
    from numpy.typing import NDArray

CONTACT_PROP = "kinest_contact"
#: The armature property that records the planting options of a planted take (JSON text).
PLANTED_PROP = "kinest_plant_feet"
#: The joints whose bones carry a foot's contact (left and right ankle: the foot bone in most rigs).
FOOT_JOINTS = (7, 8)
SIDES = ("L", "R")
MARKER_PREFIX = "KineST"


def contact_path(bone: str) -> str:
    return f'pose.bones["{bone}"]["{CONTACT_PROP}"]'


def contact_curves(names: Sequence[str]) -> list[tuple[str, int, str]]:
    """(data path, index, group) of the two contact F-curves, left foot first."""
    return [(contact_path(names[j]), 0, names[j]) for j in FOOT_JOINTS]


def marker_name(side: int) -> str:
    return f"{MARKER_PREFIX} {SIDES[side]}"


def prepare_bones(obj: bpy.types.Object, names: Sequence[str]) -> None:
    """Give the foot bones their ``kinest_contact`` property (0..1), which the keys then drive."""
    prepare_foot_bones(obj, [names[j] for j in FOOT_JOINTS])


def prepare_foot_bones(obj: bpy.types.Object, feet: Sequence[str]) -> None:
    """``kinest_contact`` (0..1) on the named foot bones (left, right): a take's or a character's."""
    for bone in feet:
        pb = obj.pose.bones[bone]
        if CONTACT_PROP not in pb:
            pb[CONTACT_PROP] = 0.0
        try:
            pb.id_properties_ui(CONTACT_PROP).update(
                min=0.0, max=1.0, description="1 where this foot is planted (Plant Feet locks it there)"
            )
        except (TypeError, AttributeError):
            pass


def deselect_keys(obj: bpy.types.Object) -> None:
    """Unselect the contact keys (new keys come selected), so Mark / Clear Contact act on the keys a
    user selects, not on a whole take."""
    cb = takes.object_channelbag(obj)
    if cb is None:
        return
    for path, index, _ in contact_curves(_names(obj)):
        fc = cb.fcurves.find(path, index=index)
        if fc is not None:
            fc.keyframe_points.foreach_set("select_control_point", np.zeros(len(fc.keyframe_points), dtype=bool))
            fc.keyframe_points.foreach_set("select_left_handle", np.zeros(len(fc.keyframe_points), dtype=bool))
            fc.keyframe_points.foreach_set("select_right_handle", np.zeros(len(fc.keyframe_points), dtype=bool))


def update_markers(scene: bpy.types.Scene, contacts: NDArray, frame_start: int) -> int:
    """Replace this add-on's contact markers with one at the first frame of every span; returns how many."""
    from kinest_core.postprocess.contacts import contact_spans

    ours = {marker_name(0), marker_name(1)}
    for m in [m for m in scene.timeline_markers if m.name in ours]:
        scene.timeline_markers.remove(m)
    count = 0
    for side, spans in enumerate(contact_spans(np.asarray(contacts, dtype=bool))):
        for a, _b in spans:
            scene.timeline_markers.new(marker_name(side), frame=int(frame_start + a))
            count += 1
    return count


def read_contacts(obj: bpy.types.Object) -> NDArray[np.bool_] | None:
    """(frames, 2) contacts as the take's ``kinest_contact`` keys hold them now (None if it has none)."""
    names = _names(obj)
    start, n = int(obj.get(takes.FRAME_START_PROP, 1)), int(obj.get(takes.FRAMES_PROP, 0))
    frames = np.arange(start, start + n, dtype=np.float64)
    cb = takes.object_channelbag(obj)
    if cb is None or n == 0:
        return None
    values = [takes.fcurve_values(cb, path, index, frames) for path, index, _ in contact_curves(names)]
    if any(v is None for v in values):
        return None
    return np.stack([np.asarray(v) >= 0.5 for v in values], axis=1)


def write_contacts(obj: bpy.types.Object, contacts: NDArray, scene: bpy.types.Scene) -> None:
    """Key the take's contacts (frames, 2) on its foot bones (replacing the curves) and update the markers."""
    names = _names(obj)
    start, n = int(obj.get(takes.FRAME_START_PROP, 1)), int(obj.get(takes.FRAMES_PROP, 0))
    c = np.asarray(contacts, dtype=bool)
    if c.shape != (n, 2):
        raise ValueError(f"{obj.name}: contacts for {c.shape[0]} frames, but the take has {n}")
    prepare_bones(obj, names)
    key_foot_contacts(takes.take_channelbag(obj), [names[j] for j in FOOT_JOINTS], c, start)
    deselect_keys(obj)
    update_markers(scene, c, start)


def key_foot_contacts(cb: Any, feet: Sequence[str], contacts: NDArray, frame_start: int) -> None:
    """Key contacts (frames, 2) as ``kinest_contact`` on the foot bones ``feet`` (left, right) in the
    channel bag ``cb`` (a retargeted character's new action), one key per frame."""
    c = np.asarray(contacts, dtype=bool)
    frames = np.arange(frame_start, frame_start + c.shape[0], dtype=np.float32)
    for side, bone in enumerate(feet):
        takes.write_fcurve_keys(cb, contact_path(bone), 0, frames, c[:, side].astype(np.float32), bone)


def _names(obj: bpy.types.Object) -> tuple[str, ...]:
    return keys.bone_names(str(obj.get(takes.BONE_NAMES_PROP, "SMPL")))
