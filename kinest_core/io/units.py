# SPDX-License-Identifier: GPL-3.0-or-later
"""Unit detection from body proportions: arm reach and head height do not depend on the file."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from kinest_core.io.conventions import UNIT_SCALES

#: Median head-to-hand distance of a person holding controllers (m): forearm in front, arms hanging.
REACH_RANGE_M = (0.15, 1.0)
TYPICAL_REACH_M = 0.5
#: Head (HMD) height above the floor: sitting on a low chair to a tall person standing on tiptoe.
HEAD_HEIGHT_RANGE_M = (0.8, 2.3)
TYPICAL_HEAD_HEIGHT_M = 1.6


def body_scale_stats(pos_up: NDArray, valid: NDArray) -> dict[str, float | None]:
    """Median head-hand distance and head height (in file units) from positions (n, 3, 3) with up = axis 2."""
    head_ok = valid[:, 0]
    stats: dict[str, float | None] = {"reach": None, "head_height": None}
    if head_ok.any():
        stats["head_height"] = float(np.median(pos_up[head_ok, 0, 2]))
    dists = []
    for d in (1, 2):
        ok = head_ok & valid[:, d]
        if ok.sum() >= 10:
            dists.append(np.linalg.norm(pos_up[ok, d] - pos_up[ok, 0], axis=-1))
    if dists:
        stats["reach"] = float(np.median(np.concatenate(dists)))
    return stats


def detect_units(pos_up: NDArray, valid: NDArray, prior: str | None) -> tuple[str, str, bool]:
    """(unit, how it was decided, plausible) from arm reach first, then head height.

    Ties go to the format's documented unit (``prior``). When no unit makes the body
    plausible, the closest one is returned with ``plausible=False``.
    """
    st = body_scale_stats(pos_up, valid)
    reach, height = st["reach"], st["head_height"]
    scores: dict[str, float] = {}
    plaus: dict[str, bool] = {}
    for unit, s in UNIT_SCALES.items():
        score = 0.0
        ok = True
        if reach is not None and reach > 0:
            r = reach * s
            ok &= REACH_RANGE_M[0] <= r <= REACH_RANGE_M[1]
            score += abs(np.log(r / TYPICAL_REACH_M))
        # Only floor-level origins say something: a seated origin puts the head near 0.
        if height is not None and height * s > 0.3:
            h = height * s
            ok &= HEAD_HEIGHT_RANGE_M[0] <= h <= HEAD_HEIGHT_RANGE_M[1]
            score += 0.5 * abs(np.log(h / TYPICAL_HEAD_HEIGHT_M))
        if unit == prior:
            score -= 0.05
        scores[unit] = score
        plaus[unit] = bool(ok)
    candidates = [u for u in UNIT_SCALES if plaus[u]]
    if candidates:
        best = min(candidates, key=lambda u: scores[u])
        return best, "body proportions (arm reach, head height)", True
    if prior is not None:
        return prior, "the format's documented unit (no unit makes the body plausible)", False
    best = min(scores, key=lambda u: scores[u])
    return best, "closest to body proportions (none plausible)", False
