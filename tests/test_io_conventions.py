# SPDX-License-Identifier: GPL-3.0-or-later
"""Axes, handedness and calibration: the maths that decides where every pose lands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kinest_core.io import CONVENTION_PRESETS, PRESETS, Calibration, read_raw, read_tracking
from kinest_core.io.calibration import apply_calibration
from kinest_core.io.conventions import from_world, get_convention, to_world
from kinest_core.rotations import euler_to_matrix, quat_to_matrix

FIX = Path(__file__).resolve().parent / "fixtures" / "vr"


def _random_rotations(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return euler_to_matrix(rng.uniform(-np.pi, np.pi, (n, 3)), "xyz")


@pytest.mark.parametrize("name", [c for c in CONVENTION_PRESETS if c != "auto"])
def test_presets_give_proper_rotations_and_invert(name: str) -> None:
    conv = get_convention(name)
    r = _random_rotations(20)
    p = np.random.default_rng(1).normal(size=(20, 3))
    pw, rw = to_world(conv, p, r)
    assert np.allclose(np.linalg.det(rw), 1.0)
    p2, r2 = from_world(conv, pw, rw)
    assert np.allclose(p2, p) and np.allclose(r2, r)


def test_identity_device_faces_source_forward() -> None:
    """A device with identity orientation looks along the convention's forward, which maps to +Y."""
    for name in ("openxr", "unity", "unreal"):
        conv = PRESETS[name]
        _, rw = to_world(conv, np.zeros(3), np.eye(3))
        assert np.allclose(rw @ [0, -1, 0], [0, 1, 0]), name  # canonical forward (-Y local) -> world +Y
        assert np.allclose(rw @ [0, 0, 1], [0, 0, 1]), name


def test_openxr_and_unity_positions() -> None:
    assert np.allclose(PRESETS["openxr"].matrix @ [1, 2, 3], [1, -3, 2])
    assert np.allclose(PRESETS["unity"].matrix @ [1, 2, 3], [1, 3, 2])
    assert PRESETS["unity"].handedness == "left" and PRESETS["openxr"].handedness == "right"


def test_unity_bsor_matches_openxr_csv() -> None:
    """km_boxrr fixed.csv is .bsor frames 1-1445 x100 with Z mirrored: both must land on the same world poses."""
    csv = read_raw(str(FIX / "km_boxrr_beatsaber23_fixed.csv"))
    bsor = read_raw(str(FIX / "km_boxrr_beatsaber23_first1446.bsor"))
    assert csv.num_samples == 1445 and bsor.num_samples == 1446
    pc, rc = to_world(PRESETS["openxr"], csv.positions * 0.01, quat_to_matrix(csv.quats))
    pb, rb = to_world(PRESETS["unity"], bsor.positions[1:], quat_to_matrix(bsor.quats[1:]))
    assert np.abs(pc - pb).max() < 1e-5 + 0.0005 * 0.01 * 2  # CSV has 3 decimals in cm
    ang = np.arccos(np.clip((np.trace(np.swapaxes(rc, -1, -2) @ rb, axis1=-2, axis2=-1) - 1) / 2, -1, 1))
    assert np.degrees(ang).max() < 0.2  # 3-decimal quaternions


def test_read_tracking_same_motion_from_csv_and_bsor() -> None:
    a = read_tracking(FIX / "km_boxrr_beatsaber23_fixed.csv", calibration="generic")
    b = read_tracking(FIX / "km_boxrr_beatsaber23_first1446.bsor", calibration="generic")
    assert a.info["convention"] == "openxr" and b.info["convention"] == "unity"
    assert a.info["units"] == "cm" and b.info["units"] == "m"
    assert abs(a.info["body_height_m"] - b.info["body_height_m"]) < 0.02
    # the bsor's frame 0 (all zeros) is dropped, so both start at the same sample
    assert not b.info["original_times"][0] and b.info["zero_frames"] == 1
    n = min(a.num_frames, b.num_frames)
    assert np.abs(a.head[:n, :3, 3] - b.head[:n, :3, 3]).max() < 0.05


def _facing_device(yaw: float, pitch: float = 0.0) -> np.ndarray:
    """OpenXR device orientation looking along heading ``yaw`` (about +Y), pitched up by ``pitch``."""
    return euler_to_matrix(np.array([yaw, pitch, 0.0]), "YXZ")


def test_calibrated_head_faces_where_the_person_looks() -> None:
    conv = PRESETS["openxr"]
    for yaw in np.radians([0, 30, 90, 180, -120]):
        r_src = _facing_device(yaw)
        fwd_src = r_src @ [0, 0, -1]
        _, rw = to_world(conv, np.zeros(3), r_src)
        jr, jp = apply_calibration(np.stack([rw, rw, rw])[None], np.zeros((1, 3, 3)), Calibration.for_family("generic"))
        head = jr[0, 0]
        assert np.allclose(head @ [0, -1, 0], conv.matrix @ fwd_src, atol=1e-9)
        assert np.allclose(head @ [0, 0, 1], [0, 0, 1], atol=1e-9)
        # the head joint sits behind and below the HMD
        back = -(conv.matrix @ fwd_src)
        assert jp[0, 0] @ back > 0.05 and jp[0, 0, 2] < -0.05


def test_wrists_identity_in_tpose_palm_down() -> None:
    """A controller pointing along the arm in T-pose, top towards the front, gives an identity wrist."""
    calib = Calibration()
    # world device frames (canonical: columns are the device's left, back, up axes)
    # left arm along +X, controller forward +X, top to the front (-Y)
    left_dev = np.stack([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], axis=-1).astype(float)
    right_dev = np.stack([[0, 0, -1], [1, 0, 0], [0, -1, 0]], axis=-1).astype(float)
    assert np.allclose(left_dev @ [0, -1, 0], [1, 0, 0]) and np.allclose(right_dev @ [0, -1, 0], [-1, 0, 0])
    rots = np.stack([np.eye(3), left_dev, right_dev])[None]
    jr, jp = apply_calibration(rots, np.zeros((1, 3, 3)), calib)
    assert np.allclose(jr[0, 1], np.eye(3)) and np.allclose(jr[0, 2], np.eye(3))
    # wrists sit behind the grip, towards the body (left wrist at smaller x)
    assert jp[0, 1, 0] < 0 and jp[0, 2, 0] > 0


def test_calibration_families_and_custom_offsets() -> None:
    from dataclasses import replace

    from kinest_core.io import DEVICE_FAMILIES, DeviceOffset

    for fam in DEVICE_FAMILIES:
        c = Calibration.for_family(fam)
        assert np.allclose(np.linalg.det(c.offsets()[:, :3, :3]), 1.0)
    with pytest.raises(ValueError):
        Calibration.for_family("toaster")
    custom = replace(Calibration(), head=DeviceOffset(translation=(0.0, 0.0, 0.0)))
    a = read_tracking(FIX / "km_who_is_alyx_fixed_cutout.csv", calibration=custom, recenter=False, floor=0.0)
    b = read_tracking(FIX / "km_who_is_alyx_fixed_cutout.csv", recenter=False, floor=0.0)
    assert a.info["calibration"]["head"]["translation_m"] == [0.0, 0.0, 0.0]
    local = np.einsum("nba,nb->na", a.head[:, :3, :3], b.head[:, :3, 3] - a.head[:, :3, 3])
    assert np.allclose(local, [0.0, 0.09, -0.08], atol=2e-3)  # behind and below the HMD, in its frame
    with pytest.raises(ValueError):
        DeviceOffset.from_arrays(np.diag([1.0, 1.0, -1.0]), np.zeros(3))
