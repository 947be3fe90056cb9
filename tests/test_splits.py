# SPDX-License-Identifier: GPL-3.0-or-later
"""The validation split (by person), training and evaluation on it, and the real-device wrist gap."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kinest_core.cli import main
from kinest_core.io import read_tracking
from kinest_core.model.checkpoint import save_checkpoint
from kinest_core.training import splits
from kinest_core.training.config import TrainConfig, build_model
from kinest_core.training.evaluate import evaluate_tracking
from kinest_core.training.mocap import convert_bvh

FIX = Path(__file__).parent / "fixtures"


def test_person_keys_join_rigs_and_partners() -> None:
    assert splits.person_key("05_01_00.npz") == "cmu:05"
    assert splits.person_key("mb_01_02_00.npz") == splits.person_key("01_08.bvh.gz") == "cmu:01"
    assert splits.person_key("94_acrnn04_01.npz") == "cmu:94"
    assert splits.person_key("accad_Male1_A10_LieToCrouch_00.npz") == "accad:Male1"
    assert splits.person_key("/some/dir/walk.npz") == "file:walk.npz"
    assert splits.is_validation("14_02_00.npz") and splits.is_validation("08_11.bvh.gz")
    assert not splits.is_validation("02_01.bvh") and not splits.is_validation("accad_Male2_C3_Run_00.npz")
    # partners always share a side, whichever of them is named
    assert splits.is_validation("61_03_00.npz", ["cmu:60"]) and splits.is_validation("60_03_00.npz", ["cmu:61"])


def test_split_is_by_person_and_complete() -> None:
    m = convert_bvh(str(FIX / "mocap" / "02_01_cut.bvh"))[0]
    names = ["05_01_00.npz", "mb_05_03_00.npz", "01_01_00.npz", "accad_Male1_X_00.npz", "14_07_01.npz"]
    tagged = [dataclasses.replace(m, info={"source": name}) for name in names]
    train, val = splits.split_motions(tagged)
    assert [splits.motion_source(m) for m in val] == ["05_01_00.npz", "mb_05_03_00.npz", "14_07_01.npz"]
    assert [splits.motion_source(m) for m in train] == ["01_01_00.npz", "accad_Male1_X_00.npz"]
    assert splits.select_split(tagged, "val") == val and splits.select_split(tagged, "train") == train
    assert splits.select_split(tagged, "all") == tagged
    with pytest.raises(ValueError, match="unknown split"):
        splits.select_split(tagged, "test")


@pytest.fixture
def val_folder(tmp_path: Path) -> Path:
    """A training folder with one validation subject (the fixture take named as CMU 14) and one other."""
    d = tmp_path / "train"
    d.mkdir()
    shutil.copy(FIX / "mocap" / "02_01_cut.bvh", d / "14_01_cut.bvh")
    shutil.copy(FIX / "mocap" / "accad_Male2_C3_Run_cut.bvh", d / "accad_Male2_C3_Run_cut.bvh")
    return d


def test_cli_train_val_split_and_evaluate_split(
    val_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    args = ["train", "--data", str(val_folder), "--out", str(out), "--model", "mean_pose", "--tiny"]
    assert main([*args, "--val-split", "--iterations", "2", "--batch-size", "2", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "1 validation motions, 1 training motions" in printed
    meta = json.loads((out / "checkpoint_last.json").read_text())
    assert meta["training"]["config"]["val_split"] is True
    assert meta["data"]["accad_motions"] == 1 and meta["data"]["cmu_motions"] == 0  # CMU 14 held out
    assert meta["validation"]["frames"] > 0
    ckpt = str(out / "checkpoint_last")
    scores = {}
    for split in ("val", "train", "all"):
        assert main(["evaluate", "--data", str(val_folder), "--split", split, "--checkpoint", ckpt, "--json"]) == 0
        scores[split] = json.loads(capsys.readouterr().out)
        assert scores[split]["split"] == split
    # the validation score during training is the same motions, the same protocol
    assert scores["val"]["frames"] == meta["validation"]["frames"]
    assert scores["val"]["mpjpe_cm"] == pytest.approx(meta["validation"]["mpjpe_cm"], rel=1e-6)
    assert scores["val"]["frames"] + scores["train"]["frames"] == scores["all"]["frames"]
    # a folder without validation subjects: a clear message, not an empty score
    test_only = tmp_path / "test"
    test_only.mkdir()
    shutil.copy(FIX / "mocap" / "02_01_cut.bvh", test_only / "02_01_cut.bvh")
    assert main(["evaluate", "--data", str(test_only), "--split", "val", "--checkpoint", ckpt]) == 1
    assert "no motion found of the val split" in capsys.readouterr().err
    args = ["train", "--data", str(test_only), "--out", str(tmp_path / "r2"), "--model", "mean_pose", "--tiny"]
    assert main([*args, "--val-split", "--iterations", "1", "--batch-size", "2"]) != 0
    assert "no motion of the validation subjects" in capsys.readouterr().err


def test_config_key_val_split_holds_out_in_the_trainer(val_folder: Path, tmp_path: Path) -> None:
    from kinest_core.training.mocap_library import load_motions
    from kinest_core.training.trainer import train

    motions = load_motions(str(val_folder))
    cfg = TrainConfig(model="mean_pose", model_config={"preset": "tiny"}, batch_size=2, iterations=1, val_split=True)
    cfg.threads, cfg.device, cfg.checkpoint_every, cfg.val_every = 1, "cpu", 0, 0
    s = train(motions, str(tmp_path / "t"), cfg, log=lambda _: None)
    held = [m for m in motions if splits.is_validation(splits.motion_source(m))]
    assert s["validation"]["frames"] == sum(m.num_frames for m in held) > 0


def _tiny_checkpoint(path: Path) -> str:
    model = build_model(TrainConfig(model_config={"preset": "tiny"}))
    return str(save_checkpoint(path, model, {"training": {"model": "kinest"}}))


def test_wrist_gap_is_frame_weighted_over_tracked_frames(tmp_path: Path) -> None:
    """Keys left/right_wrist_error_cm (and both together) over the recordings, each weighted by the frames
    its hand was tracked; pinned hands close the gap, so unpinned it measures the network alone."""
    files = [str(FIX / "vr" / "km_liebers_beatsaber23_fixed.csv"), str(FIX / "vr" / "km_who_is_alyx_fixed_cutout.csv")]
    model = build_model(TrainConfig(model_config={"preset": "tiny"}))
    res = evaluate_tracking(files, model=model, device="cpu")
    valid = [read_tracking(f).valid for f in files]
    assert valid[0][:, 1:].mean() < 0.9  # the first recording lost its hands for a while
    for dev, key in ((1, "left_wrist_error_cm"), (2, "right_wrist_error_cm")):
        per = [res["files"][Path(f).name][key] for f in files]
        counts = [int(v[:, dev].sum()) for v in valid]
        assert res["overall"][key] == pytest.approx(np.average(per, weights=counts), rel=1e-9)
        assert res["overall"][key] != pytest.approx(np.mean(per), rel=1e-3)  # not a plain mean over files
    both = [
        (res["files"][Path(f).name]["left_wrist_error_cm"], int(v[:, 1].sum()), res["files"][Path(f).name]["right_wrist_error_cm"], int(v[:, 2].sum()))
        for f, v in zip(files, valid, strict=True)
    ]  # fmt: skip
    total = sum(lw * ln + rw * rn for lw, ln, rw, rn in both) / sum(ln + rn for _, ln, _, rn in both)
    assert res["overall"]["wrist_error_cm"] == pytest.approx(total, rel=1e-9)
    assert res["overall"]["left_wrist_error_cm"] > 5.0  # an untrained network is far from the hands
    pinned = evaluate_tracking(files[1:], model=model, device="cpu", pin_hands=True)
    assert pinned["overall"]["wrist_error_cm"] < 0.5 * res["files"][Path(files[1]).name]["wrist_error_cm"]


def test_cli_evaluate_tracking_prints_the_wrist_gap(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = _tiny_checkpoint(tmp_path / "tiny")
    rec = str(FIX / "vr" / "km_who_is_alyx_fixed_cutout.csv")
    assert main(["evaluate", "--tracking", rec, "--checkpoint", ckpt, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("left_wrist_error_cm", "right_wrist_error_cm", "wrist_error_cm", "head_error_cm"):
        assert np.isfinite(out[key])
    assert out["pin_hands"] is False
    assert main(["evaluate", "--tracking", rec, "--split", "val", "--checkpoint", ckpt]) == 2
