# SPDX-License-Identifier: GPL-3.0-or-later
"""Full-body motion capture (BVH) -> SMPL-22 :class:`~kinest_core.types.Motion` for training and evaluation.

Why this is not a plain joint copy: every source skeleton has its own rest pose, joint
frames, axes and units. We keep each SMPL joint's *twist* from the source joint's global
rotation (through a constant per-joint alignment computed once from a T-pose of the
source skeleton) and then turn each bone minimally so that forward kinematics with the
subject's own bone lengths lands on the source joint positions. The result:

- Z-up metres, rest pose facing -Y with the left side at +X (see :mod:`kinest_core.skeleton`);
- ``rest_offsets``: Skeleton.neutral() bone directions with the subject's bone lengths
  (joints with several children - pelvis, spine3 - keep the subject's own geometry so
  that it stays rigid);
- 60 fps (SLERP / linear resampling), converter T-pose frames and joint-flip glitches cut
  out (a file can give several segments), floor moved to z = 0.

Conversion tolerance (measured on the data, tested in ``tests/test_mocap.py``): FK
positions match the mapped source joints within 1 mm for the CMU Daz-friendly and ACCAD
skeletons (their mapped geometry is rigid); the CMU MotionBuilder skeleton has a lower-back
joint with no SMPL counterpart, which leaves a few cm at spine1 in strong bends (the
errors do not accumulate down the chain).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core import rotations as rot
from kinest_core.io.bvh import BvhData, read_bvh
from kinest_core.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, Skeleton, children, forward_kinematics
from kinest_core.training.mocap_skeletons import (
    FPS_OVERRIDES,
    SKELETONS,
    MocapError,
    SourceSkeleton,
    detect_skeleton,
)
from kinest_core.types import Motion

Array = NDArray[np.float64]


#: BVH Y-up -> our Z-up: (x, y, z) -> (x, -z, y). A proper rotation (det +1).
YUP_TO_ZUP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
TARGET_FPS = 60.0
#: Body-joint speed (m/s, at the true rate) above which a frame step is a joint flip.
GLITCH_SPEED = 25.0
#: Segments shorter than this (seconds) after cutting are dropped.
MIN_SEGMENT_SECONDS = 1.0
#: Bumped whenever the conversion changes, so caches written by older code are redone.
CONVERTER_VERSION = 5


@dataclass
class _Mapped:
    """Per SMPL joint: the driving source global rotation and the mapped position (Z-up, m)."""

    rotations: Array  # (F, 22, 3, 3)
    positions: Array  # (F, 22, 3)


@dataclass
class ConversionReport:
    """What happened to one file: kept/dropped frames, segments, accuracy."""

    path: str
    skeleton: str
    source_fps: float
    frames: int
    kept_frames: int = 0
    segments: list[tuple[int, int]] = field(default_factory=list)  # source frame ranges [a, b)
    dropped_frames: int = 0  # T-pose frames, joint flips and too-short pieces
    floor_shift_m: float = 0.0
    max_position_error_m: float = 0.0
    mean_position_error_m: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _parse_source(desc: str) -> tuple[str, str, str | None]:
    """-> (kind, rotation joint, second joint): kind 'joint', 'end' or 'mid'."""
    if "|" in desc:
        a, b = desc.split("|", 1)
        return "mid", a.strip(), b.strip()
    if desc.endswith(".end"):
        return "end", desc[:-4], None
    return "joint", desc, None


def _map_joints(bvh: BvhData, spec: SourceSkeleton, glob_r: Array, glob_p: Array) -> _Mapped:
    """Source FK (file axes/units) -> per-SMPL-joint rotation and position in Z-up metres."""
    c = YUP_TO_ZUP
    f = glob_r.shape[0]
    rots = np.empty((f, NUM_JOINTS, 3, 3))
    pos = np.empty((f, NUM_JOINTS, 3))
    for j, name in enumerate(JOINT_NAMES):
        if name not in spec.joints:
            raise MocapError(f"skeleton {spec.name!r} has no source for SMPL joint {name!r}")
        kind, a, b = _parse_source(spec.joints[name])
        try:
            ia = bvh.index(a)
            ib = bvh.index(b) if b is not None else -1
        except ValueError as exc:
            raise MocapError(f"{bvh.path}: joint map {spec.name!r} needs joint {exc}; not in the file") from exc
        rots[:, j] = glob_r[:, ia]
        if kind == "joint":
            pos[:, j] = glob_p[:, ia]
        elif kind == "mid":
            pos[:, j] = 0.5 * (glob_p[:, ia] + glob_p[:, ib])
        else:
            if ia not in bvh.end_sites:
                raise MocapError(f"{bvh.path}: joint {a!r} has no End Site")
            pos[:, j] = glob_p[:, ia] + glob_r[:, ia] @ bvh.end_sites[ia]
    rots = c @ rots @ c.T
    pos = (pos @ c.T) * spec.unit_m
    return _Mapped(rots, pos)


def _zero_pose(bvh: BvhData) -> tuple[Array, Array]:
    """FK of the zero-rotation pose with the root at the origin: (1, J, 3, 3), (1, J, 3)."""
    n = len(bvh.names)
    glob_r = np.tile(np.eye(3), (1, n, 1, 1))
    glob_p = np.zeros((1, n, 3))
    for k, p in enumerate(bvh.parents):
        if p >= 0:
            glob_p[0, k] = glob_p[0, p] + bvh.offsets[k]
    return glob_r, glob_p


def _min_rotation(a: Array, b: Array) -> Array:
    """The smallest rotation taking direction(s) ``a`` to ``b`` (..., 3) -> (..., 3, 3)."""
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
    cross = np.cross(a, b)
    s = np.linalg.norm(cross, axis=-1, keepdims=True)
    d = np.sum(a * b, axis=-1, keepdims=True)
    angle = np.arctan2(s, d)
    # Antiparallel: any axis perpendicular to a.
    perp = np.cross(a, np.array([1.0, 0.0, 0.0]))
    perp2 = np.cross(a, np.array([0.0, 1.0, 0.0]))
    perp = np.where(np.linalg.norm(perp, axis=-1, keepdims=True) > 1e-6, perp, perp2)
    axis = np.where(
        s > 1e-9, cross / np.maximum(s, 1e-12), perp / np.maximum(np.linalg.norm(perp, axis=-1, keepdims=True), 1e-12)
    )
    return rot.axis_angle_to_matrix(axis * angle)


def _best_rotation(a: Array, b: Array, prior: float = 1e-6) -> Array:
    """Wahba / Kabsch: rotation R minimising sum |R a_i - b_i|^2; a, b (..., n, 3) -> (..., 3, 3).

    A tiny pull towards the identity (``prior`` times the summed squared lengths) settles
    the turn about the axis when all vectors are collinear (e.g. collars on the spine).
    """
    h = np.einsum("...ni,...nj->...ij", b, a)
    h = h + prior * np.sum(a * a, axis=(-1, -2))[..., None, None] * np.eye(3)
    u, _, vt = np.linalg.svd(h)
    det = np.linalg.det(u @ vt)
    fix = np.ones(h.shape[:-2] + (3,))
    fix[..., 2] = np.sign(det + 1e-300)
    return (u * fix[..., None, :]) @ vt


_CHILDREN: tuple[tuple[int, ...], ...] = tuple(tuple(children(j)) for j in range(NUM_JOINTS))
#: Weights of child bones when a joint with several children is fitted: the spine leads,
#: the collars only settle the turn about it (some rigs put the collars on the spine axis).
_CHILD_WEIGHT = np.array([1.0] * 13 + [0.1, 0.1] + [1.0] * 7)


def _neutral_directions() -> Array:
    off = Skeleton.neutral().rest_offsets
    d = off.copy()
    d[1:] /= np.linalg.norm(off[1:], axis=-1, keepdims=True)
    return d


@dataclass(frozen=True)
class Calibration:
    """Per-subject constants: alignment ``A_j`` (SMPL global = source global @ A_j) and rest offsets."""

    alignment: Array  # (22, 3, 3)
    rest_offsets: Array  # (22, 3)


def calibrate(reference: _Mapped, foot_height: float = 0.02) -> Calibration:
    """Build a T-pose of the source from a reference pose, top-down, and derive the constants.

    Each SMPL joint's source frame starts where the reference pose puts it relative to its
    parent (already straightened) and is then turned minimally so its bone points along
    the SMPL neutral direction (several children: best fit). In that T-pose every SMPL
    global rotation is the identity, so the alignment is the inverse of the T-pose source frame.
    """
    rr = reference.rotations[0]
    pp = reference.positions[0]
    targets = _neutral_directions()
    tpose = np.empty((NUM_JOINTS, 3, 3))
    rest = np.zeros((NUM_JOINTS, 3))
    for j in range(NUM_JOINTS):
        p = PARENTS[j]
        cand = rr[j] if p < 0 else tpose[p] @ rr[p].T @ rr[j]
        kids = _CHILDREN[j]
        local_vecs = [rr[j].T @ (pp[k] - pp[j]) for k in kids]  # child offsets in j's source frame
        if len(kids) == 1:
            k = kids[0]
            fix = _min_rotation(cand @ local_vecs[0], targets[k])
            tpose[j] = fix @ cand
            rest[k] = targets[k] * np.linalg.norm(local_vecs[0])
        elif len(kids) > 1:
            if j == 0:
                # The reference pose stands upright: its pelvis is the rest pelvis, turned only
                # so the hip line runs along +X. (Fitting the rigs' hip/spine triangles to
                # SMPL's instead tilts the pelvis by 10-30 degrees, differently per rig.)
                hip_line = cand @ (local_vecs[kids.index(1)] - local_vecs[kids.index(2)])
                a = np.stack([hip_line / np.linalg.norm(hip_line), np.array([0.0, 0.0, 1.0])])
                b = np.stack([np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.0, 1.0])])
            else:
                w = _CHILD_WEIGHT[list(kids), None]
                a = np.stack([cand @ v for v in local_vecs]) * w
                b = np.stack([targets[k] * np.linalg.norm(v) for k, v in zip(kids, local_vecs, strict=True)])
            fix = _best_rotation(a, b)
            tpose[j] = fix @ cand
            for k, v in zip(kids, local_vecs, strict=True):
                rest[k] = tpose[j] @ v
        else:
            tpose[j] = cand
    joints = forward_kinematics(np.tile(np.eye(3), (NUM_JOINTS, 1, 1)), rest)[1]
    lowest = float(min(joints[k, 2] for k in (7, 8, 10, 11)))
    rest[0] = np.array([0.0, 0.0, foot_height - lowest])
    return Calibration(alignment=np.swapaxes(tpose, -1, -2), rest_offsets=rest)


#: (upper segment, hinge joint, end joint, hinge axis in the upper segment's SMPL frame): flexion
#: moves the forearm forward (-Y) and the shin backward (+Y) from the T-pose.
_HINGES = (
    (16, 18, 20, np.array([0.0, 0.0, -1.0])),
    (17, 19, 21, np.array([0.0, 0.0, 1.0])),
    (1, 4, 7, np.array([1.0, 0.0, 0.0])),
    (2, 5, 8, np.array([1.0, 0.0, 0.0])),
)


def _subtree(joint: int) -> list[int]:
    out = [joint]
    for j in range(joint + 1, NUM_JOINTS):
        if PARENTS[j] in out:
            out.append(j)
    return out


def hinge_twist(mapped: _Mapped, calib: Calibration, min_bend_deg: float = 20.0, min_frames: int = 20) -> Calibration:
    """Turn each upper arm / thigh frame about its bone so the elbow / knee bends about the SMPL hinge axis.

    The hinge axis is measured in the upper segment's frame as the mean of
    ``bone x lower-bone direction`` over frames bent more than ``min_bend_deg``.
    The turn applies to the whole limb (its T-pose was built turned); it leaves every joint
    position unchanged.
    """
    local, pos = solve_pose(mapped, calib)
    glob = np.empty_like(local)
    glob[:, 0] = local[:, 0]
    for j in range(1, NUM_JOINTS):
        glob[:, j] = glob[:, PARENTS[j]] @ local[:, j]
    alignment = calib.alignment.copy()
    for upper, hinge, end, target in _HINGES:
        bone = calib.rest_offsets[hinge] / np.linalg.norm(calib.rest_offsets[hinge])
        lower = np.einsum("fba,fb->fa", glob[:, upper], pos[:, end] - pos[:, hinge])
        lower /= np.maximum(np.linalg.norm(lower, axis=-1, keepdims=True), 1e-9)
        bent = np.degrees(np.arccos(np.clip(lower @ bone, -1.0, 1.0))) > min_bend_deg
        if bent.sum() < min_frames:
            continue
        axes = np.cross(bone, lower[bent])
        h = (axes / np.linalg.norm(axes, axis=-1, keepdims=True)).mean(axis=0)
        h_perp = h - (h @ bone) * bone
        t_perp = target - (target @ bone) * bone
        if np.linalg.norm(h_perp) < 0.3 or np.linalg.norm(t_perp) < 1e-6:
            continue  # no consistent hinge (e.g. the limb never really bends)
        h_perp /= np.linalg.norm(h_perp)
        t_perp /= np.linalg.norm(t_perp)
        phi = np.arctan2(np.cross(t_perp, h_perp) @ bone, t_perp @ h_perp)
        # The whole limb of the built T-pose was turned about the bone: turn every segment back.
        turn = rot.axis_angle_to_matrix(bone * phi)
        for j in _subtree(upper):
            alignment[j] = alignment[j] @ turn
    return Calibration(alignment=alignment, rest_offsets=calib.rest_offsets)


def solve_pose(mapped: _Mapped, calib: Calibration) -> tuple[Array, Array]:
    """Per frame: local rotations (F, 22, 3, 3) and FK positions (F, 22, 3) matching ``mapped``.

    SMPL global = source global @ alignment, then each bone is turned minimally onto the
    observed child position measured from its parent's FK position (so errors never add up).
    """
    rest = calib.rest_offsets
    f = mapped.rotations.shape[0]
    glob = np.empty((f, NUM_JOINTS, 3, 3))
    pos = np.empty((f, NUM_JOINTS, 3))
    pos[:, 0] = mapped.positions[:, 0]
    for j in range(NUM_JOINTS):
        cand = mapped.rotations[:, j] @ calib.alignment[j]
        kids = _CHILDREN[j]
        if len(kids) == 1:
            k = kids[0]
            fix = _min_rotation(cand @ rest[k], mapped.positions[:, k] - pos[:, j])
            glob[:, j] = fix @ cand
        elif len(kids) > 1:
            a = np.stack([cand @ rest[k] for k in kids], axis=1)
            b = np.stack([mapped.positions[:, k] - pos[:, j] for k in kids], axis=1)
            b = (
                b
                / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-9)
                * np.linalg.norm(a, axis=-1, keepdims=True)
            )
            a = a * _CHILD_WEIGHT[list(kids), None]
            glob[:, j] = _best_rotation(a, b) @ cand
        else:
            glob[:, j] = cand
        for k in kids:
            pos[:, k] = pos[:, j] + glob[:, j] @ rest[k]
    local = np.empty_like(glob)
    local[:, 0] = glob[:, 0]
    for j in range(1, NUM_JOINTS):
        local[:, j] = np.swapaxes(glob[:, PARENTS[j]], -1, -2) @ glob[:, j]
    return local, pos


_STANDING_BONES = (
    # (from, to, wanted direction): legs and arms hanging, spine upright
    (1, 4, -1.0),
    (4, 7, -1.0),
    (2, 5, -1.0),
    (5, 8, -1.0),
    (16, 18, -1.0),
    (18, 20, -1.0),
    (17, 19, -1.0),
    (19, 21, -1.0),
    (0, 12, 1.0),
    (12, 15, 1.0),
)


def standing_frame(positions: Array) -> int:
    """Index of the frame closest to standing upright with the arms hanging (mean bone angle)."""
    score = np.zeros(positions.shape[0])
    for a, b, sign in _STANDING_BONES:
        d = positions[:, b] - positions[:, a]
        cos = sign * d[:, 2] / np.maximum(np.linalg.norm(d, axis=-1), 1e-9)
        score += np.arccos(np.clip(cos, -1.0, 1.0))
    return int(np.argmin(score))


def true_fps(path: str, header_fps: float, overrides: dict[str, float] | None = None) -> float:
    """The capture rate: the header's unless a file-name pattern in ``FPS_OVERRIDES`` says otherwise."""
    base = os.path.basename(path)
    for pattern, fps in (FPS_OVERRIDES if overrides is None else overrides).items():
        if re.search(pattern, base):
            return float(fps)
    return float(header_fps)


