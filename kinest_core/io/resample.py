# SPDX-License-Identifier: GPL-3.0-or-later
"""Time clean-up, gap filling and resampling to a fixed rate (linear positions, SLERP rotations)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.rotations import matrix_to_quat, quat_make_continuous, quat_slerp, quat_to_matrix

#: A sample whose time is this far from where its neighbours put it (and at least
#: ``SPIKE_MIN_INTERVALS`` median intervals) is a corrupt time stamp, not a real sample.
SPIKE_MIN_S = 0.5
SPIKE_MIN_INTERVALS = 50.0
#: A few samples cut off from the rest of the take by more than this (and ``STRAY_MIN_INTERVALS``
#: median intervals) at either end are strays (a flipped bit in a float time, a stale row).
STRAY_GAP_S = 60.0
STRAY_MIN_INTERVALS = 1000.0
STRAY_MAX_SAMPLES = 10


def median_interval(times: NDArray[np.float64]) -> float:
    """Median of the positive steps between consecutive samples (0 if there is none)."""
    d = np.diff(times)
    d = d[d > 0]
    return float(np.median(d)) if d.size else 0.0


def time_spikes(times: NDArray[np.float64]) -> NDArray[np.int64]:
    """Samples whose time is far out of line with their neighbours, which agree with each other.

    Interior sample ``i`` is a spike when ``t[i+1] - t[i-1]`` is a normal step (0 to 10 median
    intervals) but ``t[i]`` lies far from both; the first and last samples are judged against the
    next two. Also samples cut off at either end of the sorted times by a jump of over a minute
    (several at once). Returns sorted sample indices.
    """
    n = times.shape[0]
    med = median_interval(times)
    if n < 4 or med <= 0:
        return np.zeros(0, dtype=np.int64)
    far = max(SPIKE_MIN_S, SPIKE_MIN_INTERVALS * med)
    near = 10.0 * med
    out: set[int] = set()
    t = times
    c = t[2:] - t[:-2]
    mid = 0.5 * (t[2:] + t[:-2])
    spike = (c >= 0) & (c <= near) & (np.abs(t[1:-1] - mid) > far)
    out.update((np.flatnonzero(spike) + 1).tolist())
    if 0 <= t[2] - t[1] <= near and abs(t[0] - t[1]) > far:
        out.add(0)
    if 0 <= t[-2] - t[-3] <= near and abs(t[-1] - t[-2]) > far:
        out.add(n - 1)
    keep = np.setdiff1d(np.arange(n), np.fromiter(out, dtype=np.int64, count=len(out)))
    order = keep[np.argsort(t[keep], kind="stable")]
    st = t[order]
    gap = max(STRAY_GAP_S, STRAY_MIN_INTERVALS * med)
    jumps = np.flatnonzero(np.diff(st) > gap)
    few = min(STRAY_MAX_SAMPLES, max(1, order.shape[0] // 100))
    if jumps.size and jumps[0] + 1 <= few:
        out.update(order[: jumps[0] + 1].tolist())
    if jumps.size and order.shape[0] - (jumps[-1] + 1) <= few:
        out.update(order[jumps[-1] + 1 :].tolist())
    return np.array(sorted(out), dtype=np.int64)


def clean_times(
    times: NDArray[np.float64],
) -> tuple[NDArray[np.int64], dict[str, Any]]:
    """Sample order to use: time spikes dropped, sorted by time (stable), one sample per timestamp (the last one).

    Several rows at the first time stamp are common in real logs (the tracker starts before the
    clock) and only counted; other repeated or backward times are counted for the caller to
    report as ``NONMONOTONIC_TIME``, and dropped spikes are listed (``time_spikes``).
    """
    n = times.shape[0]
    spikes = time_spikes(times)
    kept = np.setdiff1d(np.arange(n), spikes)
    kt = times[kept]
    d = np.diff(kt)
    backward = np.flatnonzero(d < 0)
    order = kept[np.argsort(kt, kind="stable")]
    st = times[order]
    # keep the last sample of each run of equal times
    keep = np.ones(order.shape[0], dtype=bool)
    if order.shape[0] > 1:
        keep[:-1] = st[1:] != st[:-1]
    idx = order[keep]
    leading = int(np.argmax(st != st[0])) - 1 if order.shape[0] and np.any(st != st[0]) else 0
    repeats = np.flatnonzero(d == 0)
    repeats = repeats[repeats >= leading]
    info: dict[str, Any] = {
        "backward_steps": int(backward.size),
        "first_backward_step": int(kept[backward[0] + 1]) if backward.size else None,
        "duplicate_timestamps": int(order.shape[0] - keep.sum()),
        "leading_duplicates": max(leading, 0),
        "repeated_times": int(repeats.size),
        "first_repeated_time": int(kept[repeats[0] + 1]) if repeats.size else None,
        "time_spikes": [int(k) for k in spikes],
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
