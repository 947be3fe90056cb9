# SPDX-License-Identifier: GPL-3.0-or-later
"""Device poses as a file holds them, before units, axes, calibration and resampling."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.io.files import MAX_FILE_BYTES, check_file

__all__ = ["DEVICE_KEYS", "MAX_ABS_COORD", "MAX_FILE_BYTES", "MAX_SAMPLES", "RawTracking", "check_size"]

#: Samples above this count are refused (about 12 hours at 230 Hz).
MAX_SAMPLES = 10_000_000
#: Coordinates beyond this magnitude (in any unit) cannot come from a tracker.
MAX_ABS_COORD = 1.0e7

DEVICE_KEYS: tuple[str, str, str] = ("head", "left", "right")


@dataclass
class RawTracking:
    """Per-sample device poses in the source's axes and units.

    - ``times``: (n,) seconds as read (not yet sorted or shifted)
    - ``positions``: (n, 3, 3) source units, device order head, left, right
    - ``quats``: (n, 3, 4) wxyz in source axes (not normalised), or None with ``matrices`` set
    - ``valid``: (n, 3) where a device has a sample
    - ``convention``/``units``: what the format implies (None = unknown, detect)
    - ``joints``: True when the poses already are body joints (full-body mocap), not devices
    """

    times: NDArray[np.float64]
    positions: NDArray[np.float64]
    quats: NDArray[np.float64]
    valid: NDArray[np.bool_]
    format: str
    convention: str | None = None
    units: str | None = None
    joints: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_samples(self) -> int:
        return int(self.times.shape[0])


def check_size(path: str, limit: int = MAX_FILE_BYTES) -> int:
    """Refuse missing, empty, enormous and non-regular files up front (see :func:`kinest_core.io.files.check_file`)."""
    return check_file(path, limit)
