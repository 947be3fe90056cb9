# SPDX-License-Identifier: GPL-3.0-or-later
"""Every real recording in ../shared/data/vr: imports, and gets exactly the suspect codes it should."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinest_core.io import PRESETS, read_raw, read_tracking
from kinest_core.io.conventions import to_world
from kinest_core.rotations import quat_to_matrix

VR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "vr"
pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not VR.is_dir(), reason="../shared/data/vr is not here"),
]
SUSPECT = {"UNITS_SUSPECT", "TIME_SCALE_SUSPECT", "HANDEDNESS_SUSPECT", "ROTATION_SUSPECT"}
EXPECTED: dict[str, set[str]] = {
    "km_liebers_labstudy21_bowling_fixed.csv": set(),
    "km_liebers_labstudy21_bowling_negative_coordinate_system.csv": {"HANDEDNESS_SUSPECT"},
    "km_liebers_labstudy21_bowling_negative_units.csv": {"UNITS_SUSPECT"},
    "km_liebers_labstudy21_bowling_negative_time.csv": {"TIME_SCALE_SUSPECT"},
    "km_liebers_labstudy21_bowling_negative_rotations.csv": {"ROTATION_SUSPECT"},
    "km_liebers_labstudy21_bowling_negative_coordinate_mapping.csv": {"ROTATION_SUSPECT"},
    "km_liebers_labstudy21_bowling_negative_coord_mapping_and_rotations.csv": {"ROTATION_SUSPECT"},
    "km_boxrr_beatsaber23_fixed.csv": set(),
    "km_boxrr_beatsaber23_fixed.bsor": set(),
    # mirrored + Euler errors; the Euler part leaves no signal at a Beat Saber player's level head
    "km_boxrr_beatsaber23_negative_coord_mapping_and_coord_system_and_rotations.csv": {"HANDEDNESS_SUSPECT"},
    "km_who_is_alyx_fixed_cutout.csv": set(),
    "km_moore_cross_domain23_fixed_1m5s_to_1m20s.csv": set(),
    "km_liebers_beatsaber23_fixed.csv": set(),
    "mlt_examples_data.csv": set(),
    "xror_sample1.bsor": set(),
}


def test_all_files_listed() -> None:
    files = {p.name for p in VR.iterdir() if p.is_file() and p.suffix in (".csv", ".bsor")}
    assert files == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_real_file_codes(name: str) -> None:
    seq = read_tracking(VR / name)
    got = {w.code for w in seq.warnings} & SUSPECT
    assert got == EXPECTED[name], [w.message for w in seq.warnings]
    assert np.all(np.isfinite(seq.transforms()))
    assert seq.fps == 60.0 and seq.num_frames > 100


def test_full_bsor_matches_csv() -> None:
    csv = read_raw(str(VR / "km_boxrr_beatsaber23_fixed.csv"))
    bsor = read_raw(str(VR / "km_boxrr_beatsaber23_fixed.bsor"))
    pc, rc = to_world(PRESETS["openxr"], csv.positions * 0.01, quat_to_matrix(csv.quats))
    pb, rb = to_world(PRESETS["unity"], bsor.positions[1:1446], quat_to_matrix(bsor.quats[1:1446]))
    assert np.abs(pc - pb).max() < 2e-5
    assert np.abs(rc - rb).max() < 5e-3
