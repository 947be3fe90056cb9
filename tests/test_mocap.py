# SPDX-License-Identifier: GPL-3.0-or-later
"""Full-body BVH -> SMPL-22: exact positions, rest layout, twist conventions, rates, glitches, cache."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kinest_core import rotations as rot
from kinest_core.io.bvh import read_bvh
from kinest_core.skeleton import NUM_JOINTS, PARENTS, Skeleton, children, forward_kinematics
from kinest_core.training import mocap, mocap_library

FIX = Path(__file__).parent / "fixtures" / "mocap"
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mocap"
DAZ = FIX / "02_01_cut.bvh"
MB = FIX / "mb_01_02_cut.bvh"
ACCAD = FIX / "accad_Male2_C3_Run_cut.bvh"

#: The stated conversion tolerance: FK of the converted motion vs the mapped source joints.
TOLERANCE_M = 1e-3


def _source_positions(path: Path) -> np.ndarray:
    """Mapped source joint positions (F, 22, 3), Z-up metres, computed independently of the solver."""
    bvh = read_bvh(str(path))
    spec = mocap.detect_skeleton(bvh)
    gr, gp = bvh.global_transforms()
    return mocap._map_joints(bvh, spec, gr, gp).positions


@pytest.mark.parametrize(
    ("path", "skeleton", "step"),
    [(DAZ, "cmu_daz", 2.0), (MB, "cmu_mb", 2.0), (ACCAD, "accad", 0.5)],
)
def test_converted_positions_match_source(path: Path, skeleton: str, step: float) -> None:
    rep: list[mocap.ConversionReport] = []
    motions = mocap.convert_bvh(str(path), report=rep)
    assert rep[0].skeleton == skeleton
    assert len(motions) == 1
    m = motions[0]
    assert m.fps == 60.0 and m.local_rotations.shape[1:] == (NUM_JOINTS, 4)
    src = _source_positions(path)
    a, b = m.info["source_frames"]
    src = src[a:b] - np.array([0.0, 0.0, m.info["floor_shift_m"]])
    # frames of the 60 fps motion that fall exactly on source frames
    k = np.arange(m.num_frames)
    t = k * step
    exact = np.abs(t - np.round(t)) < 1e-9
    idx = np.round(t[exact]).astype(int)
    ok = idx < src.shape[0]
    err = np.linalg.norm(m.joint_positions[exact][ok] - src[idx[ok]], axis=-1)
    assert err.max() < TOLERANCE_M, f"max error {err.max() * 1000:.2f} mm"
    assert rep[0].max_position_error_m < TOLERANCE_M
    # the stored positions are FK of the stored rotations
    _, fk = forward_kinematics(rot.quat_to_matrix(m.local_rotations), m.rest_offsets, m.root_translation)
    assert np.allclose(fk, m.joint_positions, atol=1e-9)


@pytest.mark.parametrize("path", [DAZ, MB, ACCAD])
def test_rest_layout_is_smpl(path: Path) -> None:
    m = mocap.convert_bvh(str(path))[0]
    neutral = Skeleton.neutral().rest_offsets
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        if len(children(p)) == 1:  # single-child bones follow the neutral direction
            a = m.rest_offsets[j] / np.linalg.norm(m.rest_offsets[j])
            b = neutral[j] / np.linalg.norm(neutral[j])
            assert a @ b > 0.9999
    rest = Skeleton(m.rest_offsets).rest_joints()
    assert rest[15, 2] > rest[0, 2] > rest[7, 2]  # Z up
    assert rest[16, 0] > 0.1 > -0.1 > rest[17, 0]  # left at +X, arms out (T)
    assert 1.3 < Skeleton(m.rest_offsets).height < 2.1
    # upright in the motion, feet near the floor
    j = m.joint_positions
    assert np.median(j[:, 15, 2] - j[:, 0, 2]) > 0.3
    assert -0.05 < j[:, [7, 8, 10, 11], 2].min() < 0.15


@pytest.mark.parametrize("path", [DAZ, MB, ACCAD])
def test_twist_conventions_agree(path: Path) -> None:
    """Elbows bend about their local Z, knees about local X, on every source skeleton.

    Positions alone cannot show a wrong twist; the hinge axes can.
    """
    m = mocap.convert_bvh(str(path))[0]
    aa = rot.quat_to_axis_angle(m.local_rotations)
    for joint, axis in ((18, 2), (19, 2), (4, 0), (5, 0)):
        v = aa[:, joint]
        big = np.linalg.norm(v, axis=-1) > np.radians(30)
        if big.sum() < 5:
            continue
        share = np.abs(v[big, axis]) / np.linalg.norm(v[big], axis=-1)
        assert np.median(share) > 0.6, (joint, np.median(share))


def test_frame_rate_overrides_and_glitches() -> None:
    assert mocap.true_fps("/x/60_04.bvh.gz", 120.0) == 60.0
    assert mocap.true_fps("/x/61_10.bvh", 120.0) == 60.0
    assert mocap.true_fps("/x/06_04.bvh", 120.0) == 120.0
    pos = np.zeros((400, 22, 3))
    pos[:, :, 0] = np.linspace(0, 1, 400)[:, None]
    pos[200, 5] += 1.0  # a one-frame flip: 120 m/s at 120 fps
    segs = mocap.good_segments(pos, 120.0, skip=10)
    assert segs[0][0] == 10 and len(segs) == 2
    assert segs[0][1] <= 199 and segs[1][0] >= 202
    assert mocap.good_segments(pos, 120.0, skip=10, speed=300.0) == [(10, 400)]


def test_resample_halves_and_doubles() -> None:
    local = rot.axis_angle_to_matrix(
        np.linspace(0, 1, 11)[:, None, None] * np.array([0.0, 0.0, 1.0]) * np.ones((11, 22, 1))
    )
    root = np.linspace(0, 1, 11)[:, None] * np.ones((11, 3))
    q, r = mocap.resample(local, root, 120.0, 60.0)
    assert q.shape[0] == 6 and np.allclose(r[:, 0], np.linspace(0, 1, 6))
    q, r = mocap.resample(local, root, 30.0, 60.0)
    assert q.shape[0] == 21
    angle = rot.quat_to_axis_angle(q[:, 3])[:, 2]
    assert np.allclose(angle, np.linspace(0, 1, 21), atol=1e-9)


def test_convert_folder_caches(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    os.symlink(DAZ, src / "02_01_cut.bvh")
    cache = tmp_path / "cache"
    files = mocap_library.convert_folder(str(src), str(cache))
    assert [os.path.basename(f) for f in files] == ["02_01_cut_00.npz"]
    stamp = os.path.getmtime(files[0])
    again = mocap_library.convert_folder(str(src), str(cache))
    assert again == files and os.path.getmtime(files[0]) == stamp
    assert (cache / "index.json").exists()
    loaded = mocap_library.load_motions(str(cache))
    assert loaded[0].num_frames == mocap.convert_bvh(str(DAZ))[0].num_frames


def test_unknown_skeleton_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "odd.bvh"
    p.write_text(
        "HIERARCHY\nROOT Root\n{\n OFFSET 0 0 0\n CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n"
        " End Site\n {\n  OFFSET 0 1 0\n }\n}\nMOTION\nFrames: 2\nFrame Time: 0.0333333\n0 0 0 0 0 0\n0 0 0 0 0 0\n"
    )
    with pytest.raises(mocap.MocapError, match="unknown skeleton"):
        mocap.convert_bvh(str(p))


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/data/mocap")
@pytest.mark.parametrize(
    "name",
    [
        "test/11_01.bvh",
        "train/05_05.bvh.gz",
        "train/mb_06_13.bvh.gz",
        "train/accad_Male2_C3_Run.bvh.gz",
        "train/60_04.bvh.gz",
    ],
)
def test_real_files_convert_exactly(name: str) -> None:
    rep: list[mocap.ConversionReport] = []
    motions = mocap.convert_bvh(str(SHARED / name), report=rep)
    assert motions and rep[0].max_position_error_m < TOLERANCE_M
    if name.startswith("train/05_05"):
        assert len(motions) >= 2  # joint flips cut out
    if name.startswith("train/60_"):
        assert rep[0].source_fps == 60.0
    if name.startswith("train/accad"):
        test_twist_conventions_agree(SHARED / name)
    for m in motions:
        v = np.linalg.norm(np.diff(m.joint_positions, axis=0), axis=-1).max() * 60
        assert v < 30.0


def test_optional_smoothing_lowers_jitter_only() -> None:
    from kinest_core.metrics import jitter_per_joint

    raw = mocap.convert_bvh(str(DAZ))[0]
    smooth = mocap.convert_bvh(str(DAZ), smooth_s=1 / 120)[0]
    assert smooth.num_frames == raw.num_frames
    assert jitter_per_joint(smooth.joint_positions)[3:].mean() < 0.8 * jitter_per_joint(raw.joint_positions)[3:].mean()
    assert np.abs(smooth.joint_positions - raw.joint_positions).max() < 0.02


def test_harmonize_settles_head_and_hands_without_moving_joints() -> None:
    motions = mocap.convert_bvh(str(DAZ)) + mocap.convert_bvh(str(ACCAD))
    keys = [mocap_library.subject_key("02_01.bvh"), mocap_library.subject_key("accad_Male2_C3_Run.bvh.gz")]
    assert keys == ["cmu_daz:02", "accad:Male2"]
    assert mocap_library.subject_key("mb_01_02.bvh.gz") == "cmu_mb:01"
    corr = mocap_library.harmonize(motions, keys)
    assert set(corr) == set(keys)
    for m in motions:
        _, fk = forward_kinematics(rot.quat_to_matrix(m.local_rotations), m.rest_offsets, m.root_translation)
        assert np.allclose(fk, m.joint_positions, atol=1e-9)
        wrist = rot.quat_to_matrix(m.local_rotations[:, 20]).mean(axis=0)
        assert np.allclose(wrist, wrist.T, atol=1e-9)  # the mean has no rotation part left (polar factor = I)
    again = mocap_library.harmonize(motions, keys)
    assert all(abs(v) < 0.5 for c in again.values() for v in c.values()), again  # settled (head pitch to ~0.1 deg)


def test_pack_round_trip(tmp_path: Path) -> None:
    motions = mocap.convert_bvh(str(DAZ)) + mocap.convert_bvh(str(ACCAD))
    path = str(tmp_path / "all.pack.npz")
    assert mocap_library.pack_motions(motions, path) > 0
    back = mocap_library.load_motions(path)
    assert len(back) == 2
    for a, b in zip(motions, back, strict=True):
        assert b.num_frames == a.num_frames and b.fps == a.fps
        assert np.abs(b.joint_positions - a.joint_positions).max() < 5e-4
    with pytest.raises(ValueError, match="pack"):
        mocap_library.pack_motions(motions, str(tmp_path / "x.npz"))
