# SPDX-License-Identifier: GPL-3.0-or-later
"""The bake of a take: a Motion -> keys on the take's armature, in steps a user can cancel.

Baking is split so that an hour-long take neither freezes Blender nor leaves half a take
behind: :func:`plan_bake` prepares the take without Blender (on the reconstruction's worker
thread: the curves, the predicted rest frames, the jitter summary), :class:`BakeJob` computes
each bone's keys (:mod:`.keys`) as it writes its F-curves (:mod:`.takes`), a few per
main-thread step, into an action nothing uses yet, and only its last step changes the scene
(the armature of :mod:`.armature`, the body, the jitter view). :func:`bake_motion` does all
of it at once.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import bpy
import numpy as np

from . import armature, contacts, jitter_view, keys, takes
from .body import ensure_body

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from kinest_core.jitter import JitterSummary
    from kinest_core.types import Motion


@dataclass
class BakePlan:
    """Every key of a take's action, computed from a Motion without Blender.

    :func:`plan_bake` touches no ``bpy`` data, so the reconstruction's worker thread makes the
    plan (the jitter summary, the most expensive part); the main thread then copies each
    curve's values (:meth:`curve_values`) into an F-curve (:class:`BakeJob`). The values are
    made one bone at a time as they are written, never all at once: an hour-long take's would
    be another 100 MB on top of Blender's keyframes.
    """

    take: str
    bone_names: str
    frame_start: int
    fps: float
    rest_offsets: NDArray[np.float64]
    rest: NDArray[np.float64]  # (22, 3, 3) the bones' armature-space rest rotations (predicted)
    curves: list[tuple[str, int, str]]  # (data path, index, group) per F-curve, in writing order
    local_rotations: NDArray[np.float64]  # (frames, 22, 4): the rotation keys come from these
    root_translation: NDArray[np.float64]
    joint_positions: NDArray[np.float64]
    jitter: JitterSummary | None = None
    contacts: NDArray[np.bool_] | None = None  # (frames, 2): keyed last, as each foot bone's kinest_contact
    planted: str = ""  # the planting options of a planted motion (JSON), stored on the armature
    _bone: tuple[int, NDArray[np.float64]] | None = field(default=None, init=False, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return keys.BONE_NAME_PRESETS[self.bone_names]

    @property
    def num_frames(self) -> int:
        return int(self.local_rotations.shape[0])

    @property
    def num_keys(self) -> int:
        return len(self.curves) * self.num_frames

    @property
    def frames(self) -> NDArray[np.float32]:
        return np.arange(self.frame_start, self.frame_start + self.num_frames, dtype=np.float32)

    def curve_values(self, k: int) -> NDArray[np.float32]:
        """The values (frames,) of F-curve ``k``: root location, then w, x, y, z per bone, then jitter per
        bone, then the two feet's contacts (0/1).

        A bone's four rotation curves share one computation (kept until another bone's is asked for).
        """
        bones = len(self.names)
        if k < 3:
            values = keys.root_location(self.root_translation, self.rest)[:, k]
        elif k < 3 + 4 * bones:
            j, i = divmod(k - 3, 4)
            if self._bone is None or self._bone[0] != j:
                self._bone = (j, keys.bone_quaternions(self.local_rotations[:, j : j + 1], self.rest[j : j + 1])[:, 0])
            values = self._bone[1][:, i]
        elif self.contacts is not None and len(self.curves) - 2 <= k < len(self.curves):
            values = self.contacts[:, k - len(self.curves) + 2].astype(np.float64)
        elif self.jitter is not None and k < len(self.curves):
            values = self.jitter.per_frame_joint[:, k - 3 - 4 * bones]
        else:
            raise IndexError(f"the plan has {len(self.curves)} curves, not {k + 1}")
        return values.astype(np.float32)

    def release(self) -> None:
        """Drop the last bone's rotation values (the bake has written them)."""
        self._bone = None

    def key_rotations(self, rest: NDArray) -> None:
        """Key the location and rotations for bones whose rest rotations are ``rest`` from now on."""
        self.rest = np.asarray(rest, dtype=np.float64)
        self._bone = None


