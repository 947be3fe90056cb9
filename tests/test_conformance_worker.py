# SPDX-License-Identifier: GPL-3.0-or-later
"""Conformance: the worker answers every bad request with a documented error and keeps serving;
test hooks run only under their switch; NaN or fps-0 input is a bad request, never a result."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from kinest_core.bench import synthetic_tracking
from kinest_core.model import KineST, KineSTConfig, save_checkpoint
from kinest_core.worker import (
    EXIT_BAD_REQUEST,
    EXIT_OK,
    TEST_HOOKS_ENV,
    read_result,
    run_request,
    serve,
    write_request,
)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    base = save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", KineST(KineSTConfig.tiny()).eval())
    return str(base.with_suffix(".safetensors"))


def _opts(tiny: str, **extra: object) -> dict:
    return {"checkpoint": tiny, "device": "cpu", "num_threads": 1, **extra}


def _request_with(path: Path, options_json: str, **arrays: object) -> Path:
    t = synthetic_tracking(40)
    base = {
        "times": t.times,
        "head": t.head,
        "left_wrist": t.left_wrist,
        "right_wrist": t.right_wrist,
        "valid": t.valid,
        "fps": np.float64(60.0),
        "options": np.array(options_json),
    }
    base.update(arrays)
    np.savez(path, **base)  # type: ignore[arg-type]
    return path


def _events(text: str) -> list[dict]:
    return [json.loads(ln) for ln in text.splitlines() if ln.startswith("{")]


def _bad_requests(tmp_path: Path, tiny: str) -> dict[str, Path]:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"PK\x03\x04" + os.urandom(300))
    empty = tmp_path / "empty.npz"
    with zipfile.ZipFile(empty, "w"):
        pass
    t = synthetic_tracking(40)
    nan_head = t.head.copy()
    nan_head[:] = np.nan
    good_opts = json.dumps(_opts(tiny))
    return {
        "junk zip": junk,
        "empty zip": empty,
        "missing file": tmp_path / "nowhere.npz",
        "options a list": _request_with(tmp_path / "list.npz", "[1, 2]"),
        "options a string": _request_with(tmp_path / "str.npz", '"offline"'),
        "options not JSON": _request_with(tmp_path / "nojson.npz", "{mode: offline"),
        "option of a wrong type": _request_with(tmp_path / "type.npz", json.dumps(_opts(tiny, num_threads="many"))),
        "fps 0": _request_with(tmp_path / "fps0.npz", good_opts, fps=np.float64(0.0)),
        "fps nan": _request_with(tmp_path / "fpsnan.npz", good_opts, fps=np.float64(np.nan)),
        "fps per device": _request_with(tmp_path / "fps3.npz", good_opts, fps=np.array([60.0, 60.0, 60.0])),
        "all NaN": _request_with(tmp_path / "nan.npz", good_opts, head=nan_head),
        "2-D times": _request_with(tmp_path / "t2.npz", good_opts, times=np.zeros((40, 2))),
        "debug without the switch": _request_with(
            tmp_path / "debug.npz", json.dumps(_opts(tiny, debug={"abort": True}))
        ),
    }


def test_serve_answers_every_bad_request_and_keeps_serving(
    tmp_path: Path, tiny: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TEST_HOOKS_ENV, raising=False)
    bad = _bad_requests(tmp_path, tiny)
    good = tmp_path / "good.npz"
    write_request(good, synthetic_tracking(40), _opts(tiny))
    lines = [json.dumps({"request": str(p), "result": str(tmp_path / f"r{k}.npz")}) for k, p in enumerate(bad.values())]
    lines += ["not json at all", json.dumps([1, 2]), json.dumps({"request": 5, "result": None})]
    lines.append(json.dumps({"request": str(good), "result": str(tmp_path / "good_result.npz")}))
    out = io.StringIO()
    assert serve(io.StringIO("\n".join(lines) + "\n"), out) == EXIT_OK
    events = [e for e in _events(out.getvalue()) if e.get("event") in ("error", "finished")]
    assert len(events) == len(bad) + 4, events
    for name, e in zip([*bad, "junk line", "list line", "typed line"], events, strict=False):
        assert e["event"] == "error" and e["kind"] == "bad_request" and e["code"] == EXIT_BAD_REQUEST, (name, e)
        assert "\n" not in e["message"] and "Traceback" not in e["message"], (name, e)
    assert events[-1]["event"] == "finished"
    motion = read_result(tmp_path / "good_result.npz")
    assert np.all(np.isfinite(motion.joint_positions)) and motion.fps == 60.0
    assert not any((tmp_path / f"r{k}.npz").exists() for k in range(len(bad)))


def test_debug_hooks_need_the_switch(tmp_path: Path, tiny: str) -> None:
    """In a real process: without the switch ``abort`` is refused, not obeyed; with it, it runs."""
    req = _request_with(tmp_path / "abort.npz", json.dumps(_opts(tiny, debug={"abort": True})))
    env = {k: v for k, v in os.environ.items() if k != TEST_HOOKS_ENV}
    cmd = [sys.executable, "-m", "kinest_core.worker", str(req), str(tmp_path / "res.npz")]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == EXIT_BAD_REQUEST and "for tests only" in res.stderr, res.stderr
    res = subprocess.run(cmd, capture_output=True, text=True, env={**env, TEST_HOOKS_ENV: "1"}, timeout=300)
    assert res.returncode < 0  # killed by SIGABRT, as the hook asks


def test_real_serve_process_survives_bad_requests(tmp_path: Path, tiny: str) -> None:
    bad = _bad_requests(tmp_path, tiny)
    good = tmp_path / "good.npz"
    write_request(good, synthetic_tracking(40), _opts(tiny))
    lines = [
        json.dumps({"request": str(bad[k]), "result": str(tmp_path / "x.npz")}) for k in ("junk zip", "options a list")
    ]
    lines += ["garbage", json.dumps({"request": str(good), "result": str(tmp_path / "ok.npz")}), '{"quit": true}']
    env = {k: v for k, v in os.environ.items() if k != TEST_HOOKS_ENV}
    res = subprocess.run(
        [sys.executable, "-m", "kinest_core.worker", "--serve"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    kinds = [e.get("event") for e in _events(res.stdout) if e.get("event") in ("error", "finished")]
    assert res.returncode == 0 and kinds == ["error", "error", "error", "finished"], res.stdout + res.stderr
    assert "Traceback" not in res.stderr and (tmp_path / "ok.npz").exists()


def test_result_over_the_request_is_refused(tmp_path: Path, tiny: str) -> None:
    req = tmp_path / "req.npz"
    write_request(req, synthetic_tracking(40), _opts(tiny))
    before = req.read_bytes()
    out = io.StringIO()
    assert run_request(str(req), str(req), out) == EXIT_BAD_REQUEST
    assert req.read_bytes() == before
