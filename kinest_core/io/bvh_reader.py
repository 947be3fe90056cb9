# SPDX-License-Identifier: GPL-3.0-or-later
"""BVH as tracking input: a head + hands hierarchy (device export) or full-body mocap.

Joints are found by common names. In a full-body skeleton (one with hips/spine/shoulders)
the head and wrist poses already are body joints, so no device calibration applies; a BVH
holding only head and hand nodes is treated as device poses. BVH is Y up with the rest pose
facing +Z, whose global joint rotations are identity, which is also the SMPL convention once
the axes are converted; units are detected (usually cm).
"""

from __future__ import annotations

import re

import numpy as np

from kinest_core.io.bvh import BvhError, read_bvh
from kinest_core.io.errors import TrackingFileError
from kinest_core.io.raw import MAX_ABS_COORD, MAX_SAMPLES, RawTracking, check_size
from kinest_core.rotations import matrix_to_quat

#: Joint names tried in order (compared without case, spaces, '_', '-', ':' and namespaces).
HEAD_NAMES = ("head", "hmd", "headset", "camera", "headtop")
LEFT_NAMES = (
    "lefthand",
    "lhand",
    "leftwrist",
    "lwrist",
    "handl",
    "hand_l",
    "leftcontroller",
    "controllerleft",
    "l_hand",
    "left",
    "leftforearm",
)
RIGHT_NAMES = (
    "righthand",
    "rhand",
    "rightwrist",
    "rwrist",
    "handr",
    "hand_r",
    "rightcontroller",
    "controllerright",
    "r_hand",
    "right",
    "rightforearm",
)
_BODY_HINTS = ("hip", "spine", "pelvis", "chest", "shoulder", "arm", "neck", "leg", "knee", "thigh", "clavicle")


def _key(name: str) -> str:
    name = name.split(":")[-1].split("|")[-1]
    return re.sub(r"[\s_\-.]+", "", name).lower()


def _find(keys: list[str], names: tuple[str, ...]) -> int | None:
    for n in names:
        k = _key(n)
        if k in keys:
            return keys.index(k)
    return None


def read_bvh_tracking(path: str) -> RawTracking:
    """Head and wrist global poses from a BVH (file units, BVH axes)."""
    check_size(path)
    try:
        bvh = read_bvh(path)
    except BvhError as exc:
        raise TrackingFileError(path, str(exc).removeprefix(f"{path}").lstrip(",: "), hint="re-export the BVH") from exc
    except (ValueError, IndexError) as exc:
        raise TrackingFileError(path, f"is not a readable BVH ({exc})", hint="re-export the BVH") from exc
    if bvh.num_frames == 0:
        raise TrackingFileError(
            path, "'Frames: 0': the BVH holds a skeleton but no motion", hint="export the take with its frames"
        )
    if bvh.num_frames < 2:
        raise TrackingFileError(path, f"holds {bvh.num_frames} frame", hint="a take needs at least two frames")
    if bvh.num_frames > MAX_SAMPLES:
        raise TrackingFileError(path, f"{bvh.num_frames} frames is above the {MAX_SAMPLES} limit")
    if not np.all(np.isfinite(bvh.motion)) or np.abs(bvh.motion).max() > MAX_ABS_COORD:
        f = int(np.argmax(~(np.isfinite(bvh.motion) & (np.abs(bvh.motion) <= MAX_ABS_COORD)).all(axis=1)))
        raise TrackingFileError(path, "holds NaN, inf or absurd channel values", where=f"frame {f}")
    if not (np.isfinite(bvh.frame_time) and 1e-5 < bvh.frame_time < 10.0):
        raise TrackingFileError(path, f"Frame Time {bvh.frame_time} is not plausible", hint="it is seconds per frame")
    for name, chans in zip(bvh.names, bvh.channels, strict=True):
        pos_axes = [c[0].upper() for c in chans if c.lower().endswith("position")]
        rot_axes = [c[0].upper() for c in chans if not c.lower().endswith("position")]
        if len(set(rot_axes)) != len(rot_axes) or len(set(pos_axes)) != len(pos_axes) or len(rot_axes) > 3:
            raise TrackingFileError(
                path,
                f"joint {name!r} has channels {' '.join(chans)}: each axis may appear once",
                hint="re-export the BVH",
            )
        if any(c[:1].upper() not in "XYZ" or c[1:].lower() not in ("position", "rotation") for c in chans):
            raise TrackingFileError(path, f"joint {name!r} has an unknown channel in {' '.join(chans)}")
    keys = [_key(n) for n in bvh.names]
    idx = [_find(keys, HEAD_NAMES), _find(keys, LEFT_NAMES), _find(keys, RIGHT_NAMES)]
    if idx[0] is None:
        raise TrackingFileError(
            path,
            f"no head joint among {', '.join(bvh.names[:12])}{'...' if len(bvh.names) > 12 else ''}",
            hint="name it Head (hands: LeftHand/RightHand)",
        )
    body = sum(any(h in k for h in _BODY_HINTS) for k in keys) >= 2
    glob_r, glob_p = bvh.global_transforms()
    n = bvh.num_frames
    positions = np.zeros((n, 3, 3))
    quats = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (n, 3, 1))
    valid = np.zeros((n, 3), dtype=bool)
    for d, j in enumerate(idx):
        if j is None:
            continue
        positions[:, d] = glob_p[:, j]
        quats[:, d] = matrix_to_quat(glob_r[:, j])
        valid[:, d] = True
    times = np.arange(n, dtype=np.float64) * bvh.frame_time
    info = {
        "bvh_joints": {
            dev: (bvh.names[j] if j is not None else None)
            for dev, j in zip(("head", "left", "right"), idx, strict=True)
        },
        "bvh_kind": "full-body mocap (joint poses)" if body else "tracking (device poses)",
        "bvh_frame_time": bvh.frame_time,
    }
    return RawTracking(
        times=times,
        positions=positions,
        quats=quats,
        valid=valid,
        format="bvh",
        convention="bvh",
        units=None,
        joints=body,
        info=info,
    )
