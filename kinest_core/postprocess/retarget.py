# SPDX-License-Identifier: GPL-3.0-or-later
"""Play an SMPL-22 motion on an animator's own skeleton, aligned in world space.

For every mapped bone the rest alignment ``C`` is the rotation that takes the target bone's
rest frame (its direction towards the next mapped joint, and the body's forward or up axis
around it) onto SMPL's; the bone's world rotation at a frame is then ``G @ C`` (``G`` our
joint's global rotation), nudged so it points exactly at the next mapped joint's direction
(which also covers SMPL spine joints the target lacks: their rotations are composed). So the
target's rest pose (T, A, relaxed), bone rolls and axis conventions do not matter. Unmapped
bones keep their rest pose relative to their parent, so bones inside a chain (twist, extra
spine or neck bones) share the chain's rotation. The hips move by our pelvis's motion scaled
by the ratio of hip heights (on the hips, on the rig's root bone, or in place); optional
two-bone IK brings the hands to the scaled tracked hands and the ankles to our ankles. Where
the motion has foot contacts, the legs hold each foot still through its spans (a character's
legs are built unlike ours, so copied rotations alone would slide its feet).

The result is free of Blender: per keyed bone, rotations relative to its rest in its own
axes (Blender's pose-bone quaternion; for a BVH, the file's joint rotation) and locations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from kinest_core import rotations as rot
from kinest_core.postprocess.bone_map import BoneMap, TargetSkeleton
from kinest_core.postprocess.foot_planting import held_positions
from kinest_core.skeleton import JOINT_NAMES, PARENTS, forward_kinematics
from kinest_core.types import Motion

ROOT_MOTION_MODES = ("hips", "root", "in_place")
#: The joint each joint's bone points at, down its chain (leaves: none).
AIM: dict[str, str] = {
    "spine1": "spine2", "spine2": "spine3", "spine3": "neck", "neck": "head",
    **{f"{s}_{a}": f"{s}_{b}" for s in ("left", "right") for a, b in (
        ("hip", "knee"), ("knee", "ankle"), ("ankle", "foot"),
        ("collar", "shoulder"), ("shoulder", "elbow"), ("elbow", "wrist"))},
}  # fmt: skip
#: Bones whose roll is measured against the body's up axis instead of its forward axis.
_ROLL_FROM_UP = {"left_ankle", "right_ankle", "left_foot", "right_foot"}
#: (upper, lower, end) joints of the limbs IK may bend.
IK_LIMBS = {
    "left_arm": ("left_shoulder", "left_elbow", "left_wrist"),
    "right_arm": ("right_shoulder", "right_elbow", "right_wrist"),
    "left_leg": ("left_hip", "left_knee", "left_ankle"),
    "right_leg": ("right_hip", "right_knee", "right_ankle"),
}
LIMB_SEGMENTS = {
    "left thigh": ("left_hip", "left_knee"),
    "right thigh": ("right_hip", "right_knee"),
    "left shin": ("left_knee", "left_ankle"),
    "right shin": ("right_knee", "right_ankle"),
    "left upper arm": ("left_shoulder", "left_elbow"),
    "right upper arm": ("right_shoulder", "right_elbow"),
    "left forearm": ("left_elbow", "left_wrist"),
    "right forearm": ("right_elbow", "right_wrist"),
}
CHUNK_FRAMES = 4096
_J = {n: i for i, n in enumerate(JOINT_NAMES)}


@dataclass
class RetargetResult:
    """The motion on the target: per keyed bone, rotations (F, K, 4) wxyz relative to its rest in its
    own axes, and locations (F, 3) in its own rest axes and the skeleton's units for bones that move.

    ``scale`` is the target's hip height over ours (root motion is multiplied by it); ``contacts``
    are the motion's, which the feet were held to.
    """

    skeleton: TargetSkeleton
    bone_map: BoneMap
    keyed: tuple[str, ...]
    rotations: NDArray[np.float64]
    locations: dict[str, NDArray[np.float64]]
    scale: float
    fps: float
    contacts: NDArray[np.bool_] | None = None  # (F, 2) left, right: the motion's foot contacts

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])


@dataclass
class _Plan:
    """Everything about the target that does not change per frame."""

    bones: list[int]  # bones computed, in dependency order
    joint_of: dict[int, int]  # bone -> SMPL joint whose rotation it takes (mapped and shared bones)
    aim: dict[int, tuple[int, int, int]]  # bone -> (joint, aim joint, aim bone)
    carrier: dict[int, int]  # mapped bone -> bone whose motion carries its head
    align: dict[int, NDArray[np.float64]]  # bone -> C (3, 3)
    hips: int
    root: int | None  # the bone that takes horizontal root motion in "root" mode
    scale: float
    forward: NDArray[np.float64]  # the target's body forward at rest
    smpl_rest: NDArray[np.float64]
    rest_rot: NDArray[np.float64]  # (N, 3, 3)


def _unit(v: NDArray) -> NDArray[np.float64]:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def _frame(direction: NDArray, ref: NDArray) -> NDArray[np.float64]:
    d = _unit(direction)
    s = _unit(ref - np.dot(ref, d) * d)
    return np.stack([d, s, np.cross(d, s)], axis=-1)


def _body_axes(points: dict[str, NDArray]) -> tuple[NDArray, NDArray]:
    """(forward, up) of a body from its hips, shoulders, pelvis and head."""
    left = points["left_hip"] - points["right_hip"] + points["left_shoulder"] - points["right_shoulder"]
    up = _unit(points["head"] - points["pelvis"])
    left = _unit(left - np.dot(left, up) * up)
    return np.cross(left, up), up


def _swing(a: NDArray, b: NDArray) -> NDArray[np.float64]:
    """Smallest rotations (..., 3, 3) taking unit vectors a onto b (opposite vectors: a half turn)."""
    a, b = _unit(a), _unit(b)
    v = np.cross(a, b)
    c = np.sum(a * b, axis=-1)[..., None, None]
    k = rot._hat(v)
    eye = np.broadcast_to(np.eye(3), k.shape)
    return eye + k + (k @ k) / np.maximum(1.0 + c, 1e-9)


def _plan(motion: Motion, skel: TargetSkeleton, bm: BoneMap, root_motion: str) -> _Plan:
    bm.require()
    idx = {j: skel.index(b) for j, b in bm.joints.items()}
    smpl = forward_kinematics(np.tile(np.eye(3), (22, 1, 1)), motion.rest_offsets)[1]
    s_pts = {j: smpl[_J[j]] for j in ("left_hip", "right_hip", "left_shoulder", "right_shoulder", "pelvis", "head")}
    t_pts = {j: skel.heads[idx[j]] for j in s_pts}
    s_fwd, s_up = _body_axes(s_pts)
    t_fwd, t_up = _body_axes(t_pts)
    body_s = np.stack([np.cross(s_fwd, s_up), s_fwd, s_up], axis=-1)
    body_t = np.stack([np.cross(t_fwd, t_up), t_fwd, t_up], axis=-1)
    align: dict[int, NDArray] = {idx["pelvis"]: body_s @ body_t.T}
    aim: dict[int, tuple[int, int, int]] = {}
    carrier: dict[int, int] = {}
    joint_of = {idx["pelvis"]: 0}
    for j in range(1, 22):
        name = JOINT_NAMES[j]
        if name not in idx:
            continue
        b = idx[name]
        joint_of[b] = j
        up = PARENTS[j]
        while JOINT_NAMES[up] not in idx:
            up = PARENTS[up]
        carrier[b] = idx[JOINT_NAMES[up]]
        a = AIM.get(name)
        while a is not None and a not in idx:
            a = AIM.get(a)
        if a is None:  # a leaf (hand, toe, head): aligned like the bone it hangs from
            align[b] = align[carrier[b]]
            continue
        ab = idx[a]
        ref_s, ref_t = (s_up, t_up) if name in _ROLL_FROM_UP else (s_fwd, t_fwd)
        d_t = skel.heads[ab] - skel.heads[b]
        if np.linalg.norm(d_t) < 1e-6 * skel.size:
            raise ValueError(f"bones {skel.names[b]} and {skel.names[ab]} start at the same point; map another bone")
        align[b] = _frame(smpl[_J[a]] - smpl[j], ref_s) @ _frame(d_t, ref_t).T
        aim[b] = (j, _J[a], ab)
    for bone, joint in bm.shared.items():
        b = skel.index(bone)
        joint_of[b] = _J[joint]
        align[b] = align[idx[joint]]
    hips = idx["pelvis"]
    root = None
    if root_motion == "root":
        top = skel.ancestors(hips)
        root = top[-1] if top else None
    needed = set(joint_of) | {a for b in joint_of for a in skel.ancestors(b)}
    order: list[int] = []
    done: set[int] = set()
    while len(order) < len(needed):
        progress = False
        for b in sorted(needed - done):
            dep = carrier.get(b, skel.parents[b]) if b != hips else -1
            if dep < 0 or dep in done:
                order.append(b)
                done.add(b)
                progress = True
        if not progress:
            raise ValueError("the mapping's chains loop through each other; check the mapping")
    legs = [idx[j] for j in ("left_hip", "right_hip")]
    ankles = [idx[j] for j in ("left_ankle", "right_ankle")]
    t_hip_h = float(np.mean(skel.heads[legs, 2]) - np.mean(skel.heads[ankles, 2]))  # world Z is up
    s_hip_h = float(np.mean(smpl[[1, 2], 2]) - np.mean(smpl[[7, 8], 2]))
    if t_hip_h <= 0:
        raise ValueError("the thigh bones do not start above the ankles at rest; check the mapping")
    rest_rot = skel.rest_rotations if skel.rest_rotations is not None else np.tile(np.eye(3), (len(skel.names), 1, 1))
    return _Plan(order, joint_of, aim, carrier, align, hips, root, t_hip_h / s_hip_h, t_fwd, smpl, np.asarray(rest_rot))


def _pose(
    plan: _Plan, skel: TargetSkeleton, rots: dict[int, NDArray], pelvis: NDArray, root_motion: str
) -> tuple[dict[int, NDArray], dict[int, NDArray]]:
    """World rotation deltas and head positions of the planned bones for a chunk of frames."""
    n = pelvis.shape[0]
    heads: dict[int, NDArray] = {}
    deltas: dict[int, NDArray] = {}
    hips_rest = skel.heads[plan.hips]
    move = (pelvis - plan.smpl_rest[0]) * plan.scale
    horizontal = move * np.array([1.0, 1.0, 0.0])
    if root_motion == "in_place":
        move = move - horizontal
    eye = np.broadcast_to(np.eye(3), (n, 3, 3))
    for b in plan.bones:
        p = skel.parents[b]
        deltas[b] = rots[b] if b in rots else (deltas[p] if p in deltas else eye)
        if b == plan.hips:
            heads[b] = hips_rest + move
        elif b == plan.root:
            heads[b] = skel.heads[b] + horizontal
        else:
            c = plan.carrier.get(b, p)
            if c < 0 or c not in heads:
                heads[b] = np.broadcast_to(skel.heads[b], (n, 3)).copy()
            else:
                heads[b] = heads[c] + deltas[c] @ (skel.heads[b] - skel.heads[c])
    return deltas, heads


def _two_bone_ik(
    plan: _Plan,
    skel: TargetSkeleton,
    rots: dict[int, NDArray],
    heads: dict[int, NDArray],
    bones: tuple,
    goal: NDArray,
    bend_forward: bool,
) -> None:
    """Bend upper and lower bone (in place in ``rots``) so the end's head reaches ``goal``, keeping the bend plane."""
    u, f, e = bones
    s, el, w = heads[u], heads[f], heads[e]
    l1 = float(np.linalg.norm(skel.heads[f] - skel.heads[u]))
    l2 = float(np.linalg.norm(skel.heads[e] - skel.heads[f]))
    to_goal = goal - s
    dist = np.clip(np.linalg.norm(to_goal, axis=-1), abs(l1 - l2) + 1e-9, l1 + l2 - 1e-9)
    axis = _unit(to_goal)
    bend = el - s
    bend = bend - np.sum(bend * axis, -1, keepdims=True) * axis
    weak = np.linalg.norm(bend, axis=-1) < 1e-4 * (l1 + l2)
    if np.any(weak):  # straight limb: elbows bend backwards, knees forwards (the body's rest axes, turned)
        sign = 1.0 if bend_forward else -1.0
        fallback = rots[u][weak] @ (sign * plan.forward)
        bend[weak] = fallback - np.sum(fallback * axis[weak], -1, keepdims=True) * axis[weak]
    bend = _unit(bend)
    a = (l1 * l1 - l2 * l2 + dist * dist) / (2 * dist)
    h = np.sqrt(np.maximum(l1 * l1 - a * a, 0.0))
    new_elbow = s + a[:, None] * axis + h[:, None] * bend
    rots[u] = _swing(el - s, new_elbow - s) @ rots[u]
    rots[f] = _swing(w - el, goal - new_elbow) @ rots[f]


