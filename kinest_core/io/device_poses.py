# SPDX-License-Identifier: GPL-3.0-or-later
"""A tracking file's samples -> device world poses: format, quaternions, time, units and axes.

The first half of :func:`kinest_core.io.read_tracking`: every format's raw samples go through the
same time clean-up and limits, unit and convention detection and plausibility checks here;
:mod:`kinest_core.io.reader` then turns device poses into joint poses at 60 fps.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.fixes import Fix
from kinest_core.io.bsor import BSOR_MAGIC, read_bsor
from kinest_core.io.bvh_reader import read_bvh_tracking
from kinest_core.io.conventions import (
    PRESETS,
    UNIT_CHOICES,
    UNIT_SCALES,
    Convention,
    get_convention,
    to_world,
)
from kinest_core.io.csv_reader import read_csv_tracking
from kinest_core.io.errors import TrackingFileError
from kinest_core.io.npz_reader import read_npz_tracking
from kinest_core.io.raw import RawTracking, check_size
from kinest_core.io.resample import clean_times
from kinest_core.io.units import HEAD_HEIGHT_RANGE_M, REACH_RANGE_M, body_scale_stats, detect_units
from kinest_core.io.validation import (
    HEAD_ROLL_P90_MAX_DEG,
    HEAD_TILT_MEDIAN_MAX_DEG,
    motion_stats,
    validate_devices,
)
from kinest_core.rotations import quat_to_matrix
from kinest_core.types import TrackingWarning

#: Names accepted by ``read_tracking(format=...)``.
FORMATS: tuple[str, ...] = ("auto", "csv", "bvh", "bsor", "npz")
#: Names accepted by ``read_tracking(quat_order=...)``.
QUAT_ORDERS: tuple[str, ...] = ("auto", "xyzw", "wxyz")
#: Longest take accepted; longer spans are broken time columns (or should be split).
MAX_DURATION_S = 12 * 3600.0
#: Longest interval between two samples accepted: logging that stopped for longer is two takes.
MAX_GAP_S = 600.0
_GUESSED = "data (up axis from head above hands); handedness assumed right (OpenXR)"


@dataclass
class DevicePoses:
    """Device (not joint) world poses at the original samples, after units and axes."""

    times: NDArray[np.float64]  # (n,) s from the first sample, strictly increasing
    positions: NDArray[np.float64]  # (n, 3, 3) m
    rotations: NDArray[np.float64]  # (n, 3, 3, 3)
    valid: NDArray[np.bool_]  # (n, 3)
    info: dict[str, Any]
    warnings: list[TrackingWarning]
    joints: bool = False


def detect_format(path: str, fmt: str | None) -> str:
    """From ``format`` if given, else the extension, else the first bytes."""
    if fmt and fmt != "auto":
        if fmt not in FORMATS:
            raise ValueError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        return fmt
    low = path.lower()
    for ext, name in ((".bsor", "bsor"), (".bvh", "bvh"), (".bvh.gz", "bvh"), (".npz", "npz")):
        if low.endswith(ext):
            return name
    if low.endswith((".csv", ".tsv", ".txt")):
        return "csv"
    check_size(path)
    with open(path, "rb") as fh:
        head = fh.read(64)
    if len(head) >= 4 and int.from_bytes(head[:4], "little", signed=True) == BSOR_MAGIC:
        return "bsor"
    if head.lstrip().upper().startswith(b"HIERARCHY"):
        return "bvh"
    if head.startswith(b"PK"):
        return "npz"
    return "csv"


def _prepare_quats(raw: RawTracking, path: str) -> tuple[NDArray, dict[str, Any], list[TrackingWarning]]:
    """Normalise quaternions, invalidate zero/absurd ones; report poor norms."""
    q = np.where(np.isfinite(raw.quats), raw.quats, 0.0)
    norm = np.linalg.norm(q, axis=-1)
    valid = raw.valid & (norm > 0.5) & (norm < 1.5)
    warns: list[TrackingWarning] = []
    info: dict[str, Any] = {}
    ok = valid & (norm > 0)
    if ok.any():
        dev = np.abs(norm[ok] - 1.0)
        info["quat_norm_range"] = [float(norm[ok].min()), float(norm[ok].max())]
        if float(np.percentile(dev, 99)) > 0.05:
            warns.append(
                TrackingWarning(
                    "QUATERNION_NORM",
                    f"quaternion lengths range {norm[ok].min():.3f}-{norm[ok].max():.3f} (should be 1): "
                    "renormalised; check the quaternion columns",
                )
            )
    bad = raw.valid & ~valid
    if bad.any():
        info["dropped_bad_quaternions"] = int(bad.sum())
    qn = q / np.where(norm > 0, norm, 1.0)[..., None]
    qn[~valid] = (1.0, 0.0, 0.0, 0.0)
    return qn, {"valid": valid, **info}, warns


def read_raw(
    path: str,
    *,
    format: str | None = None,
    quat_order: str | None = None,
    columns: dict[str, str] | None = None,
    time_units: str | None = None,
    euler_order: str = "xyz",
    input_fps: float | None = None,
) -> RawTracking:
    """The file's samples as stored (source axes and units), for tools that work before conversion."""
    path = os.fspath(path)
    fmt = detect_format(path, format)
    qo = quat_order or "auto"
    if qo not in QUAT_ORDERS:
        raise ValueError(f"unknown quat_order {quat_order!r}; choose one of {', '.join(QUAT_ORDERS)}")
    if fmt == "csv":
        raw = read_csv_tracking(
            path,
            columns=columns,
            quat_order=qo,
            time_units=time_units or "auto",
            euler_order=euler_order,
            input_fps=input_fps,
        )
    elif fmt == "bsor":
        raw = read_bsor(path)
    elif fmt == "bvh":
        raw = read_bvh_tracking(path)
    else:
        raw = read_npz_tracking(path)
    if fmt == "bsor" and qo == "wxyz":
        raw.quats = raw.quats[..., [1, 2, 3, 0]]  # the file's xyzw slots hold w, x, y, z
    raw.info["quat_order"] = {
        "csv": "by column name" if qo == "auto" else f"{qo} (option, file column order)",
        "bsor": "xyzw (format)" if qo == "auto" else f"{qo} (option)",
        "bvh": "n/a (Euler channels)",
        "npz": "n/a (matrices)",
    }[fmt]
    return raw


