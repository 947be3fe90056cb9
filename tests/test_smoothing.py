# SPDX-License-Identifier: GPL-3.0-or-later
"""Smoothing: lowers jitter, keeps the skeleton and the head, respects strength per body part."""

from __future__ import annotations

import numpy as np
import pytest

from kinest_core import rotations as rot
from kinest_core.postprocess.smoothing import BODY_PARTS, SmoothingOptions, smooth_motion, smooth_quaternions
from kinest_core.skeleton import HEAD, PARENTS, Skeleton, forward_kinematics
from kinest_core.types import Motion


def _shaky_motion(frames: int = 300, noise: float = 0.02, seed: int = 0) -> Motion:
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 60.0
    aa = np.zeros((frames, 22, 3))
    aa[:, 0, 2] = 2.8 * np.sin(0.7 * t)  # turns far enough for quaternion sign flips
    aa[:, 16, 0] = np.sin(2 * t)
    aa[:, 4, 0] = -0.5 * (1 + np.sin(2 * t))
    aa += noise * rng.standard_normal(aa.shape)
    sk = Skeleton.neutral(1.8)
    local = rot.axis_angle_to_matrix(aa)
    trans = np.stack([0.3 * np.sin(t), 0.2 * t, 0 * t], -1)
    _, pos = forward_kinematics(local, sk.rest_offsets, trans)
    q = rot.matrix_to_quat(local)
    q[::7] *= -1  # sign flips, as a careless source would have them
    return Motion(q, trans, pos, sk.rest_offsets, 60.0)


@pytest.mark.parametrize("method", ["savgol", "one_euro"])
def test_smoothing_lowers_jitter_and_keeps_bones(method: str) -> None:
    m = _shaky_motion()
    r = smooth_motion(m, SmoothingOptions.uniform(0.5, method))
    assert r.after.mean < 0.5 * r.before.mean and r.reduction_percent > 50
    out = r.motion
    np.testing.assert_allclose(np.linalg.norm(out.local_rotations, axis=-1), 1.0, atol=1e-9)
    assert np.all(np.sum(out.local_rotations[1:] * out.local_rotations[:-1], axis=-1) > 0)  # continuous
    bones = np.linalg.norm(out.joint_positions[:, 1:] - out.joint_positions[:, list(PARENTS[1:])], axis=-1)
    np.testing.assert_allclose(bones, np.broadcast_to(np.linalg.norm(m.rest_offsets[1:], axis=-1), bones.shape))
    _, fk = forward_kinematics(rot.quat_to_matrix(out.local_rotations), out.rest_offsets, out.root_translation)
    np.testing.assert_allclose(fk, out.joint_positions, atol=1e-9)  # a consistent Motion
    assert out.info["smoothing"]["method"] == method and m.info == {}  # input untouched


def test_zero_strength_changes_nothing_and_head_stays_put() -> None:
    m = _shaky_motion(120)
    r = smooth_motion(m, SmoothingOptions.uniform(0.0))
    np.testing.assert_allclose(r.motion.joint_positions, m.joint_positions, atol=1e-9)
    assert r.after.mean == pytest.approx(r.before.mean) and r.joint_shift_mean_m < 1e-9
    opts = SmoothingOptions(strengths={"legs": 1.0, "spine": 0.5, "arms": 0.8, "head": 0.0})
    r = smooth_motion(m, opts)
    np.testing.assert_allclose(r.motion.joint_positions[:, HEAD], m.joint_positions[:, HEAD], atol=1e-9)
    assert r.head_shift_max_m < 1e-9


def test_strength_is_per_body_part() -> None:
    m = _shaky_motion(200)
    opts = SmoothingOptions(strengths={"legs": 1.0, "spine": 0.0, "arms": 0.0, "head": 0.0})
    q = rot.quat_make_continuous(m.local_rotations, axis=0)
    out = smooth_quaternions(q, opts.joint_strengths(), opts, 60.0)
    untouched = list(BODY_PARTS["spine"] + BODY_PARTS["arms"] + BODY_PARTS["head"])
    np.testing.assert_allclose(out[:, untouched], q[:, untouched], atol=1e-12)
    legs = list(BODY_PARTS["legs"])
    assert np.abs(out[:, legs] - q[:, legs]).max() > 1e-3
    stronger = smooth_motion(m, SmoothingOptions.uniform(0.9)).after.mean
    weaker = smooth_motion(m, SmoothingOptions.uniform(0.2)).after.mean
    assert stronger < weaker


def test_short_motion_and_bad_options() -> None:
    m = _shaky_motion(5)
    r = smooth_motion(m, SmoothingOptions.uniform(1.0))
    assert r.motion.num_frames == 5
    with pytest.raises(ValueError, match="method"):
        smooth_motion(m, SmoothingOptions(method="median"))
    with pytest.raises(ValueError, match="body part"):
        smooth_motion(m, SmoothingOptions(strengths={"tail": 0.5}))
    with pytest.raises(ValueError, match="0..1"):
        smooth_motion(m, SmoothingOptions.uniform(2.0))


def test_jitter_command(tmp_path, capsys) -> None:
    import argparse
    import json

    from kinest_core.commands import jitter as cmd

    m = _shaky_motion(120)
    m.save_npz(str(tmp_path / "m.npz"))
    parser = argparse.ArgumentParser()
    cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["jitter", str(tmp_path / "m.npz"), "--smooth", "0.5", "--head", "0.2", "--json"])
    args.output = str(tmp_path / "smooth.npz")
    assert args.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["smoothing"]["strengths"]["head"] == 0.2 and report["smoothing"]["strengths"]["legs"] == 0.5
    assert report["smoothing"]["jitter_after"] < report["jitter"]["mean"]
    assert Motion.load_npz(str(tmp_path / "smooth.npz")).num_frames == 120
    from kinest_core.cli import main

    assert main(["jitter", str(tmp_path / "missing.npz")]) == 1  # one line on stderr naming the file
    err = capsys.readouterr().err
    assert "missing.npz" in err and "Traceback" not in err