def _chunk_pose(
    plan: _Plan,
    skeleton: TargetSkeleton,
    bone_map: BoneMap,
    motion: Motion,
    sl: slice,
    root_motion: str,
    use_ik: bool,
    hand_targets: NDArray | None,
    foot_goals: NDArray | None = None,
) -> tuple[dict[int, NDArray], dict[int, NDArray], dict[int, NDArray]]:
    """World rotations of the mapped bones, world rotation deltas and heads of the planned bones for
    the frames ``sl`` (``foot_goals``: (frames of ``sl``, 2, 3) ankle goals for the legs, or None)."""
    glob, pos = forward_kinematics(
        rot.quat_to_matrix(motion.local_rotations[sl]), motion.rest_offsets, motion.root_translation[sl]
    )
    rots = {b: glob[:, j] @ plan.align[b] for b, j in plan.joint_of.items()}
    for b, (j, ja, _ab) in plan.aim.items():
        current = rots[b] @ (skeleton.heads[_ab] - skeleton.heads[b])
        rots[b] = _swing(current, pos[:, ja] - pos[:, j]) @ rots[b]
    deltas, heads = _pose(plan, skeleton, rots, pos[:, 0], root_motion)
    if use_ik:
        targets = pos[:, [20, 21]] if hand_targets is None else np.asarray(hand_targets, dtype=np.float64)[sl]
        for limb, joints in IK_LIMBS.items():
            bones = tuple(skeleton.index(bone_map.joints[j]) for j in joints)
            goal_ours = targets[:, 0 if limb == "left_arm" else 1] if limb.endswith("arm") else pos[:, _J[joints[2]]]
            goal = heads[plan.hips] + (goal_ours - pos[:, 0]) * plan.scale
            _two_bone_ik(plan, skeleton, rots, heads, bones, goal, limb.endswith("leg"))
        deltas, heads = _pose(plan, skeleton, rots, pos[:, 0], root_motion)
    if foot_goals is not None:
        for side, limb in enumerate(("left_leg", "right_leg")):
            bones = tuple(skeleton.index(bone_map.joints[j]) for j in IK_LIMBS[limb])
            _two_bone_ik(plan, skeleton, rots, heads, bones, foot_goals[:, side], True)
        deltas, heads = _pose(plan, skeleton, rots, pos[:, 0], root_motion)
    return rots, deltas, heads


