# SPDX-License-Identifier: GPL-3.0-or-later
"""Foot locking: feet that stay planted where the contacts say so, and never go below the floor.

The network predicts rotations and the body is placed by the tracked head, so nothing holds
a standing foot still: it slides with every small error of the legs, and it may hover above or
dip under the floor. Per foot and contact span (``Motion.contacts`` or given):

- the foot gets one place and heading for the span: the ankle's least-squares place over the
  span (the foot stays put where the motion, on average, put it) and its mean heading, lowered
  or raised so the sole rests on the floor (the foot joints at their standing heights,
  :func:`~kinest_core.postprocess.contacts.standing_heights`);
- inside the span the foot keeps the pitch and roll the motion gives it (or lies flat,
  ``foot="flat"``) and rolls without slipping: the point it pivots on moves from the ankle
  (heel) to the toe joint as the heel rises, so a toe-off does not drag the toe;
- the correction (ankle offset and foot turn) fades in and out over ``blend_frames`` frames
  next to the span, continuous in position and velocity, so nothing pops;
- in every frame, a foot whose joints would go below their standing heights is lifted;
- a two-bone IK at hip and knee takes the ankle to its target (bending the knee about the
  axis it already bends around, easing off before full extension), then the ankle's local
  rotation gives the foot its orientation;
- a knee that would end below ``knee_clearance`` above the floor (kneeling) is lifted by turning
  the leg about its hip-to-ankle line, so no joint goes under the floor.

Only the hip, knee and ankle rotations change: the pelvis, spine, arms (pinned hands) and head
keep their rotations and the root keeps its translation, so the head stays on the tracked head.
Run after hand pinning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from kinest_core import rotations as rot
from kinest_core.cancel import Cancelled, CancelToken
from kinest_core.postprocess.contacts import contact_spans, standing_heights
from kinest_core.skeleton import NUM_JOINTS, PARENTS, forward_kinematics
from kinest_core.types import Motion

Array = NDArray[np.float64]

__all__ = [
    "CHUNK_FRAMES",
    "LEG_CHAINS",
    "PlantingOptions",
    "foot_targets",
    "held_positions",
    "leg_ik",
    "plant_feet",
    "planting_options",
]

#: (hip, knee, ankle, toe) joint indices of the left and the right leg.
LEG_CHAINS: tuple[tuple[int, int, int, int], ...] = ((1, 4, 7, 10), (2, 5, 8, 11))
FOOT_MODES = ("motion", "flat")
#: Frames per step of the whole-body work (forward kinematics, IK): bounds its temporaries.
CHUNK_FRAMES = 16384


@dataclass(frozen=True)
class PlantingOptions:
    """``blend_frames``: frames over which a correction fades in before a span and out after it.
    ``foot``: "motion" keeps the foot's pitch and roll as predicted, "flat" lays it flat.
    ``floor``: floor height (m). ``softness``: share of the leg's length over which the reach eases
    off before full extension. ``pivot_band``: how much higher (m) the heel must be than the toe,
    relative to standing, for the foot to pivot wholly on the toe joint. ``knee_clearance``: the
    least height (m) of a knee joint above the floor (a kneeling knee rests on its kneecap)."""

    blend_frames: int = 6
    foot: str = "motion"
    floor: float = 0.0
    softness: float = 0.02
    pivot_band: float = 0.02
    knee_clearance: float = 0.05

    def check(self) -> None:
        if self.foot not in FOOT_MODES:
            raise ValueError(f"unknown foot mode {self.foot!r}; use one of {', '.join(FOOT_MODES)}")
        if self.blend_frames < 0:
            raise ValueError(f"blend_frames is {self.blend_frames}; it must be 0 or more")


def planting_options(recorded: Any) -> PlantingOptions:
    """The options a planted motion's ``info["plant_feet"]`` records (defaults for what it lacks)."""
    if not isinstance(recorded, dict):
        return PlantingOptions()
    known = {k: v for k, v in recorded.items() if k in PlantingOptions.__dataclass_fields__}
    return PlantingOptions(**known)


def _unit(v: NDArray) -> tuple[Array, Array]:
    n = np.linalg.norm(v, axis=-1)
    return v / np.maximum(n, 1e-12)[..., None], n


def _rotvec_matrices(rotvec: NDArray) -> Array:
    flat = np.asarray(rotvec, dtype=np.float64).reshape(-1, 3)
    return Rotation.from_rotvec(flat).as_matrix().reshape(rotvec.shape[:-1] + (3, 3))