def good_segments(
    positions: Array, fps: float, skip: int, speed: float = GLITCH_SPEED, margin: int = 2
) -> list[tuple[int, int]]:
    """Frame ranges [a, b) free of joint flips: steps faster than ``speed`` m/s are cut out with a margin."""
    f = positions.shape[0]
    bad = np.zeros(f, dtype=bool)
    bad[:skip] = True
    if f > 1:
        v = np.linalg.norm(np.diff(positions, axis=0), axis=-1).max(axis=-1) * fps
        for i in np.nonzero(v > speed)[0]:
            bad[max(0, i - margin) : min(f, i + 1 + margin + 1)] = True
    segs: list[tuple[int, int]] = []
    start = None
    for i in range(f + 1):
        ok = i < f and not bad[i]
        if ok and start is None:
            start = i
        elif not ok and start is not None:
            segs.append((start, i))
            start = None
    return segs


def smooth_motion(local: Array, root: Array, sigma_frames: float) -> tuple[Array, Array]:
    """Gaussian smoothing over time of local rotations (F, 22, 3, 3) (via continuous quaternions) and root (F, 3)."""
    from scipy.ndimage import gaussian_filter1d

    q = rot.quat_make_continuous(rot.matrix_to_quat(local), axis=0)
    q = gaussian_filter1d(q, sigma_frames, axis=0, mode="nearest")
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return rot.quat_to_matrix(q), gaussian_filter1d(root, sigma_frames, axis=0, mode="nearest")


