# SPDX-License-Identifier: GPL-3.0-or-later
"""Motion -> an ordinary Blender armature with one slotted action (Blender data on the main thread only).

The armature's bone heads sit on the SMPL-22 joints of the performer's rest pose. Blender
bones point along their own Y axis, so a joint's local rotation L (identity at rest in the
core's frame) becomes the pose-bone rotation B^T L B, where B is the bone's rest matrix:
then every bone's armature-space frame is G @ B (G the joint's global rotation) and its head
lands on the core's joint position. Keys are written whole-array with ``foreach_set``.

Baking is split so that an hour-long take neither freezes Blender nor leaves half a take
behind: :func:`plan_bake` prepares the take without Blender (on the reconstruction's worker
thread: the curves, the predicted rest frames, the jitter summary), :class:`BakeJob` computes
each bone's keys as it writes its F-curves, a few per main-thread step, into an action nothing
uses yet, and only its last step changes the scene. :func:`bake_motion` does all of it at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import bpy
import numpy as np
from bpy_extras import anim_utils
from mathutils import Vector

if TYPE_CHECKING:
    from numpy.typing import NDArray

    from kinest_core.jitter import JitterSummary
    from kinest_core.types import Motion

#: Marks IDs this add-on made, so re-running replaces only its own results.
TAKE_PROP = "kinest_take"
ROLE_PROP = "kinest_role"
COLLECTION_NAME = "KineST"

#: Bone names per preset, in SMPL-22 joint order.
BONE_NAME_PRESETS: dict[str, tuple[str, ...]] = {
    "SMPL": (
        "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
        "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
        "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist",
    ),
    "MIXAMO": tuple(
        "mixamorig:" + n
        for n in (
            "Hips", "LeftUpLeg", "RightUpLeg", "Spine", "LeftLeg", "RightLeg", "Spine1",
            "LeftFoot", "RightFoot", "Spine2", "LeftToeBase", "RightToeBase", "Neck", "LeftShoulder",
            "RightShoulder", "Head", "LeftArm", "RightArm", "LeftForeArm", "RightForeArm",
            "LeftHand", "RightHand",
        )
    ),
    "UNREAL": (
        "pelvis", "thigh_l", "thigh_r", "spine_01", "calf_l", "calf_r", "spine_02", "foot_l",
        "foot_r", "spine_03", "ball_l", "ball_r", "neck_01", "clavicle_l", "clavicle_r", "head",
        "upperarm_l", "upperarm_r", "lowerarm_l", "lowerarm_r", "hand_l", "hand_r",
    ),
}  # fmt: skip

BONE_NAME_ITEMS = [
    ("SMPL", "SMPL", "SMPL joint names (pelvis, left_hip, ...)"),
    ("MIXAMO", "Mixamo-style", "mixamorig:Hips, mixamorig:LeftUpLeg, ... for Mixamo retargeting"),
    ("UNREAL", "Unreal-style", "pelvis, thigh_l, ... as on the UE mannequin"),
]

#: The child a bone's tail points at (the rest are leaves: feet, head, hands).
_TAIL_CHILD = {
    0: 3,
    1: 4,
    2: 5,
    3: 6,
    4: 7,
    5: 8,
    6: 9,
    7: 10,
    8: 11,
    9: 12,
    12: 15,
    13: 16,
    14: 17,
    16: 18,
    17: 19,
    18: 20,
    19: 21,
}


def rest_joint_positions(rest_offsets: NDArray) -> NDArray[np.float64]:
    """Rest-pose joint positions (22, 3) of a body, through the core's forward kinematics."""
    from kinest_core.skeleton import NUM_JOINTS, forward_kinematics

    return forward_kinematics(np.tile(np.eye(3), (NUM_JOINTS, 1, 1)), rest_offsets)[1]


