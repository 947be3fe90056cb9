# SPDX-License-Identifier: GPL-3.0-or-later
"""Training data (windows, augmentation, canonicalisation), the training loop, baselines, evaluation, DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kinest_core import rotations as rot
from kinest_core import rotations_torch as trot
from kinest_core.features import canonicalize_positions, tracking_features
from kinest_core.skeleton import MIRROR_JOINTS, TRACKED_JOINTS, forward_kinematics
from kinest_core.training import data as kd
from kinest_core.training.baselines import MeanPose, load_any_checkpoint
from kinest_core.training.config import ACCAD_ATTRIBUTION, CMU_ATTRIBUTION, TrainConfig, build_model
from kinest_core.training.data import protocol_seams
from kinest_core.training.evaluate import evaluate_motions, model_window, predict_local
from kinest_core.training.mocap import convert_bvh
from kinest_core.training.trainer import train

FIX = Path(__file__).parent / "fixtures" / "mocap"
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def motions() -> list:
    out = convert_bvh(str(FIX / "02_01_cut.bvh")) + convert_bvh(str(FIX / "accad_Male2_C3_Run_cut.bvh"))
    for m, name in zip(out, ("02_01_cut", "accad_Male2_C3_Run_cut"), strict=True):
        m.info["source"] = name
    return out


def _windows(motions: list, w: int = 24, b: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return kd.MotionWindows(motions, w).sample(b, np.random.default_rng(0))


def test_canonicalize_window_numpy_and_torch() -> None:
    rng = np.random.default_rng(1)
    p = rng.normal(size=(2, 10, 3, 3))
    r = np.tile(np.eye(3), (2, 10, 3, 1, 1))
    c = kd.canonicalize_window(r, p)
    assert np.allclose(c[..., 0, :2].mean(axis=-2), 0.0)
    assert np.allclose(c[..., 2], p[..., 2])
    assert np.allclose(c, canonicalize_positions(p))
    ct = kd.canonicalize_window(torch.from_numpy(r), torch.from_numpy(p))
    assert isinstance(ct, torch.Tensor) and np.allclose(ct.numpy(), c)


def test_batch_without_augmentation_matches_numpy_features(motions: list) -> None:
    local, root, rest = _windows(motions)
    b = kd.make_batch(local.double(), root.double(), rest.double())
    glob, pos = forward_kinematics(local[0].double().numpy(), rest[0].double().numpy(), root[0].double().numpy())
    r = glob[:, list(TRACKED_JOINTS)]
    p = canonicalize_positions(pos[:, list(TRACKED_JOINTS)])
    assert np.allclose(b.features[0].numpy(), tracking_features(r, p), atol=1e-5)
    assert np.allclose(b.target[0].numpy().reshape(-1, 22, 6), rot.matrix_to_6d(local[0].double().numpy()), atol=1e-6)
    # ground-truth joints moved by the same shift as the tracked ones
    assert np.allclose(b.positions[0, :, list(TRACKED_JOINTS)].numpy(), p, atol=1e-6)


def test_mirror_yaw_and_scale_are_rigid_body_changes(motions: list) -> None:
    local, root, rest = (t.double() for t in _windows(motions, b=2))
    _, pos = forward_kinematics(local.numpy(), rest.numpy()[:, None], root.numpy())
    g = torch.Generator().manual_seed(0)
    off = kd.AugmentConfig.none()
    mirror = kd.AugmentConfig(**{**off.to_dict(), "mirror": 1.0})
    ml, mr, mrest = kd.augment_motion(local, root, rest, mirror, g)
    _, mpos = forward_kinematics(ml.numpy(), mrest.numpy()[:, None], mr.numpy())
    expect = pos[:, :, list(MIRROR_JOINTS)] * np.array([-1.0, 1.0, 1.0])
    assert np.allclose(mpos, expect, atol=1e-9)
    assert np.allclose(np.linalg.det(ml.numpy()), 1.0)
    yaw = kd.AugmentConfig(**{**off.to_dict(), "yaw": True})
    yl, yr, yrest = kd.augment_motion(local, root, rest, yaw, g)
    _, ypos = forward_kinematics(yl.numpy(), yrest.numpy()[:, None], yr.numpy())
    assert np.allclose(ypos[..., 2], pos[..., 2], atol=1e-9)  # heights kept
    assert np.allclose(np.linalg.norm(ypos[..., :2], axis=-1), np.linalg.norm(pos[..., :2], axis=-1), atol=1e-9)
    scale = kd.AugmentConfig(**{**off.to_dict(), "scale_range": (1.1, 1.1)})
    sl, sr, srest = kd.augment_motion(local, root, rest, scale, g)
    _, spos = forward_kinematics(sl.numpy(), srest.numpy()[:, None], sr.numpy())
    assert np.allclose(spos, pos * 1.1, atol=1e-9)


def test_dropped_hands_are_held(motions: list) -> None:
    local, root, rest = _windows(motions, b=4)
    cfg = kd.AugmentConfig(**{**kd.AugmentConfig.none().to_dict(), "drop_hand": 1.0, "drop_max_frames": 8})
    b = kd.make_batch(local, root, rest, cfg, torch.Generator().manual_seed(3))
    # the hands' position change features are exactly zero over a frozen stretch
    still = (b.features[..., 48:54].abs().reshape(4, 24, 2, 3).sum(-1) == 0).sum(1)
    assert bool((still >= 3).all())


def test_tracked_head_error_is_the_simulated_head_noise(motions: list) -> None:
    local, root, rest = _windows(motions, b=4)
    assert float(kd.make_batch(local, root, rest).tracked_head_error().abs().max()) < 1e-6
    cfg = kd.AugmentConfig(**{**kd.AugmentConfig.none().to_dict(), "jitter_position_m": 0.002})
    err = kd.make_batch(local, root, rest, cfg, torch.Generator().manual_seed(4)).tracked_head_error()
    assert err.shape == (4, 24, 3)
    assert float(err.std()) == pytest.approx(0.002, rel=0.25)  # per-frame noise of the set size
    cfg = kd.AugmentConfig(**{**kd.AugmentConfig.none().to_dict(), "calib_position_m": 0.01})
    err = kd.make_batch(local, root, rest, cfg, torch.Generator().manual_seed(4)).tracked_head_error()
    assert float(err.abs().max()) > 1e-3 and float(err.diff(dim=1).abs().max()) < 1e-6  # constant per window


def test_protocol_windows() -> None:
    assert kd.protocol_windows(96) == [0]
    assert kd.protocol_windows(200) == [0, 96, 104]
    assert kd.protocol_windows(192) == [0, 96]
    assert kd.protocol_windows(50) == []


def test_predict_local_stitches_windows() -> None:
    """Every frame gets the prediction of the window the protocol assigns it to."""

    class FrameEcho(torch.nn.Module):
        config = type("C", (), {"window": 8})()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # encode the head's height into the pelvis rotation angle about z
            angle = x[..., 38:39]
            aa = torch.cat([torch.zeros_like(angle), torch.zeros_like(angle), angle], dim=-1)
            m = trot.axis_angle_to_matrix(aa)[..., None, :, :].expand(x.shape[:-1] + (22, 3, 3))
            return trot.matrix_to_6d(m).reshape(x.shape[:-1] + (132,))

    f = 21
    r = np.tile(np.eye(3), (f, 3, 1, 1))
    p = np.zeros((f, 3, 3))
    p[:, 0, 2] = np.linspace(0.1, 1.0, f)
    out = predict_local(FrameEcho(), r, p)
    angles = rot.matrix_to_axis_angle(out[:, 0])[:, 2]
    assert np.allclose(angles, p[:, 0, 2], atol=1e-6)
    short = predict_local(FrameEcho(), r[:5], p[:5])
    assert short.shape[0] == 5 and np.allclose(rot.matrix_to_axis_angle(short[:, 0])[:, 2], p[:5, 0, 2], atol=1e-6)


def _tiny(model: str, iterations: int, **kw: object) -> TrainConfig:
    return TrainConfig(
        model=model,
        model_config={"preset": "tiny"},
        batch_size=4,
        iterations=iterations,
        log_every=1,
        checkpoint_every=2,
        val_every=0,
        threads=1,
        device="cpu",
        **kw,  # type: ignore[arg-type]
    )


def test_train_checkpoint_resume_and_evaluate(
    motions: list, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    lines: list[str] = []
    s = train(motions, str(out), _tiny("kinest", 3), val=motions[:1], log=lines.append)
    assert s["iterations"] == 3 and s["windows_seen"] == 12
    assert any("windows/s" in line for line in lines)
    ssd_line = next(line for line in lines if line.startswith("SSD op: "))
    if shutil.which("cc") or shutil.which("gcc"):  # training builds and uses the fused CPU loops
        assert ssd_line.startswith("SSD op: fused CPU SSD loops on"), ssd_line
    meta = json.loads((out / "checkpoint_last.json").read_text())
    assert meta["architecture"] == "KineST"
    assert meta["training"]["iterations"] == 3 and "hardware" in meta["training"]
    assert CMU_ATTRIBUTION in meta["attributions"] and ACCAD_ATTRIBUTION in meta["attributions"]
    assert "mpjpe_cm" in meta["validation"]
    s2 = train(motions, str(out), _tiny("kinest", 5), resume=True, log=lines.append)
    assert s2["iterations"] == 5 and s2["windows_seen"] == 20
    assert any("resumed" in line for line in lines)
    model, _ = load_any_checkpoint(out / "checkpoint_last")
    res = evaluate_motions(model, motions)
    assert res["overall"]["frames"] == sum(m.num_frames for m in motions)
    assert set(res["files"]) == {"02_01_cut", "accad_Male2_C3_Run_cut"}
    from kinest_core.cli import main

    capsys.readouterr()
    assert (
        main(["evaluate", "--data", str(FIX / "02_01_cut.bvh"), "--checkpoint", str(out / "checkpoint_last"), "--json"])
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    for key in ("mpjre_deg", "mpjpe_cm", "hand_pe_cm", "upper_pe_cm", "lower_pe_cm", "root_pe_cm", "mpjve_cms"):
        assert key in doc
    for key in ("jitter", "gt_jitter", "foot_skate_cm", "ground_penetration_cm", "frames"):
        assert key in doc
    # protocol jitter splits into third differences across window seams and the rest, frame-weighted
    n = doc["frames"] - 3
    n_seam = 3 * len(protocol_seams(doc["frames"], model_window(model)))
    assert n_seam > 0
    assert doc["jitter"] == pytest.approx((doc["jitter_seams"] * n_seam + doc["jitter_interior"] * (n - n_seam)) / n)
    assert doc["pin_hands"] is False  # the paper's protocol by default
    ckpt = str(out / "checkpoint_last")
    assert main(["evaluate", "--data", str(FIX / "02_01_cut.bvh"), "--checkpoint", ckpt, "--pin-hands", "--json"]) == 0
    pinned = json.loads(capsys.readouterr().out)
    assert pinned["pin_hands"] is True
    assert pinned["hand_pe_cm"] < 0.2 * doc["hand_pe_cm"] and pinned["lower_pe_cm"] == pytest.approx(doc["lower_pe_cm"])
    assert main(["evaluate", "--data", str(FIX / "02_01_cut.bvh"), "--ground-truth", "--json"]) == 0
    gt = json.loads(capsys.readouterr().out)
    assert gt["mpjpe_cm"] == pytest.approx(0.0, abs=1e-9) and gt["jitter"] == pytest.approx(gt["gt_jitter"])


def test_baselines_train_and_load(motions: list, tmp_path: Path) -> None:
    s = train(motions, str(tmp_path / "ap"), _tiny("avatarposer", 50, max_minutes=1e-9), log=lambda s: None)
    assert s["iterations"] == 1  # the time budget stops the run, and it still saves
    ap, meta = load_any_checkpoint(tmp_path / "ap" / "checkpoint_last")
    assert meta["architecture"] == "AvatarPoserLite"
    train(motions, str(tmp_path / "mp"), _tiny("mean_pose", 3), log=lambda s: None)
    mp, _ = load_any_checkpoint(tmp_path / "mp" / "checkpoint_last")
    assert isinstance(mp, MeanPose) and float(mp.count) == 3 * 4 * 24
    # the mean pose's pelvis turns with the head
    x = torch.zeros(1, 24, 54)
    turn = trot.axis_angle_to_matrix(torch.tensor([0.0, 0.0, 1.0]))
    x[..., 0:6] = trot.matrix_to_6d(turn)
    y = trot.sixd_to_matrix(mp(x).reshape(1, 24, 22, 6))
    x0 = torch.zeros(1, 24, 54)
    x0[..., 0:6] = trot.matrix_to_6d(torch.eye(3))
    y0 = trot.sixd_to_matrix(mp(x0).reshape(1, 24, 22, 6))
    assert torch.allclose(y[0, 0, 0], turn @ y0[0, 0, 0], atol=1e-5)
    assert torch.allclose(y[0, 0, 5], y0[0, 0, 5])


def test_lr_schedules() -> None:
    from kinest_core.training.trainer import _lr_at

    step = TrainConfig(lr=1e-3, lr_drop_at=10, warmup=4)
    assert _lr_at(step, 0) == pytest.approx(1e-5) and _lr_at(step, 2) == pytest.approx(1e-3 * (0.01 + 0.99 / 2))
    assert _lr_at(step, 5) == pytest.approx(1e-3) and _lr_at(step, 10) == pytest.approx(1e-4)
    cos = TrainConfig(lr=1e-3, lr_schedule="cosine", iterations=100, min_lr_ratio=0.1)
    assert _lr_at(cos, 0) == pytest.approx(1e-3) and _lr_at(cos, 50) == pytest.approx(1e-3 * 0.55)
    assert _lr_at(cos, 100) == pytest.approx(1e-4)
    timed = TrainConfig(lr=1e-3, lr_schedule="cosine", iterations=10**9, max_minutes=2.0, min_lr_ratio=0.0)
    assert _lr_at(timed, 1, elapsed_s=60.0) == pytest.approx(5e-4)  # half the time budget: half-way down
    with pytest.raises(ValueError, match="lr_schedule"):
        _lr_at(TrainConfig(lr_schedule="linear"), 0)


def test_non_finite_steps_are_skipped_and_init_warm_starts(motions: list, tmp_path: Path) -> None:
    first = train(motions, str(tmp_path / "a"), _tiny("kinest", 2), log=lambda s: None)
    assert first["skipped_steps"] == 0
    init = str(tmp_path / "a" / "checkpoint_last")
    warm = build_model(_tiny("kinest", 1))
    from kinest_core.training.config import load_init as _load_init

    _load_init(warm, init)
    saved, _ = load_any_checkpoint(init)
    assert all(torch.equal(a, b) for a, b in zip(warm.state_dict().values(), saved.state_dict().values(), strict=True))
    # a loss that is NaN every time: each step is skipped, the weights stay those of --init, then it stops
    lines: list[str] = []
    bad = _tiny("kinest", 10, init=init, max_bad_steps=3)
    bad.loss = {**bad.loss, "rotation": float("nan")}
    with pytest.raises(FloatingPointError, match="3 non-finite steps"):
        train(motions, str(tmp_path / "b"), bad, log=lines.append)
    assert sum("step skipped" in line for line in lines) == 3 and any("initialised" in line for line in lines)
    kept, _ = load_any_checkpoint(tmp_path / "b" / "checkpoint_last")
    assert all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(), saved.state_dict().values(), strict=True))
    # the count of skipped steps survives a resume
    resumed = train(motions, str(tmp_path / "b"), _tiny("kinest", 3, init=init), resume=True, log=lambda s: None)
    assert resumed["iterations"] == 3 and resumed["skipped_steps"] == 3
    with pytest.raises(ValueError, match="does not fit"):
        _load_init(build_model(_tiny("avatarposer", 1)), init)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_train_runs_under_torchrun_with_two_processes(tmp_path: Path) -> None:
    """DDP code path: two CPU processes (gloo) train a tiny model for two iterations."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "kinest_core.cli",
        "train",
        "--data",
        str(FIX / "02_01_cut.bvh"),
        "--out",
        str(tmp_path / "ddp"),
        "--tiny",
        "--iterations",
        "2",
        "--batch-size",
        "2",
        "--threads",
        "1",
        "--device",
        "cpu",
    ]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-2000:]
    meta = json.loads((tmp_path / "ddp" / "checkpoint_last.json").read_text())
    assert meta["training"]["batch_size"] == 4 and "x 2 processes" in meta["training"]["hardware"]