def resample(local: Array, root: Array, fps: float, target_fps: float = TARGET_FPS) -> tuple[Array, Array]:
    """Local rotations (F, 22, 3, 3) + root (F, 3) at ``fps`` -> wxyz quats (G, 22, 4), root (G, 3) at ``target_fps``."""
    q = rot.quat_make_continuous(rot.matrix_to_quat(local), axis=0)
    f = q.shape[0]
    if abs(fps - target_fps) < 1e-6 or f < 2:
        return q, root.copy()
    duration = (f - 1) / fps
    t = np.arange(0.0, duration + 1e-9, 1.0 / target_fps) * fps
    i0 = np.clip(np.floor(t + 1e-9).astype(int), 0, f - 1)
    i1 = np.minimum(i0 + 1, f - 1)
    frac = np.clip(t - i0, 0.0, 1.0)
    qi = rot.quat_slerp(q[i0], q[i1], frac[:, None])
    ri = root[i0] * (1 - frac[:, None]) + root[i1] * frac[:, None]
    return rot.quat_make_continuous(qi, axis=0), ri


def convert_bvh(
    path: str,
    skeleton: SourceSkeleton | str | None = None,
    target_fps: float = TARGET_FPS,
    fps: float | None = None,
    floor: str = "auto",
    min_segment_seconds: float = MIN_SEGMENT_SECONDS,
    report: list[ConversionReport] | None = None,
    smooth_s: float = 0.0,
) -> list[Motion]:
    """Convert one full-body BVH to SMPL-22 motions at ``target_fps`` (one per glitch-free segment).

    ``skeleton``: a spec, a key of :data:`SKELETONS`, or None to detect. ``fps`` overrides
    the frame rate (default: header, corrected by :data:`FPS_OVERRIDES`). ``floor``:
    ``"auto"`` moves the floor to z = 0 from the feet, ``"keep"`` leaves heights as captured.
    ``smooth_s`` > 0: Gaussian smoothing (sigma in seconds, at the source rate, before
    resampling) against marker noise; 0 (default) keeps the converted motion exact.
    """
    bvh = read_bvh(path)
    spec = SKELETONS[skeleton] if isinstance(skeleton, str) else (skeleton or detect_skeleton(bvh))
    src_fps = float(fps) if fps is not None else true_fps(path, bvh.fps)
    glob_r, glob_p = bvh.global_transforms()
    mapped = _map_joints(bvh, spec, glob_r, glob_p)
    if spec.reference == "zero":
        zr, zp = _zero_pose(bvh)
        ref = _map_joints(bvh, spec, zr, zp)
    elif spec.reference == "standing":
        k = standing_frame(mapped.positions)
        ref = _Mapped(mapped.rotations[k : k + 1], mapped.positions[k : k + 1])
    elif spec.reference == "frame0":
        ref = _Mapped(mapped.rotations[:1], mapped.positions[:1])
    else:
        raise MocapError(f"skeleton {spec.name!r}: unknown reference {spec.reference!r}")
    calib = calibrate(ref, spec.foot_height)
    if spec.hinge_twist:
        calib = hinge_twist(mapped, calib)
    rep = ConversionReport(path=path, skeleton=spec.name, source_fps=src_fps, frames=bvh.num_frames)
    segs = good_segments(mapped.positions, src_fps, spec.skip_frames)
    segs = [s for s in segs if (s[1] - s[0]) / src_fps >= min_segment_seconds]
    rep.dropped_frames = int(bvh.num_frames - spec.skip_frames - sum(b - a for a, b in segs))
    shift = 0.0
    if floor == "auto" and segs:
        idx = np.concatenate([np.arange(a, b) for a, b in segs])
        lowest = mapped.positions[idx][:, [7, 8, 10, 11], 2].min(axis=-1)
        shift = float(np.percentile(lowest, 5) - spec.foot_height)
    elif floor not in ("auto", "keep"):
        raise ValueError(f"floor must be 'auto' or 'keep', got {floor!r}")
    rep.floor_shift_m = shift
    motions: list[Motion] = []
    errs: list[Array] = []
    for a, b in segs:
        part = _Mapped(mapped.rotations[a:b], mapped.positions[a:b] - np.array([0.0, 0.0, shift]))
        local, pos = solve_pose(part, calib)
        errs.append(np.linalg.norm(pos - part.positions, axis=-1))
        root = part.positions[:, 0] - calib.rest_offsets[0]
        if smooth_s > 0:
            local, root = smooth_motion(local, root, smooth_s * src_fps)
        q, r = resample(local, root, src_fps, target_fps)
        _, joints = forward_kinematics(rot.quat_to_matrix(q), calib.rest_offsets, r)
        info = {
            "source": os.path.basename(path),
            "skeleton": spec.name,
            "source_fps": src_fps,
            "source_frames": [a, b],
            "floor_shift_m": shift,
        }
        motions.append(Motion(q, r, joints, calib.rest_offsets.copy(), fps=target_fps, info=info))
        rep.segments.append((a, b))
        rep.kept_frames += b - a
    if errs:
        e = np.concatenate([x.ravel() for x in errs])
        rep.max_position_error_m = float(e.max())
        rep.mean_position_error_m = float(e.mean())
    if report is not None:
        report.append(rep)
    return motions