def bone_layout(rest_offsets: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Heads, tails and roll-reference Z axes (each (22, 3)) of the rest armature.

    Tails point at the chain child; leaves continue their limb (hands), point forward (feet)
    or up (head). Each bone's Z axis faces forward (-Y) or, for bones that point forward,
    up (+Z), so rolls are consistent on both sides for retargeting tools.
    """
    from kinest_core.skeleton import HEAD, PARENTS, Skeleton

    heads = rest_joint_positions(rest_offsets)
    scale = Skeleton(rest_offsets=np.asarray(rest_offsets, dtype=np.float64)).scale
    tails = np.empty_like(heads)
    for j in range(len(heads)):
        if j in _TAIL_CHILD:
            tails[j] = heads[_TAIL_CHILD[j]]
        elif j == HEAD:
            tails[j] = heads[j] + np.array([0.0, 0.0, 0.13 * scale])
        elif j in (10, 11):  # feet: forward along the floor
            tails[j] = heads[j] + np.array([0.0, -0.10 * scale, 0.0])
        else:  # hands continue the forearm
            d = heads[j] - heads[PARENTS[j]]
            tails[j] = heads[j] + 0.35 * d
    zref = np.tile(np.array([0.0, -1.0, 0.0]), (len(heads), 1))
    direction = tails - heads
    direction /= np.linalg.norm(direction, axis=-1, keepdims=True)
    forwardish = np.abs(direction[:, 1]) > 0.7
    zref[forwardish] = np.array([0.0, 0.0, 1.0])
    return heads, tails, zref


def _collection(scene: bpy.types.Scene) -> bpy.types.Collection:
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


def ensure_armature(
    context: bpy.types.Context, take: str, rest_offsets: NDArray, names: Sequence[str]
) -> bpy.types.Object:
    """Build (or rebuild in place) the take's armature on the performer's rest pose.

    An existing armature of the same take keeps its object (and so the user's parenting and
    modifiers); its bones are rebuilt. Bones are not connected so that each head sits
    exactly on its joint.
    """
    scene = context.scene
    obj = find_take_object(take, "armature")
    if obj is None or obj.type != "ARMATURE":
        data = bpy.data.armatures.new(f"KineST_{take}")
        obj = bpy.data.objects.new(f"KineST_{take}", data)
        obj[TAKE_PROP] = take
        obj[ROLE_PROP] = "armature"
        data[TAKE_PROP] = take
        _collection(scene).objects.link(obj)
    elif obj.name not in context.view_layer.objects:
        _collection(scene).objects.link(obj)
    data = obj.data
    data.display_type = "STICK"
    heads, tails, zref = bone_layout(rest_offsets)
    from kinest_core.skeleton import PARENTS

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


def rest_frames(rest_offsets: NDArray) -> NDArray[np.float64]:
    """The armature-space rest rotations (22, 3, 3) Blender gives the bones :func:`ensure_armature` builds.

    Each bone's Y axis points from head to tail and ``align_roll`` turns its Z axis onto the
    reference axis made perpendicular to Y; X completes the right-handed frame. Agrees with
    Blender's stored bone matrices to float precision (a test checks it), and needs no Blender,
    so a take's keys can be computed before (and without) touching the scene.
    """
    heads, tails, zref = bone_layout(rest_offsets)
    y = tails - heads
    y /= np.linalg.norm(y, axis=-1, keepdims=True)
    z = zref - np.sum(zref * y, axis=-1, keepdims=True) * y
    z /= np.linalg.norm(z, axis=-1, keepdims=True)
    return np.stack([np.cross(y, z), y, z], axis=-1)


#: Frames per chunk of the key maths (bounds its temporaries on hour-long takes).
CHUNK_FRAMES = 16384


def pose_channels(motion: Motion, rest: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(root location (F, 3) in the pelvis bone's rest frame, bone quaternions (F, 22, 4) wxyz, sign-continuous).

    The pose-bone rotation B^T L B is the quaternion product conj(b) l b (b the rest rotation's
    quaternion): a fixed linear map of l per bone, applied ``CHUNK_FRAMES`` frames at a time;
    signs start with w >= 0 and each chunk continues the last frame of the one before.
    """
    rest = np.asarray(rest, dtype=np.float64)
    return root_location(motion.root_translation, rest), bone_quaternions(motion.local_rotations, rest)


def root_location(root_translation: NDArray, rest: NDArray) -> NDArray[np.float64]:
    """The root bone's location keys (F, 3): the root translation in the pelvis bone's rest frame."""
    return np.asarray(root_translation, dtype=np.float64) @ np.asarray(rest, dtype=np.float64)[0]  # B0^T T


def bone_quaternions(local_rotations: NDArray, rest: NDArray) -> NDArray[np.float64]:
    """Pose-bone quaternions (F, J, 4) of joints whose local rotations are ``local_rotations`` (F, J, 4)
    and whose bones' armature-space rest rotations are ``rest`` (J, 3, 3).

    Each bone is independent of the others, so one bone at a time (``J = 1``) gives exactly that
    bone's part of all of them at once.
    """
    from kinest_core import rotations as rot

    rest = np.asarray(rest, dtype=np.float64)
    b = rot.matrix_to_quat(rest)[:, None, :]  # (J, 1, 4)
    basis = np.eye(4)[None]  # (1, 4, 4): row k is the unit quaternion e_k
    # maps[j, k] = conj(b_j) e_k b_j, so conj(b_j) l b_j = sum_k l_k maps[j, k] = l @ maps[j]
    maps = rot.quat_multiply(rot.quat_multiply(rot.quat_conjugate(b), basis), b)  # (J, 4, 4)
    local = np.asarray(local_rotations, dtype=np.float64)
    n = local.shape[0]
    quats = np.empty((n, len(rest), 4))
    prev = None
    for a in range(0, n, CHUNK_FRAMES):
        lq = rot.quat_normalize(local[a : a + CHUNK_FRAMES])
        c = np.matmul(lq[:, :, None, :], maps)[:, :, 0]  # the row vector l times each bone's map
        c *= np.where(c[..., :1] < 0, -1.0, 1.0)
        c = rot.quat_make_continuous(c, axis=0)
        if prev is not None:
            c *= np.where(np.sum(c[:1] * prev, axis=-1, keepdims=True) < 0, -1.0, 1.0)
        prev = c[-1:]
        quats[a : a + CHUNK_FRAMES] = c
    return quats


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
    fc.keyframe_points.foreach_set("interpolation", np.full(n, _LINEAR, dtype=np.int32))
    fc.update()
    return fc


# Enum value of 'LINEAR' in Keyframe.interpolation (CONSTANT=0, LINEAR=1, BEZIER=2...).
_LINEAR = 1


def _retire_old_action(
    name: str, take: str, obj: bpy.types.Object | None, keep: bpy.types.Action | None = None
) -> None:
    """Free ``name`` for a new action of the take: this add-on's old one goes (or, if others use it, is renamed)."""
    old = bpy.data.actions.get(name)
    if old is None or old == keep or old.get(TAKE_PROP) != take:
        return
    if obj is not None and obj.animation_data is not None and obj.animation_data.action == old:
        obj.animation_data.action = None
    if old.users == 0 or (old.users == 1 and old.use_fake_user):
        bpy.data.actions.remove(old)
    else:  # someone else uses it: keep theirs, make ours under a new name
        old.name = name + ".old"


def new_action(name: str, take: str, obj: bpy.types.Object) -> tuple[bpy.types.Action, bpy.types.ActionChannelbag]:
    """A fresh slotted action for ``obj`` (replacing this add-on's previous one of the same name), assigned."""
    _retire_old_action(name, take, obj)
    action = bpy.data.actions.new(name)
    action[TAKE_PROP] = take
    slot = action.slots.new(id_type="OBJECT", name=obj.name)
    ad = obj.animation_data or obj.animation_data_create()
    ad.action = action
    ad.action_slot = slot
    cb = anim_utils.action_ensure_channelbag_for_slot(action, slot)
    return action, cb


#: Armature custom properties written by the bake (rest offsets let a take be read back as a Motion).
REST_PROP = "kinest_rest_offsets"
JITTER_PROP = "kinest_jitter"
#: Marks the action a running bake is filling (so a lookup by name never takes someone else's).
BAKE_TOKEN_PROP = "kinest_bake_token"


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
    _bone: tuple[int, NDArray[np.float64]] | None = field(default=None, init=False, repr=False)

    @property
    def names(self) -> tuple[str, ...]:
        return BONE_NAME_PRESETS[self.bone_names]

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
        """The values (frames,) of F-curve ``k``: root location, then w, x, y, z per bone, then jitter per bone.

        A bone's four rotation curves share one computation (kept until another bone's is asked for).
        """
        bones = len(self.names)
        if k < 3:
            values = root_location(self.root_translation, self.rest)[:, k]
        elif k < 3 + 4 * bones:
            j, i = divmod(k - 3, 4)
            if self._bone is None or self._bone[0] != j:
                self._bone = (j, bone_quaternions(self.local_rotations[:, j : j + 1], self.rest[j : j + 1])[:, 0])
            values = self._bone[1][:, i]
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

    names = BONE_NAME_PRESETS[bone_names]
    rest_offsets = np.asarray(motion.rest_offsets, dtype=np.float64)
    root = names[0]
    curves = [(f'pose.bones["{root}"].location', i, root) for i in range(3)]
    curves += [(f'pose.bones["{nm}"].rotation_quaternion', i, nm) for nm in names for i in range(4)]
    summary = jitter_summary(motion.joint_positions, motion.fps) if jitter else None
    if summary is not None:
        curves += [(f'pose.bones["{nm}"]["{JITTER_PROP}"]', 0, nm) for nm in names]
    return BakePlan(
        take=take,
        bone_names=bone_names,
        frame_start=int(frame_start),
        fps=float(motion.fps),
        rest_offsets=rest_offsets,
        rest=rest_frames(rest_offsets),
        curves=curves,
        local_rotations=np.asarray(motion.local_rotations, dtype=np.float64),
        root_translation=np.asarray(motion.root_translation, dtype=np.float64),
        joint_positions=np.asarray(motion.joint_positions, dtype=np.float64),
        jitter=summary,
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
        if action is None or action.get(BAKE_TOKEN_PROP) != self._token:
            raise RuntimeError("the take's new action went away during the bake (undo or file load)")
        return action

    def _channelbag(self, action: bpy.types.Action) -> bpy.types.ActionChannelbag:
        return anim_utils.action_ensure_channelbag_for_slot(action, action.slots[0])

    def _begin(self) -> None:
        action = bpy.data.actions.new(f"KineST_{self.plan.take}")
        action.use_fake_user = True  # nothing uses it until the last step
        action[BAKE_TOKEN_PROP] = self._token
        action[TAKE_PROP] = self.plan.take
        action.slots.new(id_type="OBJECT", name=f"KineST_{self.plan.take}")
        self._action_name = action.name

    def _write(self, cb: bpy.types.ActionChannelbag, k: int) -> None:
        path, index, group = self.plan.curves[k]
        write_fcurve_keys(cb, path, index, self._frames, self.plan.curve_values(k), group)

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
        obj = ensure_armature(context, plan.take, plan.rest_offsets, names)
        rest = rest_matrices(obj, names)
        if not np.allclose(rest, plan.rest, atol=1e-5):  # Blender built other bone frames than predicted
            plan.key_rotations(rest)
            cb = self._channelbag(action)
            for k in range(3 + 4 * len(names)):
                self._write(cb, k)
            plan.release()
        name = f"KineST_{plan.take}"
        _retire_old_action(name, plan.take, obj, keep=action)
        action.name = name
        ad = obj.animation_data or obj.animation_data_create()
        ad.action = action
        ad.action_slot = action.slots[0]
        action.use_fake_user = False
        del action[BAKE_TOKEN_PROP]
        self._action_name = ""
        for pb in obj.pose.bones:  # keys hold everything: clear leftovers of a previous run
            pb.location = (0.0, 0.0, 0.0)
            pb.rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
            pb.scale = (1.0, 1.0, 1.0)
        n = plan.num_frames
        obj["kinest_fps"] = plan.fps
        obj["kinest_bone_names"] = plan.bone_names
        obj[REST_PROP] = plan.rest_offsets.ravel().tolist()
        obj["kinest_frame_start"] = plan.frame_start
        obj["kinest_frames"] = n
        obj["kinest_bake_id"] = int(obj.get("kinest_bake_id", 0)) + 1
        if plan.jitter is not None:
            _store_jitter(obj, plan.jitter, names, plan.joint_positions, plan.frame_start)
        else:
            for key in [k for k in obj.keys() if k.startswith("kinest_jitter")]:
                del obj[key]
        if self.body:
            _build_body(context, obj, plan, self.smpl_model)
        set_scene_timing(context.scene, plan.fps, plan.frame_start, n)
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

    from .body import ensure_body

    heads, tails, _z = bone_layout(plan.rest_offsets)
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
    from . import jitter_view

    for name in names:
        pb = obj.pose.bones[name]
        pb[JITTER_PROP] = 0.0
        try:
            pb.id_properties_ui(JITTER_PROP).update(
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


def _curve_values(cb: bpy.types.ActionChannelbag, path: str, index: int, frames: NDArray) -> NDArray[np.float64]:
    """A curve's values on ``frames``: its keys when there is one per frame, else Blender's evaluation."""
    fc = cb.fcurves.find(path, index=index)
    if fc is None:
        raise ValueError(f"the take's action has no curve {path}[{index}]; bake the take again")
    n = len(fc.keyframe_points)
    if n == len(frames):
        co = np.empty(2 * n, dtype=np.float32)
        fc.keyframe_points.foreach_get("co", co)
        if np.allclose(co[0::2], frames):
            return co[1::2].astype(np.float64)
    return np.array([fc.evaluate(float(f)) for f in frames], dtype=np.float64)


def take_channelbag(obj: bpy.types.Object) -> bpy.types.ActionChannelbag:
    ad = obj.animation_data
    if ad is None or ad.action is None or ad.action_slot is None:
        raise ValueError(f"{obj.name} has no action: reconstruct the take first")
    return anim_utils.action_ensure_channelbag_for_slot(ad.action, ad.action_slot)


def motion_from_armature(obj: bpy.types.Object) -> Motion:
    """The take as the armature's action holds it now (hand edits included), as a core ``Motion``.

    Inverts :func:`pose_channels`: local rotation L = B Q B^T, root translation T = loc B0^T,
    then the core's forward kinematics for the joint positions.
    """
    from kinest_core import rotations as rot
    from kinest_core.skeleton import forward_kinematics
    from kinest_core.types import Motion

    if REST_PROP not in obj or "kinest_frames" not in obj:
        raise ValueError(f"{obj.name} is not a KineST bake: reconstruct the take first")
    names = BONE_NAME_PRESETS[str(obj.get("kinest_bone_names", "SMPL"))]
    rest_offsets = np.asarray(obj[REST_PROP], dtype=np.float64).reshape(-1, 3)
    start, n = int(obj.get("kinest_frame_start", 1)), int(obj["kinest_frames"])
    frames = np.arange(start, start + n, dtype=np.float64)
    cb = take_channelbag(obj)
    rest = rest_matrices(obj, names)
    quats = np.stack(
        [
            np.stack([_curve_values(cb, f'pose.bones["{nm}"].rotation_quaternion', i, frames) for i in range(4)], -1)
            for nm in names
        ],
        axis=1,
    )
    loc = np.stack([_curve_values(cb, f'pose.bones["{names[0]}"].location', i, frames) for i in range(3)], -1)
    pose = rot.quat_to_matrix(rot.quat_normalize(quats))
    local = np.einsum("jab,fjbc,jdc->fjad", rest, pose, rest)  # B Q B^T
    root = loc @ rest[0].T
    _, positions = forward_kinematics(local, rest_offsets, root)
    q = rot.quat_make_continuous(rot.matrix_to_quat(local), axis=0)
    return Motion(q, root, positions, rest_offsets, float(obj.get("kinest_fps", 60.0)), info={"source": obj.name})


def set_scene_timing(scene: bpy.types.Scene, fps: float, frame_start: int, num_frames: int) -> None:
    """Scene fps and frame range matching a take (fps_base keeps non-integer rates exact)."""
    rounded = max(1, round(fps))
    scene.render.fps = rounded
    scene.render.fps_base = rounded / fps
    scene.frame_start = frame_start
    scene.frame_end = frame_start + max(num_frames, 1) - 1


def armature_joint_positions(
    context: bpy.types.Context, obj: bpy.types.Object, names: Sequence[str], frames: Sequence[int]
) -> NDArray[np.float64]:
    """World positions (len(frames), 22, 3) of the bone heads at the given frames (for checks)."""
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