def _ankle_bones(skeleton: TargetSkeleton, bone_map: BoneMap) -> list[int]:
    return [skeleton.index(bone_map.joints[j]) for j in ("left_ankle", "right_ankle")]


def target_ankles(
    motion: Motion,
    skeleton: TargetSkeleton,
    bone_map: BoneMap,
    root_motion: str = "hips",
    use_ik: bool = False,
    hand_targets: NDArray | None = None,
) -> NDArray[np.float64]:
    """World positions (F, 2, 3) of the target's ankle bones (left, right) as :func:`retarget` places
    them before it plants the feet. Frames are independent: a caller may ask chunk by chunk."""
    plan = _plan(motion, skeleton, bone_map, root_motion)
    return _ankles(plan, skeleton, bone_map, motion, root_motion, use_ik, hand_targets)


def _ankles(
    plan: _Plan,
    skeleton: TargetSkeleton,
    bone_map: BoneMap,
    motion: Motion,
    root_motion: str,
    use_ik: bool,
    hand_targets: NDArray | None,
) -> NDArray[np.float64]:
    ankles = _ankle_bones(skeleton, bone_map)
    n = motion.num_frames
    out = np.empty((n, 2, 3))
    for a in range(0, n, CHUNK_FRAMES):
        sl = slice(a, min(a + CHUNK_FRAMES, n))
        heads = _chunk_pose(plan, skeleton, bone_map, motion, sl, root_motion, use_ik, hand_targets)[2]
        out[sl] = np.stack([heads[b] for b in ankles], axis=1)
    return out


