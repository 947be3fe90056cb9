# SPDX-License-Identifier: GPL-3.0-or-later
"""Tracking importers: CSV, BVH, Beat Saber .bsor and .npz -> clean 60 fps joint poses with warnings."""

from kinest_core.io.bvh import BvhData, BvhError, read_bvh, write_motion_bvh
from kinest_core.io.calibration import DEVICE_FAMILIES, Calibration, DeviceOffset
from kinest_core.io.conventions import CONVENTION_PRESETS, PRESETS, UNIT_CHOICES, Convention
from kinest_core.io.device_poses import FORMATS, QUAT_ORDERS, load_device_poses, read_raw
from kinest_core.io.errors import TrackingFileError
from kinest_core.io.reader import OPTION_CHOICES, WARNING_CODES, read_tracking, sequence_from_raw
from kinest_core.io.report import inspect_report

__all__ = [
    "BvhData",
    "BvhError",
    "CONVENTION_PRESETS",
    "DEVICE_FAMILIES",
    "FORMATS",
    "OPTION_CHOICES",
    "PRESETS",
    "QUAT_ORDERS",
    "UNIT_CHOICES",
    "WARNING_CODES",
    "Calibration",
    "Convention",
    "DeviceOffset",
    "TrackingFileError",
    "inspect_report",
    "load_device_poses",
    "read_bvh",
    "read_raw",
    "read_tracking",
    "sequence_from_raw",
    "write_motion_bvh",
]
