# SPDX-License-Identifier: GPL-3.0-or-later
"""Reconstruction in a separate Python process (e.g. one with a CUDA PyTorch), and its client.

Why a process: Blender bundles a CPU torch; a user's own Python with CUDA (and ``mamba_ssm``)
can run the network many times faster, and a crash, hang or out-of-memory there must not
take Blender down. The protocol is documented in ``docs/worker.md``:

    PYTHON -m kinest_core.worker REQUEST.npz RESULT.npz     # one reconstruction
    PYTHON -m kinest_core.worker --check                    # one JSON line: versions and devices

The request holds the tracking arrays and ``options`` (a JSON string); the worker prints
JSON lines on stdout (``{"event": "start", ...}``, ``{"done": n, "total": m}``,
``{"event": "finished", ...}``), writes the motion arrays to RESULT.npz and exits 0. On
failure it prints ``{"event": "error", "kind": ..., "message": ...}`` and one line
``error: MESSAGE`` on stderr, and exits non-zero (1 error, 2 bad request, 3 out of memory).

The client (:func:`run_in_worker`) imports no torch: it writes the request, starts the
process, turns its lines into progress calls, and turns every way it can end into a
:class:`Motion` or one of the :class:`WorkerError` exceptions, never leaving the process behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, Protocol

import numpy as np

from kinest_core.types import Motion, TrackingSequence

PROTOCOL_VERSION = 1
EXIT_OK, EXIT_ERROR, EXIT_BAD_REQUEST, EXIT_OUT_OF_MEMORY = 0, 1, 2, 3
#: Options passed on to ``kinest_core.inference.reconstruct`` (``checkpoint`` becomes its ``model``).
RECONSTRUCT_OPTIONS = (
    "checkpoint",
    "mode",
    "device",
    "body_height",
    "num_threads",
    "leave_core_free",
    "batch_size",
    "overlap",
    "stride",
)


class WorkerError(RuntimeError):
    """The worker did not deliver a motion; the message says why and what to do."""

    def __init__(self, message: str, returncode: int | None = None, pid: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode
        self.pid = pid


class WorkerCrashed(WorkerError):
    """The worker exited with an error, or was killed by a signal."""


class WorkerOutOfMemory(WorkerError):
    """The worker ran out of (GPU or CPU) memory."""


class WorkerTimeout(WorkerError):
    """The worker sent nothing for longer than the timeout and was stopped."""


class WorkerCancelled(WorkerError):
    """The caller cancelled; the worker was stopped."""


class CancelFlag(Protocol):
    @property
    def cancelled(self) -> bool: ...


# ---------------------------------------------------------------------------------------------
# Files of the protocol


def write_request(path: str | os.PathLike[str], tracking: TrackingSequence, options: dict[str, Any]) -> None:
    """A request ``.npz``: the tracking arrays and the options as a JSON string."""
    json_text = json.dumps({"protocol": PROTOCOL_VERSION, **options})
    np.savez(
        path,
        times=np.asarray(tracking.times, dtype=np.float64),
        head=np.asarray(tracking.head, dtype=np.float64),
        left_wrist=np.asarray(tracking.left_wrist, dtype=np.float64),
        right_wrist=np.asarray(tracking.right_wrist, dtype=np.float64),
        valid=np.asarray(tracking.valid, dtype=bool),
        fps=np.float64(tracking.fps),
        body_height_m=np.float64(tracking.info.get("body_height_m") or 0.0),
        options=np.array(json_text),
    )


def read_request(path: str | os.PathLike[str]) -> tuple[TrackingSequence, dict[str, Any]]:
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("times", "head", "left_wrist", "right_wrist", "options") if k not in z.files]
        if missing:
            raise ValueError(f"request {path} lacks array(s) {', '.join(missing)}")
        options = json.loads(str(z["options"]))
        n = z["times"].shape[0]
        valid = np.asarray(z["valid"], dtype=bool) if "valid" in z.files else np.ones((n, 3), dtype=bool)
        info: dict[str, Any] = {"format": "worker-request"}
        if "body_height_m" in z.files and float(z["body_height_m"]) > 0:
            info["body_height_m"] = float(z["body_height_m"])
        tracking = TrackingSequence(
            times=np.asarray(z["times"], dtype=np.float64),
            head=np.asarray(z["head"], dtype=np.float64),
            left_wrist=np.asarray(z["left_wrist"], dtype=np.float64),
            right_wrist=np.asarray(z["right_wrist"], dtype=np.float64),
            valid=valid,
            fps=float(z["fps"]) if "fps" in z.files else 60.0,
            info=info,
        )
    if int(options.get("protocol", PROTOCOL_VERSION)) != PROTOCOL_VERSION:
        raise ValueError(f"request protocol {options.get('protocol')} is not {PROTOCOL_VERSION}; update kinest_core")
    return tracking, options


def write_result(path: str | os.PathLike[str], motion: Motion) -> None:
    """The motion arrays (as ``Motion.save_npz``) plus ``info`` as a JSON string; written atomically."""
    tmp = Path(str(path) + ".part.npz")
    np.savez(
        tmp,
        local_rotations=motion.local_rotations,
        root_translation=motion.root_translation,
        joint_positions=motion.joint_positions,
        rest_offsets=motion.rest_offsets,
        fps=np.float64(motion.fps),
        info=np.array(json.dumps(motion.info, default=str)),
    )
    os.replace(tmp, path)


def read_result(path: str | os.PathLike[str]) -> Motion:
    with np.load(path, allow_pickle=False) as z:
        info = json.loads(str(z["info"])) if "info" in z.files else {}
        return Motion(
            local_rotations=np.asarray(z["local_rotations"], dtype=np.float64),
            root_translation=np.asarray(z["root_translation"], dtype=np.float64),
            joint_positions=np.asarray(z["joint_positions"], dtype=np.float64),
            rest_offsets=np.asarray(z["rest_offsets"], dtype=np.float64),
            fps=float(z["fps"]),
            info=info,
        )


# ---------------------------------------------------------------------------------------------
# The worker process


def _emit(stream: IO[str], **fields: Any) -> None:
    stream.write(json.dumps(fields) + "\n")
    stream.flush()


def _is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name == "OutOfMemoryError" or "out of memory" in str(exc).lower()


def check_environment() -> dict[str, Any]:
    """What this Python offers: versions and devices (``--check``)."""
    import torch

    import kinest_core

    info: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "python": sys.version.split()[0],
        "executable": sys.executable,
        "kinest_core": getattr(kinest_core, "__version__", "unknown"),
        "torch": torch.__version__,
        "cuda": bool(torch.cuda.is_available()),
    }
    if info["cuda"]:
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        import mamba_ssm  # noqa: F401

        info["mamba_ssm"] = True
    except ImportError:
        info["mamba_ssm"] = False
    return info


def _debug_actions(debug: dict[str, Any], stage: str) -> None:
    """Test hooks (``options["debug"]``): simulate a hang, a crash or running out of memory."""
    if debug.get("stage", "start") != stage:
        return
    if debug.get("sleep_s"):
        time.sleep(float(debug["sleep_s"]))
    if debug.get("abort"):
        os.abort()  # dies by a signal, as a segfault in a CUDA kernel would
    if debug.get("out_of_memory"):
        raise MemoryError("debug: simulated out of memory")
    if debug.get("fail"):
        raise RuntimeError(str(debug["fail"]))


def run_request(request: str, result: str, out: IO[str] = sys.stdout) -> int:
    """Serve one request (the worker's main work); returns the exit code."""
    try:
        tracking, options = read_request(request)
    except (OSError, ValueError, KeyError) as exc:
        return _fail(out, EXIT_BAD_REQUEST, "bad_request", f"cannot read request {request}: {exc}")
    debug = dict(options.get("debug") or {})
    try:
        _debug_actions(debug, "start")
        from kinest_core.inference import InferenceStats, reconstruct

        kwargs = {k: options[k] for k in RECONSTRUCT_OPTIONS if options.get(k) is not None}
        model = kwargs.pop("checkpoint", None)
        stats = InferenceStats()
        _emit(out, event="start", pid=os.getpid(), frames=tracking.num_frames, python=sys.version.split()[0])

        def progress(done: int, total: int) -> None:
            _emit(out, done=int(done), total=int(total))
            _debug_actions(debug, "progress")

        t0 = time.perf_counter()
        motion = reconstruct(tracking, model=model, progress=progress, stats=stats, **kwargs)
        motion.info["worker_seconds"] = time.perf_counter() - t0
        write_result(result, motion)
    except Exception as exc:
        if _is_out_of_memory(exc):
            return _fail(out, EXIT_OUT_OF_MEMORY, "out_of_memory", _first_line(exc))
        return _fail(out, EXIT_ERROR, type(exc).__name__, _first_line(exc))
    _emit(out, event="finished", device=stats.device, seconds=stats.seconds, frames=stats.frames)
    return EXIT_OK


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an error (CUDA errors run to paragraphs of advice about debugging)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(out: IO[str], code: int, kind: str, message: str) -> int:
    line = " ".join(message.split())  # one line
    _emit(out, event="error", kind=kind, message=line)
    print(f"error: {line}", file=sys.stderr, flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["--check"]:
        try:
            _emit(sys.stdout, **check_environment())
        except Exception as exc:
            return _fail(sys.stdout, EXIT_ERROR, type(exc).__name__, str(exc))
        return EXIT_OK
    if len(args) != 2 or args[0].startswith("-"):
        print("usage: python -m kinest_core.worker REQUEST.npz RESULT.npz | --check", file=sys.stderr)
        return EXIT_BAD_REQUEST
    return run_request(args[0], args[1])


# ---------------------------------------------------------------------------------------------
# The client


def _popen_kwargs() -> dict[str, Any]:
    """Its own process group, so stopping it also stops anything it started."""
    if os.name == "nt":
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


def _stop(proc: subprocess.Popen[str], grace_s: float = 2.0) -> None:
    """Terminate, then kill, and reap the process (and its group on POSIX)."""
    if proc.poll() is None:
        try:
            if os.name == "nt":
                proc.terminate()
            else:
                os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            try:
                if os.name == "nt":
                    proc.kill()
                else:
                    os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()
    elif os.name != "nt":  # it ended; make sure nothing it started lives on
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def _read_lines(stream: IO[str], sink: Callable[[str], None]) -> None:
    for line in stream:
        sink(line.rstrip("\n"))


def run_in_worker(
    python_path: str,
    tracking: TrackingSequence,
    options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelFlag | None = None,
    timeout: float | None = 300.0,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    poll_s: float = 0.05,
) -> Motion:
    """Reconstruct ``tracking`` in ``python_path -m kinest_core.worker`` and return the motion.

    ``options``: see ``RECONSTRUCT_OPTIONS`` (``checkpoint``, ``mode``, ``device``, ...).
    ``timeout``: seconds without any line from the worker (start-up, model loading and each
    batch must each finish within it); None waits for ever. ``progress(done, total)`` runs in
    the calling thread; an exception it raises (e.g. the caller's own cancel) stops the
    worker and propagates. Raises :class:`WorkerCancelled`, :class:`WorkerTimeout`,
    :class:`WorkerOutOfMemory` or :class:`WorkerCrashed`; the process is always gone after.
    """
    python = str(python_path)
    if not python or not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise WorkerCrashed(
            f"worker Python {python!r} is not an executable file: set it to a python (or python.exe) that has "
            "kinest_core and torch installed, or clear it to reconstruct inside Blender"
        )
    opts = dict(options or {})
    with tempfile.TemporaryDirectory(prefix="kinest-worker-") as tmp:
        request = os.path.join(tmp, "request.npz")
        result = os.path.join(tmp, "result.npz")
        write_request(request, tracking, opts)
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONHOME", None)  # Blender's own Python home must not leak into another Python
        try:
            proc = subprocess.Popen(
                [python, "-m", "kinest_core.worker", request, result],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                cwd=tmp,
                env=env,
                **_popen_kwargs(),
            )
        except OSError as exc:
            raise WorkerCrashed(f"cannot start worker Python {python}: {exc}") from exc
        lines: deque[str] = deque()
        stderr_tail: deque[str] = deque(maxlen=20)
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            threading.Thread(target=_read_lines, args=(proc.stdout, lines.append), daemon=True),
            threading.Thread(target=_read_lines, args=(proc.stderr, stderr_tail.append), daemon=True),
        ]
        for r in readers:
            r.start()
        last_seen = time.monotonic()
        error_event: dict[str, Any] | None = None
        try:
            while True:
                while lines:
                    last_seen = time.monotonic()
                    msg = _parse(lines.popleft())
                    if msg is None:
                        continue
                    if on_event is not None:
                        on_event(msg)
                    if "done" in msg and "total" in msg and progress is not None:
                        progress(int(msg["done"]), int(msg["total"]))
                    if msg.get("event") == "error":
                        error_event = msg
                if cancel is not None and cancel.cancelled:
                    _stop(proc)
                    raise WorkerCancelled("reconstruction cancelled; the worker was stopped", pid=proc.pid)
                code = proc.poll()
                if code is not None:
                    for r in readers:
                        r.join(2.0)
                    while lines:  # the last lines (e.g. the error) may arrive with the exit
                        msg = _parse(lines.popleft())
                        if msg and msg.get("event") == "error":
                            error_event = msg
                        elif msg and on_event is not None:
                            on_event(msg)
                    break
                if timeout is not None and time.monotonic() - last_seen > timeout:
                    _stop(proc)
                    raise WorkerTimeout(
                        f"the worker sent nothing for {timeout:.0f} s and was stopped; it may hang on the GPU "
                        "driver or a much slower device: try the CPU device or raise the worker timeout in the "
                        "add-on preferences",
                        pid=proc.pid,
                    )
                time.sleep(poll_s)
        except BaseException:
            _stop(proc)
            raise
        _stop(proc)  # reaps; kills leftovers of its group
        if code == EXIT_OK and os.path.exists(result):
            motion = read_result(result)
            motion.info["worker_python"] = python
            return motion
        raise _exit_error(code, error_event, list(stderr_tail), proc.pid)


def _parse(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        msg = json.loads(line)
    except json.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) else None


def _exit_error(code: int, event: dict[str, Any] | None, stderr: list[str], pid: int) -> WorkerError:
    message = (event or {}).get("message") or next((ln for ln in reversed(stderr) if ln.strip()), "no error message")
    if code == EXIT_OUT_OF_MEMORY or (event or {}).get("kind") == "out_of_memory":
        return WorkerOutOfMemory(
            f"the worker ran out of memory ({message}); reconstruct a shorter range, lower the batch size, "
            "or use the CPU device",
            code,
            pid,
        )
    if code < 0:
        sig = -code
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = " (the system may have run out of memory)" if sig == getattr(signal, "SIGKILL", 9) else ""
        return WorkerCrashed(
            f"the worker was killed by {name}{hint}; check the worker Python in the add-on preferences, "
            f"or clear it to reconstruct inside Blender. Last output: {message}",
            code,
            pid,
        )
    if code == EXIT_OK:
        return WorkerCrashed("the worker exited without writing a result", code, pid)
    if "No module named" in message and "kinest_core" in message:
        message += "; install kinest_core into that Python (pip install kinest-core or the repository)"
    elif "No module named" in message and "torch" in message:
        message += "; install PyTorch (with CUDA for the GPU) into that Python"
    return WorkerCrashed(f"the worker failed (exit {code}): {message}", code, pid)


if __name__ == "__main__":
    sys.exit(main())
