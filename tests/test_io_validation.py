# SPDX-License-Identifier: GPL-3.0-or-later
"""Plausibility checks on synthetic corruptions of a good recording (fast versions of the study)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from kinest_core.io import read_raw, sequence_from_raw
from kinest_core.io.raw import RawTracking
from kinest_core.rotations import matrix_to_quat, quat_to_matrix

FIX = Path(__file__).resolve().parent / "fixtures" / "vr"
SUSPECT = {"UNITS_SUSPECT", "TIME_SCALE_SUSPECT", "HANDEDNESS_SUSPECT", "ROTATION_SUSPECT"}


@pytest.fixture(scope="module")
def boxrr() -> RawTracking:
    return read_raw(str(FIX / "km_boxrr_beatsaber23_fixed.csv"))


def _codes(raw: RawTracking, **kw: object) -> set[str]:
    seq = sequence_from_raw(raw, "synthetic", **kw)  # type: ignore[arg-type]
    return {w.code for w in seq.warnings}


def _mirror(raw: RawTracking, axis: int) -> RawTracking:
    r = copy.copy(raw)
    s = np.ones(3)
    s[axis] = -1
    r.positions = raw.positions * s
    r.quats = matrix_to_quat(np.diag(s) @ quat_to_matrix(raw.quats) @ np.diag(s))
    return r


def test_clean(boxrr: RawTracking) -> None:
    assert not _codes(boxrr) & SUSPECT


@pytest.mark.parametrize("k", [3.0, 100.0, 0.01])
def test_units(boxrr: RawTracking, k: float) -> None:
    r = copy.copy(boxrr)
    r.positions = boxrr.positions * k
    assert _codes(r) & SUSPECT == {"UNITS_SUSPECT"}


def test_units_option_wins_over_detection(boxrr: RawTracking) -> None:
    r = copy.copy(boxrr)
    r.positions = boxrr.positions * 0.01  # now metres
    seq = sequence_from_raw(r, "synthetic", units="m")
    assert seq.info["units"] == "m" and not {w.code for w in seq.warnings} & SUSPECT


@pytest.mark.parametrize("k", [3.0, 1 / 3])
def test_time_scale(boxrr: RawTracking, k: float) -> None:
    r = copy.copy(boxrr)
    r.times = boxrr.times * k
    assert _codes(r) & SUSPECT == {"TIME_SCALE_SUSPECT"}


@pytest.mark.parametrize("axis", [0, 2])
def test_mirrored(boxrr: RawTracking, axis: int) -> None:
    assert _codes(_mirror(boxrr, axis)) & SUSPECT == {"HANDEDNESS_SUSPECT"}


def test_mirrored_file_read_with_the_other_handedness_is_clean(boxrr: RawTracking) -> None:
    """A Z-mirrored OpenXR file is a Unity file: convention='unity' reads the same motion, no warning."""
    mirrored = _mirror(boxrr, 2)
    a = sequence_from_raw(boxrr, "a")
    b = sequence_from_raw(mirrored, "b", convention="unity")
    assert not {w.code for w in b.warnings} & SUSPECT
    assert np.allclose(a.transforms(), b.transforms(), atol=1e-9)


def test_swapped_quaternion_order(boxrr: RawTracking) -> None:
    r = copy.copy(boxrr)
    r.quats = boxrr.quats[..., [1, 2, 3, 0]]
    assert _codes(r) & SUSPECT == {"ROTATION_SUSPECT"}


def test_frozen_device_and_missing_stretch(boxrr: RawTracking) -> None:
    r = copy.copy(boxrr)
    r.positions = boxrr.positions.copy()
    r.quats = boxrr.quats.copy()
    r.valid = boxrr.valid.copy()
    r.positions[300:500, 1] = r.positions[300, 1]  # ~2.8 s of an identical left-hand pose
    r.quats[300:500, 1] = r.quats[300, 1]
    r.valid[800:900, 2] = False  # 1.4 s of right hand lost
    seq = sequence_from_raw(r, "synthetic")
    frozen = [w for w in seq.warnings if w.code == "DEVICE_FROZEN"]
    gaps = [w for w in seq.warnings if w.code == "GAPS"]
    assert len(frozen) == 1 and frozen[0].device == "left_wrist" and frozen[0].frames is not None
    fs, fe = frozen[0].frames
    t0 = r.times[300] - r.times[0]
    assert abs(seq.times[fs] - t0) < 1 / 60 + 1e-9 and abs((fe - fs) / 60 - (r.times[499] - r.times[300])) < 0.05
    assert len(gaps) == 1 and gaps[0].device == "right_wrist" and gaps[0].frames is not None
    s, e = gaps[0].frames
    assert 1.2 < (e - s) / 60 < 1.6 and not seq.valid[s:e, 2].any() and seq.valid[s - 1, 2]


def test_time_column_missing(tmp_path: Path) -> None:
    from kinest_core.io import read_tracking

    lines = (FIX / "km_who_is_alyx_fixed_cutout.csv").read_text().splitlines()
    out = [",".join(ln.split(",")[1:]) for ln in lines]
    (tmp_path / "notime.csv").write_text("\n".join(out) + "\n")
    seq = read_tracking(tmp_path / "notime.csv", input_fps=34.5)
    assert "TIME_ASSUMED" in {w.code for w in seq.warnings}
    assert abs(seq.info["original_rate_hz"] - 34.5) < 1e-6
