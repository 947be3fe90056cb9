# SPDX-License-Identifier: GPL-3.0-or-later
"""AMASS reader on a small synthetic file of the AMASS layout (no SMPL-H model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kinest_core import rotations as rot
from kinest_core.skeleton import NUM_JOINTS, PARENTS, Skeleton
from kinest_core.training import amass
from kinest_core.training.mocap_library import load_motions

# a body in the SMPL model frame (Y up, facing +Z): our neutral rest joints turned back
_JOINTS_ZUP = Skeleton.neutral(1.7).rest_joints()
_JOINTS_MODEL = _JOINTS_ZUP @ amass.MODEL_TO_REST  # rows: C^T p
_FLOOR_Y = -0.9


def _fake_rest(betas: np.ndarray, gender: str) -> tuple[np.ndarray, float]:
    """Stands in for the user's SMPL-H model: joints in the model frame and the lowest vertex height."""
    return _JOINTS_MODEL, _FLOOR_Y


def _smpl_world_joints(poses: np.ndarray, trans: np.ndarray, joints: np.ndarray) -> np.ndarray:
    """SMPL forward kinematics in the AMASS world, written out independently."""
    f = poses.shape[0]
    r = rot.axis_angle_to_matrix(poses[:, : NUM_JOINTS * 3].reshape(f, NUM_JOINTS, 3))
    glob = np.empty_like(r)
    pos = np.empty((f, NUM_JOINTS, 3))
    glob[:, 0] = r[:, 0]
    pos[:, 0] = joints[0] + trans
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        glob[:, j] = glob[:, p] @ r[:, j]
        pos[:, j] = pos[:, p] + np.einsum("fab,b->fa", glob[:, p], joints[j] - joints[p])
    return pos