def load_device_poses(
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
    convention: str | Convention | None = None,
    units: str | None = None,
    quat_order: str | None = None,
    columns: dict[str, str] | None = None,
    time_units: str | None = None,
    euler_order: str = "xyz",
    input_fps: float | None = None,
) -> DevicePoses:
    """Read a file and bring its device poses to KineST's world (metres, Z up), without calibration."""
    p = os.fspath(path)
    raw = read_raw(
        p,
        format=format,
        quat_order=quat_order,
        columns=columns,
        time_units=time_units,
        euler_order=euler_order,
        input_fps=input_fps,
    )
    return poses_from_raw(raw, p, convention=convention, units=units)


def poses_from_raw(
    raw: RawTracking, path: str = "<data>", *, convention: str | Convention | None = None, units: str | None = None
) -> DevicePoses:
    """Clean times and quaternions, pick axes and units, convert, and run the plausibility checks."""
    fmt = raw.format
    un = units or "auto"
    if un not in UNIT_CHOICES:
        raise ValueError(f"unknown units {units!r}; choose one of {', '.join(UNIT_CHOICES)}")
    warnings: list[TrackingWarning] = []
    info: dict[str, Any] = {"file": path, "format": fmt, **raw.info}
    if fmt == "csv" and raw.info.get("time_column") is None:
        warnings.append(
            TrackingWarning(
                "TIME_ASSUMED",
                f"no time column found: assumed {raw.info['time_assumed_fps']:g} samples per second",
                hint="give the rate with {input_fps}, or name the time column with {columns}",
                fixes=(Fix("input_fps"), Fix("columns", {"time": "COLUMN"})),
            )
        )

    # --- time ---
    order, t = _clean_time(raw, path, info, warnings)
    qn, qinfo, qwarn = _prepare_quats(raw, path)
    valid = qinfo.pop("valid")[order]
    info.update(qinfo)
    warnings.extend(qwarn)
    pos_src = np.where(np.isfinite(raw.positions), raw.positions, 0.0)[order]
    rot_src = quat_to_matrix(qn[order])
    if not valid[:, 0].any():
        raise TrackingFileError(
            path, "the head has no usable sample", hint="KineST needs the headset; check the head columns"
        )

    # --- convention ---
    conv_from = "option"
    if convention is None or convention == "auto":
        if raw.convention:
            conv = get_convention(raw.convention)
            conv_from = f"{fmt} format"
        else:
            conv = _auto_convention(pos_src, valid)
            conv_from = _GUESSED
    else:
        conv = get_convention(convention)
    info["convention"] = conv.name
    info["convention_from"] = conv_from
    info["handedness"] = conv.handedness
    info["up_axis"] = conv.up_axis
    info["device_forward_axis"] = conv.forward_axis
    info["axes"] = conv.describe()

    # --- units ---
    pos_up = np.einsum("ab,ndb->nda", conv.matrix, pos_src)
    # a guessed convention says nothing about units; a chosen or format-given one does
    prior = raw.units or (conv.units if conv_from != _GUESSED else None)
    detected, how, plausible = detect_units(pos_up, valid, prior)
    if un == "auto":
        unit = detected
        info["units_from"] = f"{fmt} format, confirmed by body proportions" if detected == prior and plausible else how
    else:
        unit = un
        info["units_from"] = "option"
    info["units"] = unit
    info["units_detected"] = detected
    st = body_scale_stats(pos_up * UNIT_SCALES[unit], valid)
    info["reach_m"] = st["reach"]
    info["head_height_m"] = st["head_height"]
    info["units_plausible"] = _plausible(st)
    info["units_documented"] = prior
    scale = UNIT_SCALES[unit]
    pos_w, rot_w = to_world(conv, pos_src * scale, rot_src)
    if un == "auto" and prior is not None and detected != prior and plausible:
        warnings.append(
            TrackingWarning(
                "UNITS_SUSPECT",
                f"this layout is documented in {prior} but the body only looks human-sized in {detected}: "
                f"read as {detected}",
                hint="use {units} if that is wrong",
                fixes=(Fix("units", prior),),
            )
        )
    info["original_samples"] = int(raw.num_samples)
    dp = DevicePoses(t, pos_w, rot_w, valid, info, warnings, joints=raw.joints)
    checks = validate_devices(dp.times, dp.positions, dp.rotations, dp.valid, joints=raw.joints, info=info)
    if any(w.code == "ROTATION_SUSPECT" for w in checks):
        checks = [_with_order_hint(w, raw, conv, qn[order], dp) if w.code == "ROTATION_SUSPECT" else w for w in checks]
    dp.warnings.extend(checks)
    return dp