def test_evaluation_and_inference_see_the_same_inputs(motions: list) -> None:
    """The protocol prediction of evaluate equals inference.reconstruct(mode="protocol") on the same joints:
    training-side and inference-side features (canonicalisation included) agree."""
    from kinest_core.inference import reconstruct
    from kinest_core.model import KineST, KineSTConfig
    from kinest_core.training.evaluate import tracking_from_joints

    torch.manual_seed(0)
    model = KineST(KineSTConfig.tiny())
    with torch.no_grad():  # a non-trivial head so the output depends on the input
        model.head.weight.normal_(0.0, 0.05)
    m = motions[0]
    r, p = kd.tracked_joints(m)
    seq = tracking_from_joints(r, p)
    ours = predict_local(model, r, p)
    theirs = rot.quat_to_matrix(
        reconstruct(
            seq, model=model, mode="protocol", device="cpu", pin_hands=False, plant_feet=False, precision="float32"
        ).local_rotations
    )
    # Both run the same windows, and both take each frame from the first window that reaches it
    # (the re-aligned last window only fills the frames after the one before it).
    assert np.allclose(theirs, ours, atol=1e-4)


def test_evaluate_in_inference_modes(motions: list) -> None:
    from kinest_core.model import KineST, KineSTConfig

    model = KineST(KineSTConfig.tiny())
    for mode in ("offline", "online"):
        res = evaluate_motions(model, motions[:1], mode=mode)
        assert res["overall"]["frames"] == motions[0].num_frames
    with pytest.raises(ValueError, match="KineST"):
        evaluate_motions(MeanPose(), motions[:1], mode="online")


