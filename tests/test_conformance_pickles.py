# SPDX-License-Identifier: GPL-3.0-or-later
"""Conformance: no user data is unpickled. Each crafted file carries a payload that would create a
marker file if it ran; the readers must refuse it and the marker must not appear."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from kinest_core.io import TrackingFileError, read_tracking
from kinest_core.training.amass import AmassError, convert_amass
from kinest_core.training.mocap import convert_bvh
from kinest_core.training.trainer import TrainConfig, train
from kinest_core.worker import BadRequest, read_request

MOCAP = Path(__file__).resolve().parent / "fixtures" / "mocap" / "02_01_cut.bvh"


class Payload:
    """Unpickling this calls ``os.system('touch MARKER')``: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def _object_array(marker: Path) -> np.ndarray:
    a = np.empty(1, dtype=object)
    a[0] = Payload(marker)
    return a


def test_amass_file_with_a_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    p = tmp_path / "evil_poses.npz"
    np.savez(
        p,
        poses=np.zeros((10, 156)),
        trans=np.zeros((10, 3)),
        betas=np.zeros(16),
        gender=_object_array(marker),
        mocap_framerate=np.float64(60.0),
    )
    with pytest.raises(AmassError, match="pickle"):
        convert_amass(str(p), lambda betas, gender: (np.zeros((22, 3)), 0.0))
    assert not marker.exists()


def test_tracking_npz_and_worker_request_with_a_pickle_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    p = tmp_path / "evil.npz"
    eye = np.tile(np.eye(4), (10, 1, 1))
    np.savez(p, times=np.arange(10) / 60.0, head=eye, left_wrist=eye, right_wrist=eye, valid=_object_array(marker))
    with pytest.raises(TrackingFileError, match="objects"):
        read_tracking(p)
    np.savez(
        tmp_path / "req.npz",
        times=np.arange(10) / 60.0,
        head=eye,
        left_wrist=eye,
        right_wrist=eye,
        options=_object_array(marker),
    )
    with pytest.raises(BadRequest):
        read_request(tmp_path / "req.npz")
    assert not marker.exists()


def test_training_resume_does_not_unpickle_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"model": Payload(marker), "step": 1}, out / "train_state.pt")
    config = TrainConfig(
        model="kinest",
        model_config={"preset": "tiny"},
        batch_size=2,
        iterations=1,
        log_every=1,
        checkpoint_every=1,
        val_every=0,
        threads=1,
        device="cpu",
    )
    with pytest.raises(pickle.UnpicklingError):
        train(convert_bvh(str(MOCAP)), str(out), config, resume=True, log=lambda s: None)
    assert not marker.exists()
