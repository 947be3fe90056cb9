# SPDX-License-Identifier: GPL-3.0-or-later
"""Conformance in Blender: broken inputs and checkpoints end as one operator report, the scene unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kb_helpers import bpy, mod, recording_path, scene_state


def _broken_copy(checkpoint: Path, folder: Path) -> Path:
    dst = folder / "broken.safetensors"
    data = checkpoint.read_bytes()
    dst.write_bytes(data[: len(data) // 2])  # truncated, as by an interrupted download
    shutil.copy(checkpoint.with_suffix(".json"), dst.with_suffix(".json"))
    return dst


def test_truncated_checkpoint_is_a_model_report(clean, checkpoint: Path, tmp_path: Path) -> None:
    rec = mod("reconstruct_op")
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(recording_path())) == {"FINISHED"}
    before = scene_state()
    clean.scene.kinest.model_path = str(_broken_copy(checkpoint, tmp_path))
    clean.scene.kinest.device = "cpu"
    job = rec.start_job(clean)
    assert rec.run_to_end(clean, job) == mod("reconstruct_job").FAILED
    text = clean.window_manager.kinest_progress.message
    assert text.startswith("Model (KineST panel):") and "broken.safetensors" in text and "\n" not in text, text
    assert scene_state() == before


@pytest.mark.parametrize(
    ("content", "words"),
    [(b"HIERARCHY\nROOT Hips\n{\n" + b"0 " * 2_000_000 + b"\n", "MB"), (b"PK\x03\x04junk", "not a readable .npz")],
)
def test_broken_tracking_file_is_an_import_report(clean, tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / ("take.bvh" if content.startswith(b"HIER") else "take.npz")
    path.write_bytes(content)
    before = scene_state()
    with pytest.raises(RuntimeError) as info:  # operator ERROR reports reach scripts as RuntimeError
        bpy.ops.import_scene.kinest_tracking(filepath=str(path))
    assert str(path) in str(info.value) and words in str(info.value)
    assert scene_state() == before