def _matrices_rotvec(mats: NDArray) -> Array:
    return Rotation.from_matrix(mats.reshape(-1, 3, 3)).as_rotvec().reshape(mats.shape[:-2] + (3,))


def _rot_z(angle: NDArray) -> Array:
    c, s = np.cos(angle), np.sin(angle)
    out = np.zeros(np.shape(angle) + (3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1], out[..., 2, 2] = c, -s, s, c, 1.0
    return out


def _smootherstep(x: NDArray) -> Array:
    x = np.clip(x, 0.0, 1.0)
    return x**3 * (x * (6 * x - 15) + 10)


def _knee_twist(hip: Array, knee: Array, ankle: Array, lowest: float) -> tuple[Array, Array]:
    """Per frame, the turn (axis (F, 3), angle (F,)) of the whole leg about its hip-to-ankle line that
    lifts a knee below ``lowest`` to that height (the smallest such turn; where none reaches it, the
    turn that lifts the knee highest). The ankle stays where it is; 0 where the knee is high enough."""
    w, _ = _unit(ankle - hip)
    rel = knee - hip
    along = np.sum(rel * w, axis=-1, keepdims=True) * w
    perp = rel - along
    a, b = perp[:, 2], np.cross(w, perp)[:, 2]  # knee height over the turn: a cos t + b sin t + const
    need = lowest - hip[:, 2] - along[:, 2]
    radius = np.maximum(np.hypot(a, b), 1e-12)
    top = np.arctan2(b, a)
    half = np.arccos(np.clip(need / radius, -1.0, 1.0))
    turns = np.stack([top - half, top + half], axis=-1)
    turns = (turns + np.pi) % (2 * np.pi) - np.pi
    angle = np.take_along_axis(turns, np.argmin(np.abs(turns), axis=-1)[:, None], axis=-1)[:, 0]
    return w, np.where(knee[:, 2] < lowest, angle, 0.0)


def leg_ik(
    local: Array,
    glob: Array,
    pos: Array,
    chain: tuple[int, int, int, int],
    target: NDArray,
    softness: float,
    knee_floor: float | None = None,
) -> Array:
    """Turn hip and knee (in ``local``, in place) so the ankle reaches ``target`` (F, 3) where it can;
    ``glob``/``pos``: global rotations and joint positions before. Returns the knee's new global rotation.

    Reach eases off over the last ``softness`` of the leg's length beyond what the leg already
    spans, so a target the leg already meets leaves it as it is, and a target out of reach gets a
    nearly straight leg pointing at it without the knee flickering. With ``knee_floor`` (a
    height), a knee that would end below it is lifted by turning the whole leg about its
    hip-to-ankle line (the knee points more sideways; the ankle and the pelvis stay).
    """
    h, k, a, _ = chain
    hip, knee, ankle = pos[:, h], pos[:, k], pos[:, a]
    upper, lower = knee - hip, ankle - knee
    l1, l2 = np.linalg.norm(upper, axis=-1), np.linalg.norm(lower, axis=-1)
    length = l1 + l2
    span = np.linalg.norm(ankle - hip, axis=-1)
    dist = np.linalg.norm(target - hip, axis=-1)
    start = np.minimum(np.maximum(span, length * (1.0 - softness)), length * (1.0 - 1e-6))
    soft = np.maximum(length - start, 1e-9)
    eased = start + soft * (1.0 - np.exp(-np.maximum(dist - start, 0.0) / soft))
    reach = np.clip(np.where(dist > start, eased, dist), np.abs(l1 - l2) + 1e-6, length * (1.0 - 1e-6))
    now = np.arccos(np.clip((l1**2 + l2**2 - span**2) / (2 * l1 * l2), -1.0, 1.0))
    want = np.arccos(np.clip((l1**2 + l2**2 - reach**2) / (2 * l1 * l2), -1.0, 1.0))
    axis, bent = _unit(np.cross(upper, lower))
    hinge = glob[:, h, :, 0]  # a straight leg bends about the thigh's own left-right axis
    axis = np.where((bent > 1e-6 * l1 * l2)[:, None], axis, hinge)
    r_knee = _rotvec_matrices(axis * (now - want)[:, None])
    new_ankle = knee + np.einsum("fab,fb->fa", r_knee, lower)
    u, _ = _unit(new_ankle - hip)
    v, _ = _unit(target - hip)
    swing_axis, sin = _unit(np.cross(u, v))
    angle = np.arctan2(sin, np.sum(u * v, axis=-1))
    r_hip = _rotvec_matrices(swing_axis * angle[:, None])
    if knee_floor is not None:
        new_knee = hip + np.einsum("fab,fb->fa", r_hip, upper)
        new_ankle = new_knee + np.einsum("fab,fb->fa", r_hip @ r_knee, lower)
        if np.any(new_knee[:, 2] < knee_floor):
            twist_axis, twist = _knee_twist(hip, new_knee, new_ankle, knee_floor)
            r_hip = _rotvec_matrices(twist_axis * twist[:, None]) @ r_hip
    g_hip = r_hip @ glob[:, h]
    g_knee = r_hip @ r_knee @ glob[:, k]
    local[:, h] = np.swapaxes(glob[:, PARENTS[h]], -1, -2) @ g_hip
    local[:, k] = np.swapaxes(g_hip, -1, -2) @ g_knee
    return g_knee


def _heading(foot_rot: Array, toe_offset: Array) -> Array:
    """Yaw (rad) of the foot's forward direction (ankle to toe joint, projected on the floor)."""
    fwd = foot_rot @ toe_offset
    return np.arctan2(fwd[..., 1], fwd[..., 0])


def _span_targets(
    ankle_pos: Array, foot_rot: Array, stand_ankle: float, stand_toe: float, toe_offset: Array, opts: PlantingOptions
) -> tuple[Array, Array]:
    """Ankle positions (n, 3) and foot rotations (n, 3, 3) for the frames of one span, from the
    motion's ankle positions (n, 3) and foot (ankle) rotations (n, 3, 3) in that span."""
    yaw = np.unwrap(_heading(foot_rot, toe_offset))
    mean_yaw = float(yaw.mean())
    if opts.foot == "flat":
        rest_yaw = float(np.arctan2(toe_offset[1], toe_offset[0]))
        want = np.broadcast_to(_rot_z(np.asarray(mean_yaw - rest_yaw)), foot_rot.shape).copy()
    else:
        want = _rot_z(mean_yaw - yaw) @ foot_rot
    # Pivot point (in the foot's frame, from the ankle): the ankle while the heel is down, the toe
    # joint once the heel has risen above the toe (relative to standing) by ``pivot_band``.
    rel_a = ankle_pos[:, 2] - stand_ankle
    rel_t = (ankle_pos + foot_rot @ toe_offset)[:, 2] - stand_toe
    w = _smootherstep((rel_a - rel_t) / max(opts.pivot_band, 1e-6))
    pivot = w[:, None] * toe_offset[None, :]
    # Rolling without slip: the pivot's world point at frame i is where the foot of frame i-1 has
    # that point, so ankle_i = ankle_{i-1} + (R_{i-1} - R_i) pivot_i.
    step = np.zeros((len(w), 3))
    step[1:] = np.einsum("fab,fb->fa", want[:-1] - want[1:], pivot[1:])
    rolled = np.cumsum(step, axis=0)  # ankle relative to its place in the span's first frame
    ankle = rolled + (ankle_pos - rolled).mean(axis=0)  # least-squares place over the span
    toe = ankle + want @ toe_offset
    gap = np.minimum(ankle[:, 2] - stand_ankle, toe[:, 2] - stand_toe) - opts.floor
    ankle[:, 2] -= float(np.median(gap))  # the sole rests on the floor
    return ankle, want


def _fade(values: Array, rate: Array, frames: int) -> tuple[Array, Array]:
    """A correction leaving a span: from ``values`` (3,) changing by ``rate`` (3,) per frame to 0 over
    ``frames`` frames (cubic Hermite: position and velocity continuous at the span's end, at rest at
    the end of the fade). Returns the curve (frames, 3) and its weight (frames,) for averaging overlaps."""
    tau: Array = np.arange(1, frames + 1, dtype=np.float64) / (frames + 1)
    sq = tau * tau
    h00: Array = 2.0 * sq * tau - 3.0 * sq + 1.0
    h10: Array = sq * tau - 2.0 * sq + tau
    return h00[:, None] * values + (h10 * (frames + 1))[:, None] * rate, h00


def _blend_in_out(
    frames: int, spans: list[tuple[int, int]], deltas: list[Array], rvecs: list[Array], blend: int
) -> tuple[Array, Array]:
    """Per-frame ankle offset (F, 3) and foot turn as a rotation vector (F, 3): each span's own
    inside it, faded from its end values to 0 over ``blend`` frames outside (:func:`_fade`;
    overlapping fades averaged, never summed past full strength)."""
    delta = np.zeros((frames, 3))
    rvec = np.zeros((frames, 3))
    weight = np.zeros(frames)
    for (s, e), d, r in zip(spans, deltas, rvecs, strict=True):
        if blend <= 0:
            continue
        n_before, n_after = min(blend, s), min(blend, frames - e)
        for values, out in ((d, delta), (r, rvec)):
            rate_in = values[0] - values[1] if len(values) > 1 else np.zeros(3)
            rate_out = values[-1] - values[-2] if len(values) > 1 else np.zeros(3)
            curve, _ = _fade(values[0], rate_in, blend)
            out[s - n_before : s] += curve[:n_before][::-1]
            curve, _ = _fade(values[-1], rate_out, blend)
            out[e : e + n_after] += curve[:n_after]
        _, w = _fade(np.zeros(3), np.zeros(3), blend)
        weight[s - n_before : s] += w[:n_before][::-1]
        weight[e : e + n_after] += w[:n_after]
    norm = np.maximum(weight, 1.0)[:, None]
    delta /= norm
    rvec /= norm
    for (s, e), d, r in zip(spans, deltas, rvecs, strict=True):
        delta[s:e] = d
        rvec[s:e] = r
    return delta, rvec


def _chunks(frames: int, size: int | None = None) -> list[slice]:
    step = max(1, size or CHUNK_FRAMES)
    return [slice(a, min(frames, a + step)) for a in range(0, frames, step)]


def _feet_in_motion(quats: NDArray, offsets: Array, root: NDArray, chunk: int | None) -> tuple[Array, Array]:
    """The motion's ankle positions (F, 2, 3) and foot (ankle) rotations (F, 2, 3, 3), left then right."""
    f = quats.shape[0]
    ankles = [chain[2] for chain in LEG_CHAINS]
    pos_out = np.empty((f, 2, 3))
    rot_out = np.empty((f, 2, 3, 3))
    for sl in _chunks(f, chunk):
        glob, pos = forward_kinematics(rot.quat_to_matrix(quats[sl]), offsets, root[sl])
        pos_out[sl], rot_out[sl] = pos[:, ankles], glob[:, ankles]
    return pos_out, rot_out


def foot_targets(
    ankle_pos: NDArray, foot_rot: NDArray, contacts: NDArray, rest_offsets: NDArray, options: PlantingOptions
) -> tuple[Array, Array]:
    """Where each ankle should be (F, 2, 3) and how each foot should turn (F, 2, 3, 3): held in the
    contact spans, faded in and out next to them, lifted above the floor everywhere (module doc)."""
    opts = options
    f = ankle_pos.shape[0]
    offsets = np.asarray(rest_offsets, dtype=np.float64)
    stand = standing_heights(offsets)
    targets = np.empty((f, 2, 3))
    turns = np.empty((f, 2, 3, 3))
    for side, (_, _, a, t) in enumerate(LEG_CHAINS):
        toe_offset = offsets[t]
        pos, frot = ankle_pos[:, side], foot_rot[:, side]
        spans = contact_spans(contacts[:, side : side + 1])[0]
        deltas: list[Array] = []
        rvecs: list[Array] = []
        for s, e in spans:
            ankle, want = _span_targets(pos[s:e], frot[s:e], stand[a], stand[t], toe_offset, opts)
            deltas.append(ankle - pos[s:e])
            rvecs.append(_matrices_rotvec(want @ np.swapaxes(frot[s:e], -1, -2)))
        delta, rvec = _blend_in_out(f, spans, deltas, rvecs, opts.blend_frames)
        want_rot = _rotvec_matrices(rvec) @ frot
        target = pos + delta
        # Nothing below the floor: lift the whole foot until both its joints are at or above standing height.
        toe = target + want_rot @ toe_offset
        lift = np.maximum(0.0, np.maximum(stand[a] - target[:, 2], stand[t] - toe[:, 2]) + opts.floor)
        target[:, 2] += lift
        targets[:, side], turns[:, side] = target, want_rot
    return targets, turns


def held_positions(
    positions: NDArray, contacts: NDArray, standing: NDArray | None = None, blend_frames: int = 6
) -> Array:
    """Per foot, positions (F, 2, 3) held still in each contact span: at the span's least-squares
    place (its mean), at height ``standing[side]`` where given (the sole on the floor), faded in
    and out over ``blend_frames`` frames next to the span like :func:`foot_targets`.

    For a skeleton that is not ours (a retargeted character's ankles): the place is where the
    motion, on average, put that foot; outside the spans and fades the positions are unchanged."""
    pos = np.asarray(positions, dtype=np.float64)
    c = np.asarray(contacts, dtype=bool)
    f = pos.shape[0]
    if pos.shape != (f, 2, 3) or c.shape != (f, 2):
        raise ValueError(f"positions {pos.shape} and contacts {c.shape} must be (F, 2, 3) and (F, 2)")
    out = pos.copy()
    for side in range(2):
        spans = contact_spans(c[:, side : side + 1])[0]
        deltas: list[Array] = []
        for s, e in spans:
            place = pos[s:e, side].mean(axis=0)
            if standing is not None:
                place[2] = float(standing[side])
            deltas.append(place - pos[s:e, side])
        still = [np.zeros((e - s, 3)) for s, e in spans]
        delta, _ = _blend_in_out(f, spans, deltas, still, blend_frames)
        out[:, side] += delta
    return out


def plant_feet(
    motion: Motion,
    contacts: NDArray | None = None,
    options: PlantingOptions | None = None,
    cancel: CancelToken | None = None,
    chunk_frames: int | None = None,
    in_place: bool = False,
) -> Motion:
    """A copy of ``motion`` with planted feet (module doc); ``contacts`` (F, 2) default to ``motion.contacts``.

    The result carries the contacts it was planted with (``Motion.contacts``) and
    ``info["plant_feet"]`` (the options), so a later pass (smoothing) can plant again with the same
    spans. The whole-body work runs ``chunk_frames`` (default ``CHUNK_FRAMES``) frames at a time
    (only the feet's own arrays span the take); ``in_place`` writes the result into ``motion``'s own
    rotation and position arrays instead of new ones (for a caller that owns them), so planting an
    hour-long take costs little beyond the take itself. ``cancel`` is checked between chunks.
    """
    c = motion.contacts if contacts is None else contacts
    if c is None:
        raise ValueError("plant_feet needs contacts: pass them or give the motion its contacts first")
    opts = options or PlantingOptions()
    opts.check()
    quats = np.asarray(motion.local_rotations, dtype=np.float64)
    f = quats.shape[0]
    c = np.asarray(c, dtype=bool)
    if c.shape != (f, 2):
        raise ValueError(f"contacts have shape {c.shape}; expected ({f}, 2): one column per foot (left, right)")
    offsets = np.asarray(motion.rest_offsets, dtype=np.float64)
    root = np.asarray(motion.root_translation, dtype=np.float64)
    ankle_pos, foot_rot = _feet_in_motion(quats, offsets, root, chunk_frames)
    targets, turns = foot_targets(ankle_pos, foot_rot, c, offsets, opts)
    del ankle_pos, foot_rot
    if in_place and quats is motion.local_rotations and motion.joint_positions.shape == (f, NUM_JOINTS, 3):
        q_out, positions = quats, np.asarray(motion.joint_positions)
    else:
        q_out, positions = np.empty_like(quats), np.empty((f, NUM_JOINTS, 3))
    prev = None
    for sl in _chunks(f, chunk_frames):
        if cancel is not None and cancel.cancelled:
            raise Cancelled("foot planting cancelled")
        local = rot.quat_to_matrix(quats[sl])
        glob, pos = forward_kinematics(local, offsets, root[sl])
        for side, chain in enumerate(LEG_CHAINS):
            g_knee = leg_ik(local, glob, pos, chain, targets[sl, side], opts.softness, opts.floor + opts.knee_clearance)
            local[:, chain[2]] = np.swapaxes(g_knee, -1, -2) @ turns[sl, side]
        q = rot.quat_make_continuous(rot.matrix_to_quat(local), axis=0)
        if prev is not None:  # signs continue those of the chunk before
            q *= np.where(np.sum(q[:1] * prev, axis=-1, keepdims=True) < 0, -1.0, 1.0)
        prev = q[-1:].copy()
        q_out[sl] = q
        positions[sl] = forward_kinematics(local, offsets, root[sl])[1]
    info = dict(motion.info)
    info["plant_feet"] = asdict(opts)
    return Motion(
        local_rotations=q_out,
        root_translation=root.copy(),
        joint_positions=positions,
        rest_offsets=offsets.copy(),
        fps=motion.fps,
        info=info,
        contacts=c.copy(),
    )
