# SPDX-License-Identifier: GPL-3.0-or-later
"""``read_tracking``: any supported file -> a clean 60 fps :class:`TrackingSequence` of joint poses."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.fixes import Fix
from kinest_core.io.calibration import DEVICE_FAMILIES, Calibration, apply_calibration, detect_family
from kinest_core.io.conventions import (
    CONVENTION_PRESETS,
    UNIT_CHOICES,
    Convention,
    get_convention,
)
from kinest_core.io.csv_reader import TIME_UNITS, classify_column
from kinest_core.io.device_poses import FORMATS, QUAT_ORDERS, DevicePoses, detect_format, poses_from_raw, read_raw
from kinest_core.io.errors import TrackingFileError
from kinest_core.io.raw import RawTracking
from kinest_core.io.resample import find_runs, resample_device
from kinest_core.skeleton import Skeleton
from kinest_core.types import DEVICES, TrackingSequence, TrackingWarning

#: Stable warning codes (see docs/inspect.md).
WARNING_CODES: tuple[str, ...] = (
    "UNITS_SUSPECT",
    "TIME_SCALE_SUSPECT",
    "HANDEDNESS_SUSPECT",
    "ROTATION_SUSPECT",
    "DEVICE_FROZEN",
    "DEVICE_MISSING",
    "GAPS",
    "NONMONOTONIC_TIME",
    "QUATERNION_NORM",
    "HEIGHT_SUSPECT",
    "FLOOR_ESTIMATED",
    "TIME_ASSUMED",
)


#: For user interfaces (the Blender add-on): each string option of ``read_tracking``, its choices
#: (first = default) and a one-line description. Values are passed through unchanged.
OPTION_CHOICES: dict[str, tuple[tuple[str, ...], str]] = {
    "format": (FORMATS, "file format (auto: from the extension and first bytes)"),
    "convention": (CONVENTION_PRESETS, "axes and handedness of the source (auto: from the format, else OpenXR)"),
    "units": (UNIT_CHOICES, "position units (auto: from body proportions and the format)"),
    "quat_order": (QUAT_ORDERS, "quaternion component order (auto: column names / format)"),
    "time_units": (("auto", "s", "ms", "us", "ns"), "unit of a CSV time column (auto: name, then spacing)"),
    "calibration": (DEVICE_FAMILIES, "device -> joint offsets (auto: from device names, else generic)"),
    "floor": (("auto", "estimate"), "floor level (auto: file origin if at standing height; or give metres)"),
}


def read_tracking(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    convention: str | Convention | None = None,
    units: str | None = None,
    quat_order: str | None = None,
    columns: dict[str, str] | None = None,
    calibration: Calibration | str | None = None,
    resample_fps: float | None = 60.0,
    time_units: str | None = None,
    euler_order: str = "xyz",
    input_fps: float | None = None,
    max_gap_s: float = 0.25,
    floor: str | float = "auto",
    recenter: bool = True,
) -> TrackingSequence:
    """Read a tracking file into head / wrist *joint* poses: Z-up, right-handed, metres, ``resample_fps``.

    Options (``None`` or ``"auto"`` = detect; every choice lands in ``info``):

    - ``format``: one of :data:`FORMATS`
    - ``convention``: one of :data:`~kinest_core.io.conventions.CONVENTION_PRESETS` or a ``Convention``
    - ``units``: ``"auto" | "m" | "cm" | "mm"``; ``quat_order``: ``"auto" | "xyzw" | "wxyz"``
    - ``columns``: CSV column mapping, canonical name -> file column (``time``, ``head_pos_x``, ``left_rot_w``...)
    - ``calibration``: a :class:`Calibration` or a family name from ``DEVICE_FAMILIES``
    - ``resample_fps``: output rate; None keeps the (cleaned) original samples
    - ``time_units``: ``"auto" | "s" | "ms" | "us" | "ns"`` for the CSV time column
    - ``euler_order``: SciPy order for CSV Euler columns (``"xyz"`` extrinsic, ``"XYZ"`` intrinsic)
    - ``input_fps``: rate to assume when a CSV has no time column
    - ``max_gap_s``: gaps up to this long are interpolated and stay valid
    - ``floor``: ``"auto"`` (z = 0 of a floor-level tracking space, else estimated), ``"estimate"``, or a height in m
    - ``recenter``: move the head's median horizontal position to the origin

    Raises :class:`TrackingFileError` for input that cannot be read.
    """
    p = os.fspath(path)
    _check_options(format, convention, units, quat_order, columns, calibration, resample_fps, time_units)
    # Broken files hold inf, NaN and zero steps that the checks below report; numpy's own
    # floating-point warnings about them would only add lines to the one message the user gets.
    with np.errstate(all="ignore"):
        return _read_tracking(
            p,
            format,
            convention,
            units,
            quat_order,
            columns,
            calibration,
            resample_fps,
            time_units,
            euler_order,
            input_fps,
            max_gap_s,
            floor,
            recenter,
        )


def _read_tracking(
    p: str,
    format: str | None,
    convention: str | Convention | None,
    units: str | None,
    quat_order: str | None,
    columns: dict[str, str] | None,
    calibration: Calibration | str | None,
    resample_fps: float | None,
    time_units: str | None,
    euler_order: str,
    input_fps: float | None,
    max_gap_s: float,
    floor: str | float,
    recenter: bool,
) -> TrackingSequence:
    try:
        fmt = detect_format(p, format)
        if fmt == "npz":  # already KineST joints in its world: metres, never shifted
            units = units or "m"
            floor = 0.0 if floor == "auto" else floor
            recenter = False
        raw = read_raw(
            p,
            format=fmt,
            quat_order=quat_order,
            columns=columns,
            time_units=time_units,
            euler_order=euler_order,
            input_fps=input_fps,
        )
        return sequence_from_raw(
            raw,
            p,
            convention=convention,
            units=units,
            calibration=calibration,
            resample_fps=resample_fps,
            max_gap_s=max_gap_s,
            floor=floor,
            recenter=recenter,
        )
    except TrackingFileError:
        raise
    except MemoryError as exc:
        raise TrackingFileError(p, "too large to read in memory", hint="split the recording") from exc
    except Exception as exc:  # a safety net: the user gets one clear error, never a traceback
        raise TrackingFileError(
            p,
            f"unexpected problem while reading ({type(exc).__name__}: {exc})",
            hint="the file may be damaged; please report it with the file if it looks fine",
        ) from exc


def _check_options(
    format: str | None,
    convention: str | Convention | None,
    units: str | None,
    quat_order: str | None,
    columns: dict[str, str] | None,
    calibration: Calibration | str | None,
    resample_fps: float | None,
    time_units: str | None,
) -> None:
    """Option mistakes are the caller's, not the file's: plain ValueError before any reading."""
    if format not in (None, *FORMATS):
        raise ValueError(f"unknown format {format!r}; choose one of {', '.join(FORMATS)}")
    if convention is not None and convention != "auto":
        get_convention(convention)
    if units not in (None, *UNIT_CHOICES):
        raise ValueError(f"unknown units {units!r}; choose one of {', '.join(UNIT_CHOICES)}")
    if quat_order not in (None, *QUAT_ORDERS):
        raise ValueError(f"unknown quat_order {quat_order!r}; choose one of {', '.join(QUAT_ORDERS)}")
    if time_units not in (None, "auto", *TIME_UNITS):
        raise ValueError(f"unknown time_units {time_units!r}; choose auto, s, ms, us or ns")
    if isinstance(calibration, str) and calibration not in DEVICE_FAMILIES:
        raise ValueError(f"unknown calibration {calibration!r}; choose one of {', '.join(DEVICE_FAMILIES)}")
    if resample_fps is not None and not 1.0 <= float(resample_fps) <= 1000.0:
        raise ValueError(f"resample_fps {resample_fps} is outside 1-1000")
    for canon in columns or {}:
        if canon != "time" and classify_column(canon) is None:
            raise ValueError(
                f"columns: {canon!r} is not a canonical name; use time, <dev>_pos_<x|y|z>, <dev>_rot_<w|x|y|z> "
                "with dev in head, left, right"
            )


def sequence_from_raw(
    raw: RawTracking,
    path: str = "<data>",
    *,
    convention: str | Convention | None = None,
    units: str | None = None,
    calibration: Calibration | str | None = None,
    resample_fps: float | None = 60.0,
    max_gap_s: float = 0.25,
    floor: str | float = "auto",
    recenter: bool = True,
) -> TrackingSequence:
    """The rest of :func:`read_tracking` for samples already in memory (tools, the validation study)."""
    dev = poses_from_raw(raw, path, convention=convention, units=units)
    return _finish(dev, calibration, resample_fps, max_gap_s, floor, recenter)


def _finish(
    dev: DevicePoses,
    calibration: Calibration | str | None,
    resample_fps: float | None,
    max_gap_s: float,
    floor: str | float,
    recenter: bool,
) -> TrackingSequence:
    info = dev.info
    warnings = list(dev.warnings)
    # --- calibration ---
    if isinstance(calibration, Calibration):
        calib = calibration
        info["calibration_from"] = "option"
    elif dev.joints and calibration in (None, "auto"):
        calib = Calibration.for_family("joints")
        info["calibration_from"] = "file holds body joints"
    else:
        fam = str(calibration or "auto")
        if fam == "auto":
            fam = detect_family(" ".join(str(info.get(k, "")) for k in ("hmd", "controller", "tracking_system")))
            info["calibration_from"] = "device names in the file" if fam != "generic" else "generic defaults"
        else:
            info["calibration_from"] = "option"
        calib = Calibration.for_family(fam)
    info["device_family"] = calib.family
    info["calibration"] = calib.as_dict()
    jr, jp = apply_calibration(dev.rotations, dev.positions, calib)

    # --- floor and centre ---
    valid = dev.valid
    head_z = jp[valid[:, 0], 0, 2]
    head_top = np.percentile(head_z, 95) + calib.head_top_m
    shift = np.zeros(3)
    if isinstance(floor, (int, float)) and not isinstance(floor, bool):
        shift[2] = -float(floor)
        info["floor_from"] = "option"
    else:
        standing = 1.2 <= head_top <= 2.3  # floor-level tracking space: the head is a person's height up
        if floor == "estimate" or not standing:
            est = head_top - 1.70  # assume an average adult standing upright some of the time
            shift[2] = -est
            info["floor_from"] = "estimated from head height (average adult assumed)"
            if floor != "estimate":
                warnings.append(
                    TrackingWarning(
                        "FLOOR_ESTIMATED",
                        f"head top at {head_top:.2f} m above the file's origin is not a standing height: "
                        f"the origin is not on the floor; floor placed {est:.2f} m from it assuming a 1.70 m person",
                        hint="give the floor's height in metres above the file's origin with {floor}",
                        fixes=(Fix("floor"),),
                    )
                )
        else:
            info["floor_from"] = "file origin (floor-level tracking space)"
    if recenter:
        shift[:2] = -np.median(jp[valid[:, 0], 0, :2], axis=0)
    jp = jp + shift
    info["world_shift_m"] = [float(x) for x in shift]
    info["floor_level_m"] = float(-shift[2])

    # --- height ---
    head_p95 = float(np.percentile(jp[valid[:, 0], 0, 2], 95))
    height = Skeleton.height_from_head(head_p95)
    info["head_joint_height_p95_m"] = head_p95
    info["body_height_m"] = float(np.clip(height, 1.0, 2.3))
    if not 1.2 <= height <= 2.1:
        warnings.append(
            TrackingWarning(
                "HEIGHT_SUSPECT",
                f"estimated body height {height:.2f} m is outside 1.20-2.10 m (seated or crouching take, or wrong "
                "units/floor)",
                hint="give the performer's height in metres with {body_height}",
                fixes=(Fix("body_height"),),
            )
        )

    # --- resample ---
    t = dev.times
    duration = float(t[-1])
    info["original_times"] = t
    info["original_rate_hz"] = float(1.0 / np.median(np.diff(t)))
    info["duration_s"] = duration
    if resample_fps is None:
        out_t = t.copy()
        fps = info["original_rate_hz"]
    else:
        fps = float(resample_fps)
        if not 1.0 <= fps <= 1000.0:
            raise ValueError(f"resample_fps {fps} is outside 1-1000")
        out_t = np.arange(int(np.floor(duration * fps + 1e-6)) + 1) / fps
    mats = []
    out_valid = np.zeros((out_t.shape[0], 3), dtype=bool)
    gaps: list[dict[str, Any]] = []
    for d, name in enumerate(DEVICES):
        p, r, v = resample_device(t, jp[:, d], jr[:, d], valid[:, d], out_t, max_gap_s)
        if not valid[:, d].any():
            p, r = _default_pose(jp[:, 0], jr[:, 0], d, valid[:, 0], t, out_t)
            warnings.append(
                TrackingWarning(
                    "DEVICE_MISSING",
                    f"{name} has no data in the file: a resting pose was put in, marked invalid",
                    device=name,
                    **_missing_device_fix(info, name),
                )
            )
        else:
            for s, e in find_runs(~v):
                gaps.append(
                    {"device": name, "start_s": float(out_t[s]), "duration_s": float((e - s) / fps), "frames": [s, e]}
                )
                edge = s == 0 or e == out_t.shape[0]
                warnings.append(
                    TrackingWarning(
                        "GAPS",
                        f"{name} has no data for {(e - s) / fps:.2f} s from {out_t[s]:.2f} s "
                        f"(frames {s}-{e - 1}): filled by {'holding' if edge else 'interpolating'}, "
                        "marked invalid",
                        device=name,
                        frames=(s, e),
                        **({} if edge else _gap_fix(t, valid[:, d], float(out_t[s]), float(out_t[e - 1]))),
                    )
                )
            short = _short_gaps(t, valid[:, d], max_gap_s)
            if short:
                info.setdefault("interpolated_gaps", {})[name] = short
        m = np.tile(np.eye(4), (out_t.shape[0], 1, 1))
        m[:, :3, :3] = r
        m[:, :3, 3] = p
        mats.append(m)
        out_valid[:, d] = v
    info["gaps"] = gaps
    # device-stage warnings count original samples; the sequence's frames are the resampled ones
    for k, w in enumerate(warnings):
        if w.frames is not None and w.code == "DEVICE_FROZEN":
            s, e = w.frames
            fs = int(np.searchsorted(out_t, t[s] - 1e-9))
            fe = int(np.searchsorted(out_t, t[min(e, t.shape[0]) - 1] + 1e-9))
            warnings[k] = replace(w, frames=(fs, max(fe, fs + 1)))
    info["frames"] = int(out_t.shape[0])
    info["fps"] = fps
    return TrackingSequence(out_t, mats[0], mats[1], mats[2], out_valid, fps=fps, info=info, warnings=warnings)


#: Longest gap a GAPS warning offers to interpolate (``max_gap_s``): past this the pose is a guess.
MAX_GAP_FIX_S = 1.0


def _gap_fix(t: NDArray, valid: NDArray, start: float, end: float) -> dict[str, Any]:
    """A ``max_gap_s`` that would interpolate this interior gap, when it is short enough to."""
    ok = np.flatnonzero(valid)
    before = ok[t[ok] <= start + 1e-9]
    after = ok[t[ok] >= end - 1e-9]
    if before.size == 0 or after.size == 0:
        return {}
    span = float(t[after[0]] - t[before[-1]])
    if span > MAX_GAP_FIX_S:
        return {}
    value = float(np.ceil(span * 20.0 + 1e-6) / 20.0)  # the next 0.05 s step above the gap
    return {"hint": "interpolate gaps up to this long with {max_gap_s}", "fixes": (Fix("max_gap_s", value),)}


def _missing_device_fix(info: dict[str, Any], name: str) -> dict[str, Any]:
    """In a CSV, a device without data usually has columns under names the reader does not know."""
    if info.get("format") != "csv":
        return {}
    dev = {"left_wrist": "left", "right_wrist": "right"}.get(name, name)
    return {
        "hint": "if the file has its columns under other names, map each with {columns}",
        "fixes": (Fix("columns", {f"{dev}_pos_x": "COLUMN"}),),
    }


def _short_gaps(t: NDArray, valid: NDArray, max_gap_s: float) -> list[list[float]]:
    """Interpolated gaps (start s, length s) shorter than ``max_gap_s`` between valid samples."""
    out: list[list[float]] = []
    ok = np.flatnonzero(valid)
    if ok.size < 2:
        return out
    tt = t[ok]
    d = np.diff(tt)
    med = float(np.median(np.diff(t)))
    for k in np.flatnonzero((d > 2.5 * med) & (d <= max_gap_s)):
        out.append([float(tt[k]), float(d[k])])
    return out


def _default_pose(
    head_p: NDArray, head_r: NDArray, d: int, head_valid: NDArray, t: NDArray, out_t: NDArray
) -> tuple[NDArray, NDArray]:
    """Hands hanging at the sides, turned with the head's heading, for a device absent from the file."""
    ok = np.flatnonzero(head_valid)
    hp = np.stack([np.interp(out_t, t[ok], head_p[ok, a]) for a in range(3)], axis=-1)
    fwd = -head_r[ok][:, :, 1]
    yaw = np.arctan2(fwd[:, 1], fwd[:, 0])
    yaw_i = np.interp(out_t, t[ok], np.unwrap(yaw))
    side = 1.0 if d == 1 else -1.0
    # the body's left (+X at rest, when facing -Y) is the heading turned by +90 degrees
    left = np.stack([np.cos(yaw_i + np.pi / 2), np.sin(yaw_i + np.pi / 2), np.zeros_like(yaw_i)], axis=-1)
    pos = hp + side * 0.2 * left + np.array([0.0, 0.0, -0.75])
    rz = np.zeros((out_t.shape[0], 3, 3))
    a = yaw_i + np.pi / 2  # rest facing -Y has yaw -90 degrees
    rz[:, 0, 0] = np.cos(a)
    rz[:, 0, 1] = -np.sin(a)
    rz[:, 1, 0] = np.sin(a)
    rz[:, 1, 1] = np.cos(a)
    rz[:, 2, 2] = 1.0
    return pos, rz