def plan_bake(
    motion: Motion, take: str, bone_names: str = "SMPL", frame_start: int = 1, jitter: bool = True
) -> BakePlan:
    """The keys of a take (thread-safe: no ``bpy``): root location, bone quaternions, per-bone jitter."""
    from kinest_core.jitter import jitter_summary

    names = keys.bone_names(bone_names)
    rest_offsets = np.asarray(motion.rest_offsets, dtype=np.float64)
    root = names[0]
    curves = [(takes.location_path(root), i, root) for i in range(3)]
    curves += [(takes.rotation_path(nm), i, nm) for nm in names for i in range(4)]
    summary = jitter_summary(motion.joint_positions, motion.fps) if jitter else None
    if summary is not None:
        curves += [(takes.jitter_path(nm), 0, nm) for nm in names]
    if motion.contacts is not None:
        curves += contacts.contact_curves(names)
    planted = motion.info.get("plant_feet")
    return BakePlan(
        take=take,
        bone_names=bone_names,
        frame_start=int(frame_start),
        fps=float(motion.fps),
        rest_offsets=rest_offsets,
        rest=keys.rest_frames(rest_offsets),
        curves=curves,
        local_rotations=np.asarray(motion.local_rotations, dtype=np.float64),
        root_translation=np.asarray(motion.root_translation, dtype=np.float64),
        joint_positions=np.asarray(motion.joint_positions, dtype=np.float64),
        jitter=summary,
        contacts=None if motion.contacts is None else np.asarray(motion.contacts, dtype=bool),
        planted=json.dumps(planted) if isinstance(planted, dict) else "",
    )


class BakeJob:
    """Writes a plan's F-curves a few at a time on the main thread, then assembles the take in one step.

    Until that last step the only new data is one unassigned action kept by a fake user and
    marked with a token, so :meth:`cancel` at any point leaves the scene as it was. Between
    steps the action is found again by name and token: an undo or a file load in between makes
    the bake fail or vanish cleanly, never write into the wrong data.
    """

    def __init__(self, plan: BakePlan, body: bool = True, smpl_model: str = "") -> None:
        self.plan = plan
        self.body = body
        self.smpl_model = smpl_model
        self.done = 0  # F-curves written
        self.total = len(plan.curves)
        self.obj_name = ""  # the armature, once assembled
        self.finished = False
        self._token = uuid.uuid4().hex
        self._action_name = ""
        self._frames = plan.frames

    def _action(self) -> bpy.types.Action:
        action = bpy.data.actions.get(self._action_name) if self._action_name else None
        if action is None or action.get(takes.BAKE_TOKEN_PROP) != self._token:
            raise RuntimeError("the take's new action went away during the bake (undo or file load)")
        return action

    def _channelbag(self, action: bpy.types.Action) -> bpy.types.ActionChannelbag:
        return takes.slot_channelbag(action, action.slots[0])

    def _begin(self) -> None:
        action = bpy.data.actions.new(f"KineST_{self.plan.take}")
        action.use_fake_user = True  # nothing uses it until the last step
        action[takes.BAKE_TOKEN_PROP] = self._token
        action[takes.TAKE_PROP] = self.plan.take
        action.slots.new(id_type="OBJECT", name=f"KineST_{self.plan.take}")
        self._action_name = action.name

    def _write(self, cb: bpy.types.ActionChannelbag, k: int) -> None:
        path, index, group = self.plan.curves[k]
        takes.write_fcurve_keys(cb, path, index, self._frames, self.plan.curve_values(k), group)

    def step(self, context: bpy.types.Context, budget_s: float | None = 0.1) -> bool:
        """Write F-curves for about ``budget_s`` seconds (None: all); True once the take is assembled."""
        if self.finished:
            return True
        t0 = time.perf_counter()
        if not self._action_name:
            self._begin()
        cb = self._channelbag(self._action())
        while self.done < self.total:
            self._write(cb, self.done)
            self.done += 1
            if self.done == self.total:
                self.plan.release()
            if budget_s is not None and time.perf_counter() - t0 >= budget_s:
                return False
        self._assemble(context)
        self.finished = True
        return True

    def run(self, context: bpy.types.Context) -> bpy.types.Object:
        """The whole bake in one call."""
        self.step(context, None)
        return bpy.data.objects[self.obj_name]

    def cancel(self) -> None:
        """Remove what the bake made so far (nothing, once it has finished)."""
        if self.finished or not self._action_name:
            return
        try:
            action = self._action()
        except RuntimeError:
            return
        bpy.data.actions.remove(action)
        self._action_name = ""

    def _assemble(self, context: bpy.types.Context) -> None:
        """The one step that changes the scene: armature, action assignment, properties, body, timing."""
        plan, names = self.plan, self.plan.names
        action = self._action()
        obj = armature.ensure_armature(context, plan.take, plan.rest_offsets, names)
        rest = armature.rest_matrices(obj, names)
        if not np.allclose(rest, plan.rest, atol=1e-5):  # Blender built other bone frames than predicted
            plan.key_rotations(rest)
            cb = self._channelbag(action)
            for k in range(3 + 4 * len(names)):
                self._write(cb, k)
            plan.release()
        name = f"KineST_{plan.take}"
        takes.retire_old_action(name, plan.take, [obj], keep=action)
        action.name = name
        ad = obj.animation_data or obj.animation_data_create()
        ad.action = action
        ad.action_slot = action.slots[0]
        action.use_fake_user = False
        del action[takes.BAKE_TOKEN_PROP]
        self._action_name = ""
        for pb in obj.pose.bones:  # keys hold everything: clear leftovers of a previous run
            pb.location = (0.0, 0.0, 0.0)
            pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
            pb.scale = (1.0, 1.0, 1.0)
        n = plan.num_frames
        obj[takes.FPS_PROP] = plan.fps
        obj[takes.BONE_NAMES_PROP] = plan.bone_names
        obj[takes.REST_PROP] = plan.rest_offsets.ravel().tolist()
        obj[takes.FRAME_START_PROP] = plan.frame_start
        obj[takes.FRAMES_PROP] = n
        obj[takes.BAKE_ID_PROP] = int(obj.get(takes.BAKE_ID_PROP, 0)) + 1
        if plan.jitter is not None:
            _store_jitter(obj, plan.jitter, names, plan.joint_positions, plan.frame_start)
        else:
            for key in [k for k in obj.keys() if k.startswith(takes.JITTER_PROP)]:
                del obj[key]
        if plan.contacts is not None:
            contacts.prepare_bones(obj, names)
            contacts.deselect_keys(obj)
            contacts.update_markers(context.scene, plan.contacts, plan.frame_start)
        if plan.planted:
            obj[contacts.PLANTED_PROP] = plan.planted
        elif contacts.PLANTED_PROP in obj:
            del obj[contacts.PLANTED_PROP]
        if self.body:
            _build_body(context, obj, plan, self.smpl_model)
        takes.set_scene_timing(context.scene, plan.fps, plan.frame_start, n)
        self.obj_name = obj.name