def _sample_place(raw: RawTracking, k: int) -> str:
    """Where sample ``k`` of ``raw`` is in its file: a CSV line, else a frame."""
    lines = raw.info.get("sample_lines")
    if lines is not None and 0 <= k < len(lines):
        return f"line {int(lines[k])}"
    return f"frame {k}"


def _clean_time(
    raw: RawTracking, path: str, info: dict[str, Any], warnings: list[TrackingWarning]
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Sample order and times from 0 s: spikes dropped, sorted, repeats merged, limits enforced."""
    if raw.times.ndim != 1 or raw.times.shape[0] != raw.num_samples or not np.all(np.isfinite(raw.times)):
        bad = int(np.argmax(~np.isfinite(raw.times))) if raw.times.ndim == 1 else 0
        raise TrackingFileError(path, "a time stamp is NaN or inf", where=_sample_place(raw, bad), hint="fix the time")
    order, tinfo = clean_times(raw.times)
    info.pop("sample_lines", None)
    info.update(tinfo)
    spikes = tinfo["time_spikes"]
    if spikes:
        k = spikes[0]
        warnings.append(
            TrackingWarning(
                "NONMONOTONIC_TIME",
                f"{len(spikes)} time stamp(s) far out of line with their neighbours were dropped (first at "
                f"{_sample_place(raw, k)}: {raw.times[k]:.6g} s); check the export",
            )
        )
    if tinfo["backward_steps"]:
        warnings.append(
            TrackingWarning(
                "NONMONOTONIC_TIME",
                f"time goes backwards {tinfo['backward_steps']} time(s) (first at "
                f"{_sample_place(raw, tinfo['first_backward_step'])}); samples were sorted by time; check the export",
            )
        )
    if tinfo["repeated_times"]:
        warnings.append(
            TrackingWarning(
                "NONMONOTONIC_TIME",
                f"{tinfo['repeated_times']} sample(s) repeat the time of the one before (first at "
                f"{_sample_place(raw, tinfo['first_repeated_time'])}); the last of each was kept; check the export",
            )
        )
    if order.size < 2:
        raise TrackingFileError(
            path, "holds fewer than 2 distinct time stamps", hint="a take needs at least two samples at different times"
        )
    t = raw.times[order]
    t = t - t[0]
    steps = np.diff(t)
    jump = int(np.argmax(steps))
    where = f"between {_sample_place(raw, int(order[jump]))} and {_sample_place(raw, int(order[jump + 1]))}"
    if t[-1] > MAX_DURATION_S:
        raise TrackingFileError(
            path,
            f"the time stamps span {t[-1]:.3g} s (over {MAX_DURATION_S / 3600:.0f} h), the largest jump "
            f"{steps[jump]:.3g} s {where}",
            hint="check the time column and its unit ({time_units}: s, ms, us, ns), or split the take",
            fixes=(Fix("time_units"),),
        )
    if steps[jump] > MAX_GAP_S:
        raise TrackingFileError(
            path,
            f"the time jumps {steps[jump]:.3g} s {where} (over {MAX_GAP_S / 60:.0f} minutes without a sample)",
            hint="split the take there, or check the time column and its unit ({time_units})",
            fixes=(Fix("time_units"),),
        )
    return order, t


def _with_order_hint(
    w: TrackingWarning, raw: RawTracking, conv: Convention, quats: NDArray, dp: DevicePoses
) -> TrackingWarning:
    """Say which ``quat_order`` would make the head plausible, if one does (the user decides)."""
    if raw.format == "bsor" and raw.info.get("quat_order", "").startswith("xyzw"):
        file_order = "xyzw"
    elif raw.format == "csv" and raw.info.get("quat_order") == "by column name":
        file_order = raw.info.get("rotation_file_order", {}).get("head", "")
    else:
        return w
    # reading the file-order columns as the other order permutes the labelled components
    candidate, perm = {"xyzw": ("wxyz", [1, 2, 3, 0]), "wxyz": ("xyzw", [3, 0, 1, 2])}.get(file_order, ("", []))
    if not candidate:
        return w
    _, rot = to_world(conv, np.zeros((1, 3)), quat_to_matrix(quats[:, 0][:, perm]))
    rots = dp.rotations.copy()
    rots[:, 0] = rot
    st = motion_stats(dp.times, dp.positions, rots, dp.valid)
    if st["head_roll_p90_deg"] <= HEAD_ROLL_P90_MAX_DEG and st["head_tilt_median_deg"] <= HEAD_TILT_MEDIAN_MAX_DEG:
        return replace(
            w,
            hint=f"read as {candidate} the head looks plausible: use {{quat_order}}",
            fixes=(Fix("quat_order", candidate),),
        )
    return w


def _plausible(st: dict[str, float | None]) -> bool:
    reach, height = st["reach"], st["head_height"]
    if reach is not None and not REACH_RANGE_M[0] <= reach <= REACH_RANGE_M[1]:
        return False
    if height is not None and height > 0.3 and not HEAD_HEIGHT_RANGE_M[0] <= height <= HEAD_HEIGHT_RANGE_M[1]:
        return False
    return True


def _auto_convention(pos_src: NDArray, valid: NDArray) -> Convention:
    """Y-up unless Z clearly is (head above the hands); handedness cannot be told from positions."""
    ok = valid[:, 0] & (valid[:, 1] | valid[:, 2])
    if ok.sum() < 10:
        return PRESETS["openxr"]
    hands = np.where(valid[:, 1, None], pos_src[:, 1], pos_src[:, 2])
    diff = np.median(pos_src[ok, 0] - hands[ok], axis=0)
    if diff[2] > 0 and diff[1] < 0.25 * diff[2]:  # only when Y clearly is not up
        return PRESETS["blender"]
    return PRESETS["openxr"]
