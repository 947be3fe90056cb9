# SPDX-License-Identifier: GPL-3.0-or-later
"""Time clean-up, gap filling and resampling to a fixed rate (linear positions, SLERP rotations)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.rotations import matrix_to_quat, quat_make_continuous, quat_slerp, quat_to_matrix


def clean_times(
    times: NDArray[np.float64],
) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """Sample order to use: sorted by time (stable), one sample per timestamp (the last one).

    Duplicate timestamps happen in real logs (several rows at t = 0, zero-dt steps) and are
    harmless; backward steps are reported by the caller as ``NONMONOTONIC_TIME``.
    """
    n = times.shape[0]
    d = np.diff(times)
    backward = np.flatnonzero(d < 0)
    order = np.argsort(times, kind="stable")
    st = times[order]
    # keep the last sample of each run of equal times
    keep = np.ones(n, dtype=bool)
    if n > 1:
        keep[:-1] = st[1:] != st[:-1]
    idx = order[keep]
    info: dict[str, Any] = {
        "backward_steps": int(backward.size),
        "first_backward_step": int(backward[0]) + 1 if backward.size else None,
        "duplicate_timestamps": int(n - keep.sum()),
    }
    return idx.astype(np.int64), info


def find_runs(mask: NDArray[np.bool_]) -> list[tuple[int, int]]:
    """[start, end) runs of True."""
    m = np.concatenate([[False], mask.astype(bool), [False]])
    d = np.diff(m.astype(np.int8))
    starts = np.flatnonzero(d == 1)
    ends = np.flatnonzero(d == -1)
    return [(int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def resample_device(
    src_t: NDArray[np.float64],
    pos: NDArray[np.float64],
    rot: NDArray[np.float64],
    valid: NDArray[np.bool_],
    dst_t: NDArray[np.float64],
    max_gap_s: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    """One device's valid samples -> poses at ``dst_t``.

    Between two valid samples closer than ``max_gap_s`` the pose is interpolated and valid;
    across longer gaps it is interpolated but invalid; before the first / after the last valid
    sample it is held and invalid. Returns positions (m, 3), rotations (m, 3, 3), valid (m,).
    """
    m = dst_t.shape[0]
    ok = np.flatnonzero(valid)
    if ok.size == 0:
        return np.zeros((m, 3)), np.tile(np.eye(3), (m, 1, 1)), np.zeros(m, dtype=bool)
    t = src_t[ok]
    p = pos[ok]
    q = quat_make_continuous(matrix_to_quat(rot[ok]))
    if ok.size == 1:
        return np.tile(p[0], (m, 1)), np.tile(quat_to_matrix(q[0]), (m, 1, 1)), np.abs(dst_t - t[0]) <= max_gap_s / 2
    k = np.clip(np.searchsorted(t, dst_t, side="right") - 1, 0, t.shape[0] - 2)
    t0, t1 = t[k], t[k + 1]
    span = t1 - t0
    a = np.clip((dst_t - t0) / np.where(span > 0, span, 1.0), 0.0, 1.0)
    out_p = p[k] * (1 - a)[:, None] + p[k + 1] * a[:, None]
    out_q = quat_slerp(q[k], q[k + 1], a)
    inside = (dst_t >= t[0] - 1e-9) & (dst_t <= t[-1] + 1e-9)
    out_valid = inside & (span <= max_gap_s)
    # hold the end poses outside the valid range
    before = dst_t < t[0]
    after = dst_t > t[-1]
    out_p[before] = p[0]
    out_q[before] = q[0]
    out_p[after] = p[-1]
    out_q[after] = q[-1]
    return out_p, quat_to_matrix(out_q), out_valid
