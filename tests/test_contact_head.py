# SPDX-License-Identifier: GPL-3.0-or-later
"""The network's foot-contact output: trained with the binary loss, saved and loaded with its
checkpoint, absent from older checkpoints (which still load), and fitted alone on a frozen network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from kinest_core.model import KineST, load_checkpoint, save_checkpoint
from kinest_core.model.kinest import KineSTConfig
from kinest_core.postprocess.contacts import contact_truth
from kinest_core.training.contact_head import choose_thresholds, fit_contact_head, frame_features, head_probabilities
from kinest_core.training.losses import window_contact_labels
from kinest_core.training.mocap import convert_bvh
from kinest_core.training.trainer import TrainConfig, train

FIX = Path(__file__).parent / "fixtures" / "mocap"


@pytest.fixture(scope="module")
def walk() -> list:
    out = convert_bvh(str(FIX / "02_01_cut.bvh")) + convert_bvh(str(FIX / "accad_Male2_C3_Run_cut.bvh"))
    for m, name in zip(out, ("02_01_cut", "accad_Male2_C3_Run_cut"), strict=True):
        m.info["source"] = name
    return out


def test_window_labels_follow_the_contact_rule(walk: list) -> None:
    m = walk[0]
    pos = torch.from_numpy(m.joint_positions)[None]
    labels = window_contact_labels(pos, torch.from_numpy(m.rest_offsets)[None])[0].numpy() > 0.5
    assert (labels == contact_truth(m.joint_positions, m.fps)).mean() > 0.9
    assert 0.2 < labels.mean() < 0.9


def test_contact_output_trains_saves_and_loads(walk: list, tmp_path: Path) -> None:
    lines: list[str] = []
    cfg = TrainConfig(
        model="kinest",
        model_config={"preset": "tiny", "contact_head": True},
        loss={"rotation": 1.0, "contact": 1.0},
        batch_size=4,
        iterations=2,
        log_every=1,
        checkpoint_every=2,
        val_every=0,
        threads=1,
        device="cpu",
    )
    train(walk, str(tmp_path / "run"), cfg, log=lines.append)
    assert any("contact" in line for line in lines)
    model, meta = load_checkpoint(tmp_path / "run" / "checkpoint_last")
    assert model.contact is not None and meta["config"]["contact_head"] is True
    x = torch.randn(2, model.config.window, 54)
    rot6d, logits = model(x, with_contacts=True)
    assert logits is not None and logits.shape == (2, model.config.window, 2)
    torch.testing.assert_close(rot6d, model(x))
    without = TrainConfig(**{**cfg.to_dict(), "model_config": {"preset": "tiny"}})
    with pytest.raises(ValueError, match="contact output"):
        train(walk, str(tmp_path / "bad"), without)


def test_checkpoints_without_the_contact_output_still_load(tmp_path: Path) -> None:
    old = KineST(KineSTConfig.tiny())
    save_checkpoint(tmp_path / "old", old)
    model, meta = load_checkpoint(tmp_path / "old")
    assert model.contact is None and "contact_head" in meta["config"]
    x = torch.randn(1, model.config.window, 54)
    assert model(x, with_contacts=True)[1] is None


def test_contact_head_fits_on_a_frozen_network(walk: list) -> None:
    torch.manual_seed(0)
    model = KineST(KineSTConfig(**{**KineSTConfig.tiny().to_dict(), "contact_head": True})).eval()
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("contact.")}
    feats = np.concatenate([frame_features(model, m) for m in walk])
    truth = np.concatenate([contact_truth(m.joint_positions, m.fps) for m in walk])
    assert feats.shape == (len(truth), model.config.width)
    losses = fit_contact_head(model, feats, truth, iterations=300, batch=256)
    assert np.mean(losses[-30:]) < 0.8 * np.mean(losses[:30])
    for k, v in model.state_dict().items():  # the network itself is untouched
        if k in before:
            torch.testing.assert_close(v, before[k])
    probs = head_probabilities(model, feats)
    thresholds, scores = choose_thresholds([probs], [truth], min_precision=0.0)
    assert 0.0 < thresholds.off <= thresholds.on and scores["f1"] > 0.5
