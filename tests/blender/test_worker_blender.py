# SPDX-License-Identifier: GPL-3.0-or-later
"""Reconstruction through the worker Python from the add-on: same result, and failures as clean reports."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from kb_helpers import bpy, mod, recording_path, scene_state


@pytest.fixture(autouse=True)
def _worker_test_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``debug`` options these tests send run only under the worker's test switch."""
    monkeypatch.setenv("KINEST_WORKER_TEST_HOOKS", "1")


@pytest.fixture
def worker_prefs(clean):
    prefs = mod("prefs").preferences(clean)
    assert prefs is not None, "the add-on's preferences are registered"
    prefs.worker_python = sys.executable  # this environment's Python plays the CUDA Python
    yield prefs
    prefs.worker_python = ""


def test_worker_python_reconstructs_like_in_process(clean, worker_prefs, checkpoint):
    from kinest_core.inference import reconstruct

    rec = mod("reconstruct_op")
    short = recording_path().parent / "km_moore_cross_domain23_first300.csv"  # a real recording, quick to run twice
    path = short if short.exists() else recording_path()
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(path)) == {"FINISHED"}
    clean.scene.kinest.model_path = str(checkpoint)
    clean.scene.kinest.device = "cpu"
    job = rec.start_job(clean)
    assert "worker" in clean.window_manager.kinest_progress.message
    assert rec.run_to_end(clean, job) == rec.FINISHED, clean.window_manager.kinest_progress.message
    tracking = mod("import_op").tracking_from_objects(clean.scene.kinest.tracking)
    ref = reconstruct(tracking, model=str(checkpoint), device="cpu")
    np.testing.assert_allclose(job.motion.joint_positions, ref.joint_positions, atol=1e-5)
    text = clean.window_manager.kinest_progress.last_result
    assert "on cpu, worker Python" in text and "network" in text and "fps" in text
    arm = next(o for o in bpy.data.objects if o.type == "ARMATURE")
    assert "kinest_jitter_mean" in arm
    session = mod("reconstruct_job").worker_session(sys.executable)
    pid = session.pid
    assert session.alive()  # kept for the next reconstruction
    again = rec.start_job(clean)
    assert rec.run_to_end(clean, again) == rec.FINISHED
    assert session.pid == pid
    np.testing.assert_array_equal(again.motion.joint_positions, job.motion.joint_positions)
    bpy.ops.wm.read_homefile(use_empty=True)  # a new file keeps the worker; unregister or quitting ends it
    assert session.alive()
    rec.close_worker_sessions()
    assert not session.alive()


@pytest.mark.parametrize(
    ("debug", "message"),
    [
        ({"sleep_s": 60}, "sent nothing for 1 s"),
        ({"abort": True}, "killed by SIGABRT"),
        ({"out_of_memory": True}, "ran out of memory"),
    ],
)
def test_worker_failures_are_reports_and_leave_the_scene(clean, debug, message):
    rec = mod("reconstruct_op")
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(recording_path())) == {"FINISHED"}
    before = scene_state()
    job = rec.start_job(clean, compute=rec.worker_compute(sys.executable, timeout=1.0, extra={"debug": debug}))
    assert rec.run_to_end(clean, job) == mod("reconstruct_job").FAILED
    text = clean.window_manager.kinest_progress.message
    assert text.startswith("Worker Python:") and message in text
    assert scene_state() == before and not rec.active_jobs()


def test_cancel_stops_the_worker(clean):
    rec = mod("reconstruct_op")
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(recording_path())) == {"FINISHED"}
    before = scene_state()
    job = rec.start_job(clean, compute=rec.worker_compute(sys.executable, timeout=60, extra={"debug": {"sleep_s": 60}}))
    rec.step(clean, job)
    assert bpy.ops.kinest.cancel() == {"FINISHED"}
    job.wait(10.0)
    assert not job.thread.is_alive()
    assert rec.step(clean, job) == rec.CANCELLED
    assert scene_state() == before


def test_bad_worker_path_says_what_to_do(clean, worker_prefs, tmp_path):
    worker_prefs.worker_python = str(tmp_path / "no-python")
    rec = mod("reconstruct_op")
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(recording_path())) == {"FINISHED"}
    job = rec.start_job(clean)
    assert rec.run_to_end(clean, job) == mod("reconstruct_job").FAILED
    assert "not an executable file" in clean.window_manager.kinest_progress.message


def test_check_worker_reports_torch_and_device(clean, worker_prefs):
    info = mod("prefs").check_worker(sys.executable)  # what the preferences' Check button runs
    assert info["protocol"] == 1 and info["torch"] and info["cuda"] in (True, False)
    worker_prefs.worker_python = "/nonexistent/python"
    with pytest.raises(RuntimeError, match="not an executable file"):
        bpy.ops.kinest.check_worker()
