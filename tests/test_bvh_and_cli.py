# SPDX-License-Identifier: GPL-3.0-or-later
"""The SMPL-22 BVH writer round-trips through the reader; the CLI commands run end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from kinest_core.bench import synthetic_tracking
from kinest_core.cli import main
from kinest_core.io.bvh import BvhError, read_bvh, write_motion_bvh
from kinest_core.model import KineST, KineSTConfig, save_checkpoint
from kinest_core.skeleton import JOINT_NAMES, Skeleton, forward_kinematics


def test_written_bvh_reproduces_joint_positions(tmp_path) -> None:
    s = Skeleton.neutral(1.7)
    local = Rotation.random(30 * 22, random_state=0).as_matrix().reshape(30, 22, 3, 3)
    trans = np.random.default_rng(0).normal(size=(30, 3))
    _, pos = forward_kinematics(local, s.rest_offsets, trans)
    q = Rotation.from_matrix(local.reshape(-1, 3, 3)).as_quat(scalar_first=True).reshape(30, 22, 4)
    path = tmp_path / "m.bvh"
    write_motion_bvh(str(path), q, trans, s.rest_offsets, fps=60.0)
    bvh = read_bvh(str(path))
    assert bvh.num_frames == 30 and abs(bvh.fps - 60.0) < 1e-4
    assert sorted(bvh.names) == sorted(JOINT_NAMES)
    _, p = bvh.global_transforms()
    order = [bvh.index(n) for n in JOINT_NAMES]
    y_up_cm = p[:, order]
    # BVH is Y-up cm: (x, y, z)_zup == (x, -z, y)_bvh / 100
    back = np.stack([y_up_cm[..., 0], -y_up_cm[..., 2], y_up_cm[..., 1]], axis=-1) / 100
    np.testing.assert_allclose(back, pos, atol=2e-4)


def test_reader_reports_file_and_line(tmp_path) -> None:
    bad = tmp_path / "bad.bvh"
    bad.write_text("HIERARCHY\nROOT hip\n{\n  OFFSET 0 0 zero\n}\n")
    with pytest.raises(BvhError, match=r"bad\.bvh, line 4"):
        read_bvh(str(bad))
    trunc = tmp_path / "trunc.bvh"
    trunc.write_text(
        "HIERARCHY\nROOT hip\n{\n OFFSET 0 0 0\n CHANNELS 3 Xposition Yposition Zposition\n}\nMOTION\nFrames: 5\nFrame Time: 0.01\n0 0 0\n"
    )
    with pytest.raises(BvhError, match="truncated"):
        read_bvh(str(trunc))
    with pytest.raises(BvhError, match="not a BVH"):
        (tmp_path / "x.bvh").write_bytes(b"\x00\x01garbage")
        read_bvh(str(tmp_path / "x.bvh"))


@pytest.fixture
def tiny_checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "tiny", KineST(KineSTConfig.tiny()), {"training": {"summary": "random weights"}})


def test_cli_info_reconstruct(tmp_path, tiny_checkpoint, capsys) -> None:
    assert main(["info", "--json", "--checkpoint", str(tiny_checkpoint)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == KineST(KineSTConfig.tiny()).num_parameters() and info["device"] in ("cpu", "cuda")
    tracking = synthetic_tracking(70)
    tracking.save_npz(str(tmp_path / "take.npz"))
    out = tmp_path / "out" / "take"
    assert (
        main(
            ["reconstruct", str(tmp_path / "take.npz"), "-o", str(out), "--checkpoint", str(tiny_checkpoint), "--quiet"]
        )
        == 0
    )
    with np.load(out.with_suffix(".npz")) as z:
        assert z["local_rotations"].shape == (70, 22, 4) and z["joint_positions"].shape == (70, 22, 3)
    assert read_bvh(str(out.with_suffix(".bvh"))).num_frames == 70
    # a missing file is one clear line and exit code 1, not a traceback
    assert main(["reconstruct", str(tmp_path / "nope.npz"), "-o", str(out), "--checkpoint", str(tiny_checkpoint)]) == 1
    assert "nope.npz" in capsys.readouterr().err


def test_cli_bench_json_reports_ratios(tiny_checkpoint, capsys) -> None:
    assert main(["bench", "--json", "--quick", "--checkpoint", str(tiny_checkpoint)]) == 0
    res = json.loads(capsys.readouterr().out)
    for key in (
        "offline_fps",
        "online_fps",
        "ms_per_window_batch1",
        "scan_speedup_vs_naive",
        "skfm_train_scan_speedup",
    ):
        assert res[key] > 0
    assert res["scan_speedup_vs_naive"] > 1.0  # the chunked scan beats the step loop
