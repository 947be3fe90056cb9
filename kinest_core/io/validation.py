# SPDX-License-Identifier: GPL-3.0-or-later
"""Plausibility checks on device poses, with thresholds from facts about human bodies and VR.

Every threshold is a property of people or headsets, not of the test files:

- arm reach: the median head-to-hand distance of someone holding controllers is 0.15-1.0 m;
  a head above the floor sits 0.8-2.3 m up (checked in :mod:`kinest_core.io.units`)
- speed: the head rarely moves faster than a jog (2.5 m/s) and turns faster than ~600 deg/s
  only in brief saccade-like flicks, so a 99th percentile above either is not a person; hands
  peak near 20-25 m/s only in elite throws (Beat Saber swings reach ~17 m/s at the controller), so
  both hands' 99th percentiles above 25 m/s are not either. Speeds are only judged when the units
  look right (a scale error is reported as such, not as a time error)
- sample rate: headsets report poses at their display rate (60-144 Hz); even a log that drops
  every other frame stays above 25 Hz, and none runs above 500 Hz
- handedness: controllers are held in front of the face and point away from the body, roughly
  along the forearm; mirroring the forward axis flips both (the controllers end up behind the
  face, pointing back at the shoulder). The score ``(fraction in front - 0.5) + mean cosine
  (controller forward, shoulder->controller)`` is positive for a real take and negative for its
  mirror image, so the threshold is 0, the symmetric point, not a fitted value. A left-right
  mirror puts the left controller right of the right one in most frames
- rotation: people keep their eyes level (head roll beyond 30 deg is rare; the neck's lateral
  range is ~45 deg), and a head tilted more than 50 deg from upright in most frames is not
  a worn headset; both expose wrong quaternion orders and Euler conventions
- frozen: a tracked device never reports a bit-identical pose for a full second while in use
- time scale: only a CSV's time column (or the rate assumed without one) can be in the wrong
  unit. A BVH's Frame Time, a .bsor's game clock and KineST's own .npz times are part of the
  format, so speeds there are the motion's own (a mocap actor runs, a first mocap frame may jump
  from the calibration pose) and are not reported as a time problem

Each warning names the reader options that act on it as :class:`~kinest_core.fixes.Fix` data,
so every interface spells them its own way.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.fixes import Fix
from kinest_core.io.resample import find_runs
from kinest_core.rotations import matrix_to_axis_angle
from kinest_core.types import DEVICES, TrackingWarning

HEAD_SPEED_MAX = 2.5  # m/s, 99th percentile
HEAD_TURN_MAX_DEG = 600.0  # deg/s, 99th percentile
HAND_SPEED_MAX = 25.0  # m/s, 99th percentile of the slower hand
RATE_RANGE_HZ = (25.0, 500.0)
FRONT_FRACTION_MIN = 0.5
HEAD_ROLL_P90_MAX_DEG = 30.0
HEAD_TILT_MEDIAN_MAX_DEG = 50.0
FROZEN_MIN_S = 1.0
#: Formats whose time stamps are part of the format (BVH Frame Time, .bsor game clock, KineST .npz).
TIME_FROM_FORMAT: tuple[str, ...] = ("bvh", "bsor", "npz")
#: The preset with the other handedness and the same up axis, for HANDEDNESS_SUSPECT's fix.
MIRRORED_CONVENTION: dict[str, str] = {"openxr": "unity", "openvr": "unity", "bvh": "unity", "unity": "openxr"}
#: Seconds per unit of a CSV time column.
_TIME_SCALES: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}


def _pct(x: NDArray, q: float) -> float:
    return float(np.percentile(x, q)) if x.size else 0.0


def motion_stats(times: NDArray, positions: NDArray, rotations: NDArray, valid: NDArray) -> dict[str, Any]:
    """The numbers the checks use (also reported in ``info['checks']``)."""
    st: dict[str, Any] = {}
    dt = np.diff(times)
    st["rate_hz"] = float(1.0 / np.median(dt))
    pair = valid[1:] & valid[:-1]
    speeds = []
    for d in range(3):
        ok = pair[:, d]
        v = np.linalg.norm(np.diff(positions[:, d], axis=0), axis=-1)[ok] / dt[ok]
        speeds.append(_pct(v, 99) if v.size > 10 else None)
    st["speed_p99_m_s"] = speeds
    ok = pair[:, 0]
    rel = np.swapaxes(rotations[:-1, 0], -1, -2) @ rotations[1:, 0]
    w = np.linalg.norm(matrix_to_axis_angle(rel[ok]), axis=-1) / dt[ok]
    st["head_turn_p99_deg_s"] = float(np.degrees(_pct(w, 99)))
    h = valid[:, 0]
    rh = rotations[h, 0]
    st["head_roll_p90_deg"] = float(np.degrees(_pct(np.abs(np.arcsin(np.clip(rh[:, 2, 0], -1, 1))), 90)))
    st["head_tilt_median_deg"] = float(np.degrees(np.median(np.arccos(np.clip(rh[:, 2, 2], -1, 1)))))
    fronts = []
    for d in (1, 2):
        okd = h & valid[:, d]
        if okd.sum() >= 10:
            local = np.einsum("nba,nb->na", rotations[okd, 0], positions[okd, d] - positions[okd, 0])
            fronts.append(local[:, 1] < 0)  # canonical forward is -Y
    st["hands_in_front_fraction"] = float(np.mean(np.concatenate(fronts))) if fronts else None
    cosines = []
    for d in (1, 2):
        okd = h & valid[:, d]
        if okd.sum() >= 10:
            shoulder = positions[okd, 0] - np.array([0.0, 0.0, 0.25])  # below the head, between the shoulders
            arm = positions[okd, d] - shoulder
            arm /= np.maximum(np.linalg.norm(arm, axis=-1, keepdims=True), 1e-9)
            cosines.append(np.einsum("na,na->n", -rotations[okd, d][:, :, 1], arm))
    st["controller_pointing_cos"] = float(np.mean(np.concatenate(cosines))) if cosines else None
    ff = st["hands_in_front_fraction"]
    pc = st["controller_pointing_cos"]
    st["handedness_score"] = None if ff is None or pc is None else float(ff - 0.5 + pc)
    both = h & valid[:, 1] & valid[:, 2]
    if both.sum() >= 10:
        sep = positions[both, 1] - positions[both, 2]  # left minus right controller
        st["left_on_left_fraction"] = float(np.mean(np.einsum("nb,nb->n", rotations[both, 0][:, :, 0], sep) > 0))
    else:
        st["left_on_left_fraction"] = None
    return st


def validate_devices(
    times: NDArray,
    positions: NDArray,
    rotations: NDArray,
    valid: NDArray,
    *,
    joints: bool = False,
    info: dict[str, Any] | None = None,
) -> list[TrackingWarning]:
    """Warnings for device world poses (metres, Z up, canonical device axes) at the original samples."""
    info = info if info is not None else {}
    out: list[TrackingWarning] = []
    st = motion_stats(times, positions, rotations, valid)
    info["checks"] = st

    if info.get("units_plausible") is False:
        out.append(
            TrackingWarning(
                "UNITS_SUSPECT",
                f"read as {info.get('units')}, the body is not human-sized (median head-hand distance "
                f"{_fmt(info.get('reach_m'))} m, head height {_fmt(info.get('head_height_m'))} m; expected "
                "0.15-1.0 m and 0.8-2.3 m)",
                hint="check {units} (m, cm, mm), or a scale error in the export",
                fixes=(Fix("units", _other_units(info)),),
            )
        )

    lo, hi = RATE_RANGE_HZ
    reasons = []
    if not lo <= st["rate_hz"] <= hi:
        reasons.append(f"sample rate {st['rate_hz']:.1f} Hz is outside the {lo:.0f}-{hi:.0f} Hz of VR tracking")
    hs = st["speed_p99_m_s"] if info.get("units_plausible") is not False else [None, None, None]
    if hs[0] is not None and hs[0] > HEAD_SPEED_MAX:
        reasons.append(f"the head moves at {hs[0]:.1f} m/s (99th percentile; a jog is {HEAD_SPEED_MAX} m/s)")
    if info.get("units_plausible") is not False and st["head_turn_p99_deg_s"] > HEAD_TURN_MAX_DEG:
        reasons.append(
            f"the head turns at {st['head_turn_p99_deg_s']:.0f} deg/s (99th percentile; people peak near "
            f"{HEAD_TURN_MAX_DEG:.0f})"
        )
    field = info.get("fps_field_median") or 0.0
    if field > 0 and not 0.8 <= st["rate_hz"] / field <= 1.25:
        reasons.append(f"the time stamps give {st['rate_hz']:.0f} Hz but the frames say they ran at {field:.0f} fps")
    hands = [s for s in hs[1:] if s is not None]
    if len(hands) == 2 and min(hands) > HAND_SPEED_MAX:
        reasons.append(
            f"both hands move above {HAND_SPEED_MAX:.0f} m/s (99th percentiles {hands[0]:.0f}, {hands[1]:.0f})"
        )
    if reasons and info.get("format") not in TIME_FROM_FORMAT:
        out.append(_time_scale_warning(reasons, st["rate_hz"], info))

    rreasons = []
    if st["head_roll_p90_deg"] > HEAD_ROLL_P90_MAX_DEG:
        rreasons.append(
            f"the head is rolled over {st['head_roll_p90_deg']:.0f} deg in 10 % of frames "
            f"(people keep their eyes level; above {HEAD_ROLL_P90_MAX_DEG:.0f} deg is rare)"
        )
    if st["head_tilt_median_deg"] > HEAD_TILT_MEDIAN_MAX_DEG:
        rreasons.append(f"the head is tilted {st['head_tilt_median_deg']:.0f} deg from upright in half the frames")
    rotation_suspect = bool(rreasons)
    if rreasons:
        out.append(_rotation_warning(rreasons, info))

    if not joints and not rotation_suspect and info.get("units_plausible") is not False:
        score = st["handedness_score"]
        if score is not None and score < 0:
            out.append(
                TrackingWarning(
                    "HANDEDNESS_SUSPECT",
                    f"the controllers are behind the face in {100 * (1 - st['hands_in_front_fraction']):.0f} % of frames "
                    f"and point back towards the body (mean cosine {st['controller_pointing_cos']:.2f}): the axes look "
                    f"mirrored (read as {info.get('convention', '?')}, {info.get('handedness', '?')}-handed)",
                    hint="try the other handedness with {convention}",
                    fixes=(Fix("convention", MIRRORED_CONVENTION.get(str(info.get("convention")))),),
                )
            )
        lf = st["left_on_left_fraction"]
        if lf is not None and lf < FRONT_FRACTION_MIN:
            out.append(
                TrackingWarning(
                    "HANDEDNESS_SUSPECT",
                    f"the left controller is right of the right one in {100 * (1 - lf):.0f} % of frames: the axes "
                    "look mirrored left-right, or the hands are swapped in the file",
                    hint="try the other handedness with {convention}",
                    fixes=(Fix("convention", MIRRORED_CONVENTION.get(str(info.get("convention")))),),
                )
            )
    for d, name in enumerate(DEVICES):
        for s, e, dur in _frozen_runs(times, positions[:, d], rotations[:, d], valid[:, d]):
            out.append(
                TrackingWarning(
                    "DEVICE_FROZEN",
                    f"{name} reports the identical pose for {dur:.1f} s from {times[s]:.2f} s: tracking lost or the "
                    "device was put down",
                    device=name,
                    frames=(s, e),
                )
            )
    return out


def _other_units(info: dict[str, Any]) -> str | None:
    """The unit body proportions point to, where it is not the one used."""
    detected = info.get("units_detected")
    return str(detected) if detected and detected != info.get("units") else None


def _time_scale_warning(reasons: list[str], rate_hz: float, info: dict[str, Any]) -> TrackingWarning:
    """TIME_SCALE_SUSPECT for a CSV: the time column's unit, or the rate assumed without one."""
    text = "; ".join(reasons)
    if info.get("time_column") is None:
        return TrackingWarning(
            "TIME_SCALE_SUSPECT",
            f"{text}: the assumed rate of {_fmt(info.get('time_assumed_fps'))} samples per second may be wrong",
            hint="give the recording's rate with {input_fps}",
            fixes=(Fix("input_fps"),),
        )
    unit = str(info.get("time_units") or "s")
    lo, hi = RATE_RANGE_HZ
    fits = [
        u
        for u, scale in _TIME_SCALES.items()
        if u != unit and lo <= rate_hz * _TIME_SCALES.get(unit, 1.0) / scale <= hi
    ]
    return TrackingWarning(
        "TIME_SCALE_SUSPECT",
        f"{text}: the time column {info.get('time_column')!r} (read in {unit}) may be in other units or scaled",
        hint="check {time_units} (s, ms, us, ns), or how the export wrote the time",
        fixes=(Fix("time_units", fits[0] if len(fits) == 1 else None),),
    )