def foot_goals(
    ankles: NDArray, contacts: NDArray, skeleton: TargetSkeleton, bone_map: BoneMap, blend_frames: int = 6
) -> NDArray[np.float64]:
    """Ankle goals (F, 2, 3) that keep the target's feet planted: ``ankles`` (:func:`target_ankles`)
    held still through each contact span at the ankle's standing height (its rest height), faded
    in and out next to the spans; elsewhere the ankles as they were."""
    standing = skeleton.heads[_ankle_bones(skeleton, bone_map), 2]
    return held_positions(ankles, contacts, standing, blend_frames)


def retarget(
    motion: Motion,
    skeleton: TargetSkeleton,
    bone_map: BoneMap,
    root_motion: str = "hips",
    use_ik: bool = False,
    hand_targets: NDArray | None = None,
    plant_feet: bool = True,
    goals: NDArray | None = None,
) -> RetargetResult:
    """The motion on ``skeleton`` (see the module doc). ``hand_targets`` (F, 2, 3): IK goals for the
    left and right wrists in our world (default: the motion's own wrists, which follow the tracking).

    Feet: with ``plant_feet`` and ``motion.contacts``, each foot of the target stays still through
    its contact spans (two-bone IK at hip and knee, :func:`foot_goals`): a character whose legs
    are built unlike ours would otherwise slide. ``goals`` (F, 2, 3) gives the ankle goals instead
    (a caller working chunk by chunk computes them once for the whole take). The result carries
    the contacts."""
    if root_motion not in ROOT_MOTION_MODES:
        raise ValueError(f"root motion {root_motion!r} is not one of {', '.join(ROOT_MOTION_MODES)}")
    plan = _plan(motion, skeleton, bone_map, root_motion)
    keyed = sorted(plan.joint_of, key=lambda b: (plan.joint_of[b], b))
    if plan.root is not None and plan.root not in keyed:
        keyed.insert(0, plan.root)
    n = motion.num_frames
    contacts = None if motion.contacts is None else np.asarray(motion.contacts, dtype=bool)
    if contacts is not None and contacts.shape != (n, 2):
        raise ValueError(f"the motion's contacts have shape {contacts.shape}; expected ({n}, 2)")
    if goals is None and plant_feet and contacts is not None and contacts.any():
        ankles = _ankles(plan, skeleton, bone_map, motion, root_motion, use_ik, hand_targets)
        goals = foot_goals(ankles, contacts, skeleton, bone_map)
    if goals is not None:
        goals = np.asarray(goals, dtype=np.float64)
        if goals.shape != (n, 2, 3):
            raise ValueError(f"foot goals have shape {goals.shape}; expected ({n}, 2, 3)")
    quats = np.empty((n, len(keyed), 4))
    locs: dict[int, NDArray] = {
        b: np.zeros((n, 3)) for b in [plan.hips, *([plan.root] if plan.root is not None else [])]
    }
    prev = None
    for a in range(0, n, CHUNK_FRAMES):
        sl = slice(a, min(a + CHUNK_FRAMES, n))
        chunk_goals = None if goals is None else goals[sl]
        _rots, deltas, heads = _chunk_pose(
            plan, skeleton, bone_map, motion, sl, root_motion, use_ik, hand_targets, chunk_goals
        )
        chunk = np.empty((sl.stop - sl.start, len(keyed), 4))
        for k, b in enumerate(keyed):
            p = skeleton.parents[b]
            r = plan.rest_rot[b]
            dp = deltas[p] if p in deltas else np.eye(3)
            local = np.swapaxes(dp, -1, -2) @ deltas[b]
            chunk[:, k] = rot.matrix_to_quat(r.T @ local @ r)
            if p in heads:
                expected = heads[p] + dp @ (skeleton.heads[b] - skeleton.heads[p])
            else:
                expected = skeleton.heads[b]
            offset = np.einsum(
                "ba,fb->fa",
                r,
                np.einsum("fba,fb->fa", np.broadcast_to(dp, (heads[b].shape[0], 3, 3)), heads[b] - expected),
            )
            if b in locs or np.max(np.abs(offset)) > 1e-6 * skeleton.size:
                locs.setdefault(b, np.zeros((n, 3)))[sl] = offset
        chunk = rot.quat_make_continuous(chunk, axis=0)
        if prev is not None:
            chunk *= np.where(np.sum(chunk[:1] * prev, axis=-1, keepdims=True) < 0, -1.0, 1.0)
        prev = chunk[-1:]
        quats[sl] = chunk
    names = tuple(skeleton.names[b] for b in keyed)
    locations = {skeleton.names[b]: v for b, v in locs.items()}
    return RetargetResult(skeleton, bone_map, names, quats, locations, plan.scale, motion.fps, contacts)


