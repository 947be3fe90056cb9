# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker process and its client: same motion as in-process; crash, hang, OOM and cancel end cleanly.

This environment's own Python (``sys.executable``) plays the external CUDA Python.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from kinest_core.bench import synthetic_tracking
from kinest_core.inference import reconstruct
from kinest_core.model import KineST, KineSTConfig, save_checkpoint
from kinest_core.worker import (
    WorkerCancelled,
    WorkerCrashed,
    WorkerOutOfMemory,
    WorkerTimeout,
    read_request,
    run_in_worker,
    write_request,
)


@pytest.fixture(autouse=True)
def _worker_test_hooks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``debug`` options these tests send run only under the worker's test switch."""
    monkeypatch.setenv("KINEST_WORKER_TEST_HOOKS", "1")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = KineST(KineSTConfig.tiny()).eval()
    with torch.no_grad():  # random but non-trivial output (the head starts at zero weight)
        model.head.weight.normal_(0, 0.3)
    base = save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", model, {"name": "tiny-random"})
    return base.with_suffix(".safetensors")


def _gone(pid: int | None) -> bool:
    assert pid is not None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_request_round_trip(tmp_path: Path) -> None:
    tracking = synthetic_tracking(50)
    tracking.info["body_height_m"] = 1.7
    write_request(tmp_path / "r.npz", tracking, {"mode": "online", "stride": 2})
    back, opts = read_request(tmp_path / "r.npz")
    np.testing.assert_array_equal(back.head, tracking.head)
    assert opts["mode"] == "online" and opts["stride"] == 2 and back.info["body_height_m"] == 1.7


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_worker_matches_in_process(tiny_checkpoint: Path, mode: str) -> None:
    tracking = synthetic_tracking(150)
    opts = {"checkpoint": str(tiny_checkpoint), "mode": mode, "device": "cpu", "num_threads": 1, "stride": 3}
    seen: list[tuple[int, int]] = []
    events: list[dict] = []
    t0 = time.perf_counter()
    motion = run_in_worker(
        sys.executable, tracking, opts, progress=lambda d, t: seen.append((d, t)), on_event=events.append
    )
    worker_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = reconstruct(tracking, model=str(tiny_checkpoint), mode=mode, device="cpu", num_threads=1, stride=3)
    local_s = time.perf_counter() - t0
    print(f"\n{mode}: worker {worker_s:.2f} s (incl. start-up), in-process {local_s:.2f} s")
    np.testing.assert_allclose(motion.joint_positions, ref.joint_positions, atol=1e-5)
    np.testing.assert_allclose(motion.local_rotations, ref.local_rotations, atol=1e-5)
    np.testing.assert_allclose(motion.root_translation, ref.root_translation, atol=1e-5)
    assert seen and seen[-1] == (150, 150)
    assert motion.info["device"] == "cpu" and motion.info["worker_python"] == sys.executable
    assert motion.info["mode"] == mode and motion.info["worker_seconds"] > 0
    kinds = [e.get("event") for e in events if "event" in e]
    assert kinds == ["ready", "start", "finished"]
    assert _gone(events[0]["pid"])


def test_crash_becomes_an_error_with_the_workers_message() -> None:
    with pytest.raises(WorkerCrashed, match="exit 1.*simulated crash") as info:
        run_in_worker(sys.executable, synthetic_tracking(30), {"debug": {"fail": "simulated crash"}})
    assert info.value.returncode == 1 and _gone(info.value.pid)


def test_death_by_signal_is_reported() -> None:
    with pytest.raises(WorkerCrashed, match="killed by SIGABRT") as info:
        run_in_worker(sys.executable, synthetic_tracking(30), {"debug": {"abort": True}})
    assert info.value.returncode is not None and info.value.returncode < 0 and _gone(info.value.pid)


def test_out_of_memory_is_its_own_error() -> None:
    with pytest.raises(WorkerOutOfMemory, match="out of memory.*shorter range") as info:
        run_in_worker(sys.executable, synthetic_tracking(30), {"debug": {"out_of_memory": True}})
    assert info.value.returncode == 3 and _gone(info.value.pid)


def test_hanging_worker_is_stopped_after_the_timeout() -> None:
    t0 = time.perf_counter()
    with pytest.raises(WorkerTimeout, match="sent nothing for 1 s") as info:
        run_in_worker(sys.executable, synthetic_tracking(30), {"debug": {"sleep_s": 60}}, timeout=1.0)
    assert time.perf_counter() - t0 < 10 and _gone(info.value.pid)


def test_cancel_stops_the_worker(tiny_checkpoint: Path) -> None:
    class Token:
        cancelled = False

    token = Token()
    events: list[dict] = []

    def progress(done: int, total: int) -> None:
        token.cancelled = True  # cancel as soon as work is under way

    opts = {"checkpoint": str(tiny_checkpoint), "device": "cpu", "debug": {"stage": "progress", "sleep_s": 60}}
    t0 = time.perf_counter()
    with pytest.raises(WorkerCancelled) as info:
        run_in_worker(
            sys.executable, synthetic_tracking(100), opts, progress=progress, cancel=token, on_event=events.append
        )
    assert time.perf_counter() - t0 < 30 and _gone(info.value.pid)
    assert [e["event"] for e in events if "event" in e] == ["ready", "start"]