def _rotation_warning(reasons: list[str], info: dict[str, Any]) -> TrackingWarning:
    """ROTATION_SUSPECT naming the options that change how this format's rotations are read."""
    fmt = info.get("format")
    euler = any("Euler" in str(v) for v in (info.get("rotations") or {}).values())
    hint: str
    fixes: tuple[Fix, ...]
    if fmt == "csv" and euler:
        hint = "the Euler angles may use another order ({euler_order}), or the axes are wrong ({convention})"
        fixes = (Fix("euler_order"), Fix("convention"))
    elif fmt in ("csv", "bsor"):
        hint = (
            "the quaternions may use another component order ({quat_order}) or Euler convention, or the axes are "
            "wrong ({convention})"
        )
        fixes = (Fix("quat_order"), Fix("convention"))
    else:
        hint = "the axes may be wrong ({convention})"
        fixes = (Fix("convention"),)
    return TrackingWarning(
        "ROTATION_SUSPECT",
        "; ".join(reasons) + " (handedness is judged once the rotations look right)",
        device="head",
        hint=hint,
        fixes=fixes,
    )


def _fmt(x: Any) -> str:
    return f"{x:.2f}" if isinstance(x, (int, float)) else "?"


def _frozen_runs(times: NDArray, pos: NDArray, rot: NDArray, valid: NDArray) -> list[tuple[int, int, float]]:
    """[start, end) sample runs where pose is bit-identical for at least FROZEN_MIN_S (sample indices)."""
    if pos.shape[0] < 3:
        return []
    same = np.all(pos[1:] == pos[:-1], axis=-1) & np.all(rot[1:] == rot[:-1], axis=(-1, -2)) & valid[1:] & valid[:-1]
    out = []
    for s, e in find_runs(same):
        dur = float(times[e] - times[s])
        if dur >= FROZEN_MIN_S:
            out.append((s, e + 1, dur))
    return out