def _write(path: Path, f: int = 50, fps: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    poses = np.zeros((f, 156))
    t = np.arange(f) / fps
    # stand up in the Z-up world (Rx +90 deg), turning slowly about the world z axis
    root = rot.matrix_to_axis_angle(
        rot.axis_angle_to_matrix(np.stack([0 * t, 0 * t, 0.5 * t], -1))
        @ rot.axis_angle_to_matrix(np.array([np.pi / 2, 0, 0]))
    )
    poses[:, :3] = root
    poses[:, 3:66] = rng.normal(scale=0.2, size=(1, 63)) + 0.1 * np.sin(t)[:, None]
    trans = np.stack([0.5 * t, 0 * t, 0 * t + 0.05], -1)
    np.savez(path, poses=poses, trans=trans, betas=np.zeros(16), gender=np.array("male"), mocap_framerate=np.array(fps))
    return poses, trans


def test_synthetic_amass_file_converts_exactly(tmp_path: Path) -> None:
    p = tmp_path / "01_01_poses.npz"
    poses, trans = _write(p)
    m = amass.convert_amass(str(p), _fake_rest)
    assert m.fps == 60.0 and m.num_frames == 25
    truth = _smpl_world_joints(poses, trans, _JOINTS_MODEL)[::2]
    assert np.allclose(m.joint_positions, truth, atol=1e-9)
    # our rest layout: standing upright facing -Y; feet above the floor by the model's floor
    sk = Skeleton(m.rest_offsets)
    assert np.allclose(sk.rest_joints()[15] - sk.rest_joints()[0], _JOINTS_ZUP[15] - _JOINTS_ZUP[0])
    assert m.rest_offsets[0, 2] == _JOINTS_MODEL[0, 1] - _FLOOR_Y
    # first frame has no turn: the pelvis rotation is the identity (upright, facing -Y)
    q0 = rot.quat_to_matrix(m.local_rotations[0, 0])
    assert np.allclose(q0, np.eye(3), atol=1e-9)


def test_prepare_amass_split_and_load(tmp_path: Path) -> None:
    root = tmp_path / "amass"
    for i in range(12):
        d = root / ("CMU" if i % 2 else "HDM05") / f"s{i}"
        d.mkdir(parents=True)
        _write(d / f"take_{i}_poses.npz", f=20)
    (root / "CMU" / "s1" / "shape.npz").write_bytes(b"")  # shape files are not motions
    (root / "Other").mkdir()
    _write(root / "Other" / "x_poses.npz", f=10)
    test_list = {"CMU/s1/take_1_poses.npz", "HDM05/s2/take_2_poses.npz"}
    counts = amass.prepare_amass(str(root), str(tmp_path / "out"), _fake_rest, test_files=test_list)
    assert counts == {"train": 10, "test": 2, "skipped": 0}
    assert len(load_motions(str(tmp_path / "out" / "test"))) == 2
    # hash split: stable, about 10 %
    names = [f"CMU/{i}/{i}_poses.npz" for i in range(2000)]
    share = sum(amass.protocol1_split(n) == "test" for n in names) / len(names)
    assert 0.08 < share < 0.12
    assert amass.protocol1_split(names[0]) == amass.protocol1_split(names[0])


def _fake_smplh(folder: Path) -> np.ndarray:
    """A tiny SMPL-H-layout model (52 joints, one vertex per joint + one on the floor) for smplx."""
    j = 52
    parents = list(PARENTS) + [20] * 15 + [21] * 15
    hand = np.concatenate([np.repeat(_JOINTS_MODEL[20:21], 15, 0), np.repeat(_JOINTS_MODEL[21:22], 15, 0)])
    joints = np.concatenate([_JOINTS_MODEL, hand])
    v = np.concatenate([joints, [[0.0, _FLOOR_Y, 0.0]]])
    reg = np.zeros((j, j + 1))
    reg[np.arange(j), np.arange(j)] = 1.0
    w = np.zeros((j + 1, j))
    w[np.arange(j), np.arange(j)] = 1.0
    w[j, 0] = 1.0
    kt = np.stack([np.array([4294967295] + parents[1:], dtype=np.int64), np.arange(j)])
    (folder / "male").mkdir(parents=True)
    np.savez(
        folder / "male" / "model.npz",
        v_template=v,
        shapedirs=np.zeros((j + 1, 3, 16)),
        posedirs=np.zeros((j + 1, 3, (j - 1) * 9)),
        J_regressor=reg,
        weights=w,
        kintree_table=kt,
        f=np.array([[0, 1, 2]]),
        hands_componentsl=np.eye(45),
        hands_componentsr=np.eye(45),
        hands_meanl=np.zeros(45),
        hands_meanr=np.zeros(45),
    )
    return joints


def test_smplh_model_through_smplx(tmp_path: Path) -> None:
    import pytest

    pytest.importorskip("smplx")
    _fake_smplh(tmp_path / "models")
    fn = amass.smplh_rest_joints(str(tmp_path / "models"))
    joints, floor = fn(np.zeros(16), "male")
    assert np.allclose(joints, _JOINTS_MODEL, atol=1e-5)
    assert floor == pytest.approx(_FLOOR_Y, abs=1e-6)
    p = tmp_path / "take_poses.npz"
    poses, trans = _write(p, f=12)
    m = amass.convert_amass(str(p), fn)
    truth = _smpl_world_joints(poses, trans, _JOINTS_MODEL)[::2]
    assert np.allclose(m.joint_positions, truth, atol=1e-5)
    with pytest.raises(FileNotFoundError, match="female"):
        fn(np.zeros(16), "female")


def test_prepare_amass_command(tmp_path: Path, capsys: object) -> None:
    import pytest

    pytest.importorskip("smplx")
    from kinest_core.cli import main

    _fake_smplh(tmp_path / "models")
    for i in range(3):
        d = tmp_path / "amass" / "CMU" / f"s{i}"
        d.mkdir(parents=True)
        _write(d / f"t{i}_poses.npz", f=10)
    split = tmp_path / "test_files.txt"
    split.write_text("CMU/s0/t0_poses.npz\n")
    args = ["prepare-amass", "--amass", str(tmp_path / "amass"), "--smplh", str(tmp_path / "models")]
    assert main([*args, "--out", str(tmp_path / "out"), "--split-file", str(split)]) == 0
    assert len(load_motions(str(tmp_path / "out" / "train"))) == 2
    assert len(load_motions(str(tmp_path / "out" / "test"))) == 1