def pose_heads(result: RetargetResult, frames: NDArray | None = None) -> NDArray[np.float64]:
    """World head positions (F, N, 3) of every target bone (see :func:`pose_world`)."""
    return pose_world(result, frames)[1]


def pose_world(
    result: RetargetResult, frames: NDArray | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """World bone rotations (F, N, 3, 3) and heads (F, N, 3) by forward kinematics of the result alone
    (Blender's pose-bone rules: rest offsets in the parent's axes, location then rotation)."""
    skel = result.skeleton
    sel = np.arange(result.num_frames) if frames is None else np.asarray(frames)
    f = len(sel)
    rest = skel.rest_rotations if skel.rest_rotations is not None else np.tile(np.eye(3), (len(skel.names), 1, 1))
    key = {nm: k for k, nm in enumerate(result.keyed)}
    world = np.empty((f, len(skel.names), 3, 3))
    heads = np.empty((f, len(skel.names), 3))
    order = sorted(range(len(skel.names)), key=lambda b: len(skel.ancestors(b)))
    for b in order:
        nm = skel.names[b]
        q = rot.quat_to_matrix(result.rotations[sel, key[nm]]) if nm in key else np.eye(3)
        loc = result.locations[nm][sel] if nm in result.locations else np.zeros((f, 3))
        p = skel.parents[b]
        if p < 0:
            world[:, b] = rest[b] @ q
            heads[:, b] = skel.heads[b] + loc @ rest[b].T
        else:
            to_parent = world[:, p] @ rest[p].T  # rest-to-pose rotation of the parent
            world[:, b] = to_parent @ rest[b] @ q
            offset = skel.heads[b] - skel.heads[p] + loc @ rest[b].T
            heads[:, b] = heads[:, p] + np.einsum("fab,fb->fa", to_parent, offset)
    return world, heads


def limb_direction_errors(motion: Motion, result: RetargetResult, frames: NDArray | None = None) -> dict[str, float]:
    """Mean angle (degrees) between each limb segment's world direction on the target and on our body."""
    sel = np.arange(result.num_frames) if frames is None else np.asarray(frames)
    heads = pose_heads(result, sel)
    _, ours = forward_kinematics(
        rot.quat_to_matrix(motion.local_rotations[sel]), motion.rest_offsets, motion.root_translation[sel]
    )
    skel, joints = result.skeleton, result.bone_map.joints
    out = {}
    for seg, (a, b) in LIMB_SEGMENTS.items():
        t = _unit(heads[:, skel.index(joints[b])] - heads[:, skel.index(joints[a])])
        o = _unit(ours[:, _J[b]] - ours[:, _J[a]])
        out[seg] = float(np.degrees(np.arccos(np.clip(np.sum(t * o, -1), -1, 1))).mean())
    return out


def hand_errors(
    motion: Motion, result: RetargetResult, hand_targets: NDArray | None = None, frames: NDArray | None = None
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per frame and hand (F, 2): distance of the target's wrists from the scaled hand goals, and
    whether the goal was within the arm's reach (skeleton units)."""
    sel = np.arange(result.num_frames) if frames is None else np.asarray(frames)
    heads = pose_heads(result, sel)
    _, ours = forward_kinematics(
        rot.quat_to_matrix(motion.local_rotations[sel]), motion.rest_offsets, motion.root_translation[sel]
    )
    targets = ours[:, [20, 21]] if hand_targets is None else np.asarray(hand_targets)[sel]
    skel, joints = result.skeleton, result.bone_map.joints
    hips = heads[:, skel.index(joints["pelvis"])]
    err = np.empty((len(sel), 2))
    reach = np.empty((len(sel), 2), dtype=bool)
    for k, side in enumerate(("left", "right")):
        u, f, w = (skel.index(joints[f"{side}_{j}"]) for j in ("shoulder", "elbow", "wrist"))
        goal = hips + (targets[:, k] - ours[:, 0]) * result.scale
        err[:, k] = np.linalg.norm(heads[:, w] - goal, axis=-1)
        l1 = np.linalg.norm(skel.heads[f] - skel.heads[u])
        l2 = np.linalg.norm(skel.heads[w] - skel.heads[f])
        d = np.linalg.norm(goal - heads[:, u], axis=-1)
        reach[:, k] = (d < (l1 + l2) * 0.999) & (d > abs(l1 - l2) * 1.001)
    return err, reach