def bake_motion(
    context: bpy.types.Context,
    motion: Motion,
    take: str,
    bone_names: str = "SMPL",
    frame_start: int = 1,
    body: bool = True,
    jitter: bool = True,
    smpl_model: str = "",
) -> bpy.types.Object:
    """Bake a motion onto the take's armature: bones, one slotted action, scene range and fps.

    ``jitter`` also keys each pose bone's ``kinest_jitter`` in the same action and stores the
    summary on the armature (what the panel, bone colours and trails show); ``body`` builds
    the low-poly body mesh skinned to the armature (or, with ``smpl_model``, the user's SMPL mesh;
    if that fails the built-in body is used and ``kinest_body_warning`` on the armature says why).
    The same work as a :class:`BakeJob` in one call (the add-on's Reconstruct runs it in steps).
    """
    plan = plan_bake(motion, take, bone_names, frame_start, jitter=jitter)
    return BakeJob(plan, body=body, smpl_model=smpl_model).run(context)


def _build_body(context: bpy.types.Context, obj: bpy.types.Object, plan: BakePlan, smpl_model: str) -> None:
    from kinest_core.skeleton import Skeleton

    heads, tails, _z = keys.bone_layout(plan.rest_offsets)
    scale = Skeleton(rest_offsets=plan.rest_offsets).scale
    if "kinest_body_warning" in obj:
        del obj["kinest_body_warning"]
    try:
        ensure_body(context, obj, plan.take, heads, tails, plan.names, scale, smpl_model)
    except (ImportError, OSError, ValueError) as exc:
        if not smpl_model:
            raise
        obj["kinest_body_warning"] = f"SMPL body not used: {exc}"
        ensure_body(context, obj, plan.take, heads, tails, plan.names, scale)


def _store_jitter(
    obj: bpy.types.Object, summary: JitterSummary, names: Sequence[str], positions: NDArray, start: int
) -> None:
    """Each pose bone's ``kinest_jitter`` property (keyed in the take's action) and the take's summary.

    The curves live in the take's own action, so the Graph Editor shows where each bone shakes
    and an FBX/BVH export or a new bake carries or replaces them with the rest of the take.
    """
    for name in names:
        pb = obj.pose.bones[name]
        pb[takes.JITTER_PROP] = 0.0
        try:
            pb.id_properties_ui(takes.JITTER_PROP).update(
                min=0.0, soft_max=50.0, description="Jitter of this joint (100 m/s^3, the metric's unit)"
            )
        except (TypeError, AttributeError):
            pass
    obj["kinest_jitter_mean"] = summary.mean
    obj["kinest_jitter_per_joint"] = summary.per_joint.tolist()
    obj["kinest_jitter_worst_joints"] = [int(j) for j in summary.worst_joints]
    for key in ("kinest_jitter_worst_frames", "kinest_jitter_worst_values"):
        if key in obj:
            del obj[key]
    if summary.worst_frames:  # ID properties cannot hold empty arrays
        obj["kinest_jitter_worst_frames"] = [start + int(f) for f in summary.worst_frames]
        obj["kinest_jitter_worst_values"] = [float(summary.per_frame[f]) for f in summary.worst_frames]
    jitter_view.remember(obj, positions, summary.per_frame_joint, start)
