# SPDX-License-Identifier: GPL-3.0-or-later
"""Checks at the network's two doors: tracking going in (from any caller) and motion coming out.

Readers already check files; these catch what reaches :func:`kinest_core.inference.reconstruct`
another way (the worker's request, a Python caller, the add-on) and guarantee that a result
with NaN or inf, or an impossible frame rate, is an error and never a file or an animation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.errors import ReconstructionError, TrackingFileError
from kinest_core.types import DEVICES, Motion, TrackingSequence

#: Frame rates accepted for a tracking sequence or a motion.
FPS_RANGE = (1.0, 1000.0)


def _first_bad_frame(a: NDArray[Any]) -> int:
    return int(np.argmax(~np.isfinite(a).reshape(a.shape[0], -1).all(axis=1)))


def check_fps(fps: Any, source: str, error: type[TrackingFileError] | type[ReconstructionError]) -> float:
    try:
        value = float(fps)
    except (TypeError, ValueError):
        raise error(source, f"fps {fps!r} is not a number", hint="give one frame rate for the take") from None
    if not (np.isfinite(value) and FPS_RANGE[0] <= value <= FPS_RANGE[1]):
        raise error(
            source,
            f"fps is {value:g}",
            hint=f"a frame rate must be {FPS_RANGE[0]:g}-{FPS_RANGE[1]:g} frames per second",
        )
    return value


def check_tracking(seq: TrackingSequence, source: str | None = None) -> None:
    """Refuse a sequence the network cannot use: shapes, finiteness, times and fps."""
    src = source or str(seq.info.get("file") or "tracking data")
    times = np.asarray(seq.times)
    if times.ndim != 1 or times.shape[0] < 1:
        raise TrackingFileError(src, f"'times' has shape {times.shape}; it must be (frames,) with at least one frame")
    n = times.shape[0]
    for name in DEVICES:
        m = np.asarray(getattr(seq, name))
        if m.shape != (n, 4, 4):
            raise TrackingFileError(src, f"'{name}' has shape {m.shape}, expected ({n}, 4, 4) to match 'times'")
        if not np.issubdtype(m.dtype, np.number) or not np.all(np.isfinite(m)):
            raise TrackingFileError(
                src, f"'{name}' holds NaN or inf", where=f"frame {_first_bad_frame(m.astype(np.float64))}"
            )
    if np.asarray(seq.valid).shape != (n, 3):
        raise TrackingFileError(src, f"'valid' has shape {np.asarray(seq.valid).shape}, expected ({n}, 3)")
    if not np.all(np.isfinite(times)):
        raise TrackingFileError(src, "'times' holds NaN or inf", where=f"frame {_first_bad_frame(times)}")
    if n > 1 and not np.all(np.diff(times) > 0):
        k = int(np.argmax(~(np.diff(times) > 0))) + 1
        raise TrackingFileError(
            src, "'times' must increase", where=f"frame {k}", hint="read the file with read_tracking"
        )
    check_fps(seq.fps, src, TrackingFileError)


def check_motion(motion: Motion, source: str = "reconstruction") -> None:
    """A motion with a NaN or inf anywhere, or an impossible fps, is an error, never a result."""
    for name in ("local_rotations", "root_translation", "joint_positions", "rest_offsets"):
        a = np.asarray(getattr(motion, name), dtype=np.float64)
        if a.size and not np.all(np.isfinite(a)):
            where = f"frame {_first_bad_frame(a)}" if name != "rest_offsets" else None
            raise ReconstructionError(
                source,
                f"the result's {name.replace('_', ' ')} hold NaN or inf; nothing was written",
                where=where,
                hint="the checkpoint's weights may be damaged (try the shipped model) or the tracking holds absurd "
                "values (run kinest inspect)",
            )
    check_fps(motion.fps, source, ReconstructionError)
