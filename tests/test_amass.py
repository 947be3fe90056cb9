# SPDX-License-Identifier: GPL-3.0-or-later
"""AMASS reader on a small synthetic file of the AMASS layout (no SMPL-H model needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from kinest_core import amass
from kinest_core import rotations as rot
from kinest_core.mocap import load_motions
from kinest_core.skeleton import NUM_JOINTS, PARENTS, Skeleton

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