def test_cli_hold_out_moves_a_subject_to_validation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kinest_core.cli import main

    data = [str(FIX / "02_01_cut.bvh"), str(FIX / "accad_Male2_C3_Run_cut.bvh")]
    args = ["train", "--data", *data, "--out", str(tmp_path / "ho"), "--model", "mean_pose", "--tiny"]
    assert main([*args, "--hold-out", "accad:Male2", "--iterations", "2", "--batch-size", "2", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert "holding out accad:Male2: 1 validation motions, 1 training motions" in out
    meta = json.loads((tmp_path / "ho" / "checkpoint_last.json").read_text())
    assert meta["validation"]["frames"] > 0 and meta["data"]["accad_motions"] == 0


def test_ema_checkpoints_hold_the_moving_average_and_resume(motions: list, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    out = tmp_path / "ema"
    cfg = _tiny("kinest", 1, ema=0.75, lr=1e-2)
    train(motions, str(out), cfg, log=lambda s: None)
    w1 = load_file(str(out / "checkpoint_last.safetensors"))
    raw1 = torch.load(out / "train_state.pt", weights_only=False)["model"]
    # the first average is the first step's weights
    assert all(torch.equal(w1[k], raw1[k]) for k in w1)
    train(motions, str(out), _tiny("kinest", 2, ema=0.75, lr=1e-2), resume=True, log=lambda s: None)
    w2 = load_file(str(out / "checkpoint_last.safetensors"))
    raw2 = torch.load(out / "train_state.pt", weights_only=False)["model"]
    moved = [k for k in w2 if not torch.equal(raw1[k], raw2[k])]
    assert moved, "the second step changed no weight"
    for k in moved:
        # ema = 0.75 * previous average + 0.25 * new weights (the average survived the resume)
        assert torch.allclose(w2[k], 0.75 * w1[k] + 0.25 * raw2[k], atol=1e-6)
        assert not torch.allclose(w2[k], raw2[k])
    meta = json.loads((out / "checkpoint_last.json").read_text())
    assert meta["training"]["config"]["ema"] == 0.75
    with pytest.raises(ValueError, match="ema"):
        train(motions, str(tmp_path / "bad"), _tiny("kinest", 1, ema=1.0), log=lambda s: None)


def test_overlapping_windows_are_ordinary_windows_sharing_frames(motions: list) -> None:
    w, offset = 24, 10
    long_local, long_root, rest = kd.MotionWindows(motions, w).sample(3, np.random.default_rng(4), length=w + offset)
    assert long_local.shape[1] == w + offset
    first, second = kd.make_overlapping_batches(long_local.double(), long_root.double(), rest.double(), w, offset)
    # without augmentation each equals make_batch on its own frames (same normalisation as inference)
    for got, s in ((first, 0), (second, offset)):
        ref = kd.make_batch(long_local[:, s : s + w].double(), long_root[:, s : s + w].double(), rest.double())
        assert torch.allclose(got.features, ref.features) and torch.allclose(got.target, ref.target)
    assert torch.equal(first.target[:, offset:], second.target[:, : w - offset])
    # with augmentation both see the same body and tracking noise on their shared frames
    gen = torch.Generator().manual_seed(0)
    a, b = kd.make_overlapping_batches(long_local, long_root, rest, w, offset, kd.AugmentConfig(), gen)
    assert torch.equal(a.target[:, offset:], b.target[:, : w - offset])
    assert torch.allclose(a.features[:, offset + 1 :, :36], b.features[:, 1 : w - offset, :36])
    both = kd.Batch.cat(a, b)
    assert both.features.shape[0] == 6 and torch.equal(both.rest_offsets[3:], b.rest_offsets)
    with pytest.raises(ValueError, match="offset"):
        kd.make_overlapping_batches(long_local, long_root, rest, w, 0)


def test_training_with_the_window_consistency_loss(motions: list, tmp_path: Path) -> None:
    lines: list[str] = []
    cfg = _tiny("kinest", 2, loss={"rotation": 1.0, "window_consistency": 1.0})
    s = train(motions, str(tmp_path / "wc"), cfg, log=lines.append)
    assert s["windows_seen"] == 2 * cfg.batch_size  # pairs count as the windows they are
    assert any("window_consistency" in line for line in lines)
    with pytest.raises(ValueError, match="batch_size"):
        bad = _tiny("kinest", 1, loss={"window_consistency": 1.0})
        bad.batch_size = 1
        train(motions, str(tmp_path / "bad"), bad)


def test_training_with_the_placed_acceleration_loss(motions: list, tmp_path: Path) -> None:
    lines: list[str] = []
    cfg = _tiny("kinest", 2, loss={"rotation": 1.0, "placed_acceleration": 10.0})
    train(motions, str(tmp_path / "pa"), cfg, log=lines.append)
    assert any("placed_acceleration" in line for line in lines)


def test_window_consistency_share_mixes_pairs_and_single_windows(motions: list, tmp_path: Path) -> None:
    from kinest_core.training.trainer import consistency_pairs

    assert consistency_pairs(16, 1.0) == 8 and consistency_pairs(17, 1.0) == 8  # odd: one single window
    assert consistency_pairs(16, 0.5) == 4 and consistency_pairs(16, 0.25) == 2
    assert consistency_pairs(16, 0.01) == 1 and consistency_pairs(2, 0.3) == 1  # always one pair
    lines: list[str] = []
    cfg = _tiny("kinest", 2, loss={"rotation": 1.0, "window_consistency": 1.0, "window_consistency_share": 0.5})
    cfg.batch_size = 7  # 2 pairs + 3 single windows
    s = train(motions, str(tmp_path / "wc"), cfg, log=lines.append)
    assert s["windows_seen"] == 2 * 7
    assert any("window_consistency" in line for line in lines)
    for share in (0.0, 1.5):
        bad = _tiny("kinest", 1, loss={"window_consistency": 1.0, "window_consistency_share": share})
        with pytest.raises(ValueError, match="window_consistency_share"):
            train(motions, str(tmp_path / "bad"), bad)


def test_every_shipped_training_config_loads() -> None:
    """The configs the README and scripts/gpu_session.sh name: unknown keys or loss terms fail here, not on a GPU."""
    from kinest_core.training.losses import LossConfig

    paths = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.json"))
    assert len(paths) >= 5
    for path in paths:
        cfg = TrainConfig.load(str(path))
        raw = json.loads(path.read_text())
        unknown = set(raw.get("loss", {})) - set(LossConfig.__dataclass_fields__)
        assert not unknown, f"{path.name}: unknown loss terms {unknown}"
        assert cfg.model in ("kinest", "avatarposer", "mean_pose")
