# SPDX-License-Identifier: GPL-3.0-or-later
"""``inspect_report``: what a reader found, as plain JSON-ready data (keys in docs/inspect.md)."""

from __future__ import annotations

from typing import Any

import numpy as np

from kinest_core.fixes import Spelling, python_spelling
from kinest_core.io.calibration import FAMILY_NAMES
from kinest_core.types import DEVICES, TrackingSequence

REPORT_VERSION = 1


def _plain(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.ndarray):
        return _plain(x.tolist())
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return round(v, 6) if np.isfinite(v) else None
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.bool_,)):
        return bool(x)
    return x


def inspect_report(seq: TrackingSequence, spell: Spelling = python_spelling) -> dict[str, Any]:
    """A JSON-ready summary of a :class:`TrackingSequence` from :func:`read_tracking`.

    ``spell`` writes the options that warnings' hints name (the command line passes its flags).
    """
    info = seq.info
    valid = np.asarray(seq.valid, dtype=bool)
    cols = info.get("device_columns") or {}
    src_names = {"head": "head", "left_wrist": "left", "right_wrist": "right"}
    devices = []
    for d, name in enumerate(DEVICES):
        devices.append(
            {
                "name": name,
                "present": bool(valid[:, d].any()),
                "valid_fraction": float(valid[:, d].mean()) if valid.shape[0] else 0.0,
                "source_columns": cols.get(src_names[name], []),
            }
        )
    orig_times = info.get("original_times")
    report: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "file": info.get("file"),
        "format": info.get("format"),
        "layout": info.get("layout"),
        "devices": devices,
        "frames": seq.num_frames,
        "fps": float(seq.fps),
        "original_samples": info.get("original_samples"),
        "original_rate_hz": info.get("original_rate_hz"),
        "duration_s": info.get("duration_s", float(seq.times[-1]) if seq.num_frames else 0.0),
        "units": info.get("units"),
        "units_from": info.get("units_from"),
        "convention": info.get("convention"),
        "convention_from": info.get("convention_from"),
        "handedness": info.get("handedness"),
        "up_axis": info.get("up_axis"),
        "device_forward_axis": info.get("device_forward_axis"),
        "quat_order": info.get("quat_order"),
        "time_column": info.get("time_column"),
        "time_units": info.get("time_units"),
        "time_base": info.get("time_base"),
        "duplicate_timestamps": info.get("duplicate_timestamps"),
        "device_family": info.get("device_family"),
        "device_family_name": FAMILY_NAMES.get(str(info.get("device_family")), info.get("device_family")),
        "calibration_from": info.get("calibration_from"),
        "calibration": info.get("calibration"),
        "body_height_m": info.get("body_height_m"),
        "body_height_from": info.get("body_height_from", "estimated from head height"),
        "floor_level_m": info.get("floor_level_m"),
        "floor_from": info.get("floor_from"),
        "world_shift_m": info.get("world_shift_m"),
        "checks": info.get("checks"),
        "gaps": info.get("gaps", []),
        "warnings": [w.as_dict(spell) for w in seq.warnings],
    }
    if orig_times is not None and len(orig_times):
        report["original_time_range_s"] = [float(orig_times[0]), float(orig_times[-1])]
    if "bsor_header" in info:
        report["bsor_header"] = info["bsor_header"]
    if "bvh_joints" in info:
        report["bvh_joints"] = info["bvh_joints"]
        report["bvh_kind"] = info.get("bvh_kind")
    return _plain(report)