def test_exception_in_progress_stops_the_worker() -> None:
    """The add-on's own cancel raises from the progress callback: the worker must not outlive it."""
    started: list[int] = []

    class Stop(Exception):
        pass

    def on_event(msg: dict) -> None:
        if msg.get("event") == "start":
            started.append(msg["pid"])
            raise Stop()

    opts = {"mode": "offline", "device": "cpu", "checkpoint": "/nonexistent.safetensors", "debug": {"stage": "x"}}
    with pytest.raises((Stop, WorkerCrashed)):
        run_in_worker(sys.executable, synthetic_tracking(30), opts, on_event=on_event)
    for pid in started:
        assert _gone(pid)


def test_bad_python_path_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(WorkerCrashed, match="not an executable file"):
        run_in_worker(str(tmp_path / "python"), synthetic_tracking(10), {})


def test_missing_checkpoint_is_reported() -> None:
    with pytest.raises(WorkerCrashed, match="nonexistent"):
        run_in_worker(sys.executable, synthetic_tracking(30), {"checkpoint": "/nonexistent/model.safetensors"})


def test_check_prints_versions() -> None:
    import json
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "kinest_core.worker", "--check"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["protocol"] == 1 and "torch" in info and info["cuda"] in (True, False)


def test_threads_are_not_left_behind() -> None:
    before = threading.active_count()
    with pytest.raises(WorkerCrashed):
        run_in_worker(sys.executable, synthetic_tracking(10), {"debug": {"fail": "x"}})
    time.sleep(0.2)
    assert threading.active_count() <= before


def test_worker_killed_like_by_the_oom_killer(tiny_checkpoint: Path) -> None:
    """The system's out-of-memory killer sends SIGKILL: the client says so and cleans up."""
    import signal

    def on_event(msg: dict) -> None:
        if msg.get("event") == "start":
            os.kill(msg["pid"], signal.SIGKILL)

    opts = {"checkpoint": str(tiny_checkpoint), "device": "cpu", "debug": {"stage": "progress", "sleep_s": 60}}
    with pytest.raises(WorkerCrashed, match="killed by SIGKILL.*run out of memory") as info:
        run_in_worker(sys.executable, synthetic_tracking(60), opts, on_event=on_event)
    assert info.value.returncode == -signal.SIGKILL and _gone(info.value.pid)


def test_a_session_keeps_its_worker_between_runs(tiny_checkpoint: Path) -> None:
    """Start-up, imports and model loading are paid once; a failure inside the worker keeps it serving."""
    from kinest_core.worker import WorkerSession

    tracking = synthetic_tracking(60)
    opts = {"checkpoint": str(tiny_checkpoint), "device": "cpu", "num_threads": 1}
    with WorkerSession(sys.executable) as session:
        t0 = time.perf_counter()
        first = session.run(tracking, opts)
        t1 = time.perf_counter()
        pid = session.pid
        with pytest.raises(WorkerCrashed, match="simulated"):
            session.run(tracking, {**opts, "debug": {"fail": "simulated"}})
        assert session.pid == pid and session.alive()
        t2 = time.perf_counter()
        second = run_in_worker(sys.executable, tracking, opts, session=session)
        t3 = time.perf_counter()
        assert session.pid == pid
        np.testing.assert_array_equal(first.joint_positions, second.joint_positions)
        print(f"\nfirst run {t1 - t0:.2f} s, again in the same worker {t3 - t2:.2f} s")
        assert t3 - t2 < t1 - t0
        with pytest.raises(WorkerTimeout):  # a hang stops the worker; the next run starts a fresh one
            session.run(tracking, {**opts, "debug": {"sleep_s": 60}}, timeout=1.0)
        assert _gone(pid) and not session.alive()
        third = session.run(tracking, opts)
        assert session.pid != pid
        np.testing.assert_array_equal(first.joint_positions, third.joint_positions)
        last = session.pid
    assert _gone(last)


def test_request_file_mode(tmp_path: Path, tiny_checkpoint: Path) -> None:
    """The one-shot command line: REQUEST.npz RESULT.npz, progress lines, exit code."""
    import json
    import subprocess

    from kinest_core.worker import read_result

    write_request(tmp_path / "req.npz", synthetic_tracking(40), {"checkpoint": str(tiny_checkpoint), "device": "cpu"})
    cmd = [sys.executable, "-m", "kinest_core.worker", str(tmp_path / "req.npz"), str(tmp_path / "res.npz")]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(ln) for ln in out.stdout.splitlines() if ln.startswith("{")]
    assert lines[0]["event"] == "start" and lines[-1]["event"] == "finished" and lines[-2]["done"] == 40
    assert read_result(tmp_path / "res.npz").num_frames == 40
    bad = subprocess.run(
        cmd[:3] + [str(tmp_path / "nope.npz"), str(tmp_path / "r.npz")], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: cannot read request")
