# SPDX-License-Identifier: GPL-3.0-or-later
"""Hand pinning: two-bone IK that puts the predicted wrists on the tracked wrists.

The network predicts whole-body rotations, and its wrists land a few centimetres from the
trackers on mocap (and further on real recordings), although the wrist positions are known
exactly. Per arm and frame this bends the elbow (about the axis the prediction already bends
it around) until shoulder-to-wrist has the tracked length, then turns the shoulder so the wrist
meets the target. Only the shoulder and elbow rotations change; bone lengths, the rest of the
body and the wrist's own local rotation are kept. Targets out of reach get a straight arm
pointing at them. ``weights`` below 1 apply part of each correction (for frames next to lost
tracking, so pinning fades in and out instead of popping).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage
from scipy.spatial.transform import Rotation

from kinest_core.skeleton import HEAD, PARENTS, forward_kinematics

__all__ = ["ARM_CHAINS", "pin_wrists", "tracking_weights"]

#: (shoulder, elbow, wrist) joint indices of the left and right arm, in tracked-device order.
ARM_CHAINS: tuple[tuple[int, int, int], ...] = ((16, 18, 20), (17, 19, 21))


#: Soft reach (share of the arm's length): near full extension the elbow angle swings wildly for a
#: millimetre of reach, so the last part of the reach eases in and the hand stops short instead.
SOFTNESS = 0.1


def _soft_reach(distance: NDArray, arm: NDArray, softness: float) -> NDArray[np.float64]:
    """Shoulder-to-wrist distance to aim for: ``distance`` up to ``arm * (1 - softness)``, then
    approaching the full ``arm`` length exponentially (continuous, with a continuous slope)."""
    soft = np.maximum(arm * softness, 1e-9)
    start = arm - soft
    eased = start + soft * (1.0 - np.exp(-np.maximum(distance - start, 0.0) / soft))
    return np.where(distance > start, eased, distance) if softness > 0 else distance


def _rotvec_matrices(rotvec: NDArray) -> NDArray[np.float64]:
    flat = rotvec.reshape(-1, 3)
    return Rotation.from_rotvec(flat).as_matrix().reshape(rotvec.shape[:-1] + (3, 3))


def _unit(v: NDArray) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    n = np.linalg.norm(v, axis=-1)
    return v / np.maximum(n, 1e-12)[..., None], n


def pin_wrists(
    local_rotations: NDArray,
    rest_offsets: NDArray,
    wrist_from_head: NDArray,
    weights: NDArray | None = None,
    softness: float = SOFTNESS,
) -> NDArray[np.float64]:
    """Local rotations (F, 22, 3, 3) with the arms bent so the wrists reach their targets.

    ``wrist_from_head`` (F, 2, 3): where the left and right wrist should be relative to the head
    joint, in world axes (the body is placed by its head, so only this offset matters).
    ``rest_offsets`` (22, 3): the skeleton the motion will be posed on. ``weights`` (F, 2) in
    [0, 1]: how much of each arm's correction to apply (default: all of it). ``softness``: share
    of the arm's length over which reaching eases off before full extension (:func:`_soft_reach`).
    """
    local = np.array(local_rotations, dtype=np.float64)
    f = local.shape[0]
    w = np.ones((f, 2)) if weights is None else np.clip(np.asarray(weights, dtype=np.float64), 0.0, 1.0)
    glob, pos = forward_kinematics(local, rest_offsets)
    targets = pos[:, HEAD, None, :] + np.asarray(wrist_from_head, dtype=np.float64)
    for arm, (s, e, wr) in enumerate(ARM_CHAINS):
        shoulder, elbow, wrist, target = pos[:, s], pos[:, e], pos[:, wr], targets[:, arm]
        upper, fore = elbow - shoulder, wrist - elbow
        l1, l2 = np.linalg.norm(upper, axis=-1), np.linalg.norm(fore, axis=-1)
        reach = _soft_reach(np.linalg.norm(target - shoulder, axis=-1), l1 + l2, softness)
        reach = np.clip(reach, np.abs(l1 - l2) + 1e-6, (l1 + l2) * (1.0 - 1e-6))
        span = np.linalg.norm(wrist - shoulder, axis=-1)
        # Interior elbow angles now and wanted (law of cosines); bend by the difference.
        now = np.arccos(np.clip((l1**2 + l2**2 - span**2) / (2 * l1 * l2), -1.0, 1.0))
        want = np.arccos(np.clip((l1**2 + l2**2 - reach**2) / (2 * l1 * l2), -1.0, 1.0))
        axis, bent = _unit(np.cross(upper, fore))
        # A straight arm has no bend axis: bend across the plane of upper arm and target.
        fallback, _ = _unit(np.cross(upper, target - shoulder))
        axis = np.where((bent > 1e-6 * l1 * l2)[:, None], axis, fallback)
        r_elbow = _rotvec_matrices(axis * ((now - want) * w[:, arm])[:, None])
        new_wrist = elbow + np.einsum("fab,fb->fa", r_elbow, fore)
        # Then swing the whole arm about the shoulder onto the target.
        a, _ = _unit(new_wrist - shoulder)
        b, _ = _unit(target - shoulder)
        swing_axis, sin = _unit(np.cross(a, b))
        angle = np.arctan2(sin, np.sum(a * b, axis=-1)) * w[:, arm]
        r_shoulder = _rotvec_matrices(swing_axis * angle[:, None])
        g_shoulder = r_shoulder @ glob[:, s]
        g_elbow = r_shoulder @ r_elbow @ glob[:, e]
        local[:, s] = np.swapaxes(glob[:, PARENTS[s]], -1, -2) @ g_shoulder
        local[:, e] = np.swapaxes(g_shoulder, -1, -2) @ g_elbow
    return local


def tracking_weights(valid: NDArray, ramp_frames: int = 15) -> NDArray[np.float64]:
    """(F, 2) pinning weights for the wrists from per-device validity (F, 3) (head, left, right):
    0 on frames where a hand's tracking is lost, rising linearly to 1 over ``ramp_frames`` frames
    away from any lost frame."""
    valid = np.asarray(valid, dtype=bool)
    out = np.ones((valid.shape[0], 2))
    for arm in range(2):
        ok = valid[:, arm + 1]
        if not ok.all():
            dist = ndimage.distance_transform_edt(ok)  # frames to the nearest lost frame (0 on it)
            out[:, arm] = np.clip(dist / max(1, ramp_frames), 0.0, 1.0)
    return out
