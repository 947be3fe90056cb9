# SPDX-License-Identifier: GPL-3.0-or-later
"""Reconstruction in a separate Python process (e.g. one with a CUDA PyTorch), and its client.

Why a process: Blender bundles a CPU torch; a user's own Python with CUDA (and ``mamba_ssm``)
can run the network many times faster, and a crash, hang or out-of-memory there must not
take Blender down. The protocol is documented in ``docs/worker.md``:

    PYTHON -m kinest_core.worker REQUEST.npz RESULT.npz     # one reconstruction
    PYTHON -m kinest_core.worker --serve                    # many: one JSON line per request on stdin
    PYTHON -m kinest_core.worker --check                    # one JSON line: versions and devices

The request holds the tracking arrays and ``options`` (a JSON string); the worker prints
JSON lines on stdout (``{"event": "start", ...}``, ``{"done": n, "total": m}``,
``{"event": "finished", ...}``), writes the motion arrays to RESULT.npz and exits 0. On
failure it prints ``{"event": "error", "kind": ..., "message": ...}`` and one line
``error: MESSAGE`` on stderr, and exits non-zero (1 error, 2 bad request, 3 out of memory).

The client (:class:`WorkerSession`, :func:`run_in_worker`) imports no torch: it writes the
request, starts (or reuses) a ``--serve`` process, turns its lines into progress calls, and
turns every way a run can end into a :class:`Motion` or one of the :class:`WorkerError`
exceptions; a cancelled, hung or crashed worker is stopped and reaped, never left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any, Protocol

import numpy as np

from kinest_core.checks import check_motion, check_tracking
from kinest_core.errors import KinestError, TrackingFileError, debug_enabled, unexpected_message
from kinest_core.outputs import write_npz
from kinest_core.types import Motion, TrackingSequence

PROTOCOL_VERSION = 1
#: Environment switch for the test hooks in ``options["debug"]`` (hang, crash, abort, out of memory).
TEST_HOOKS_ENV = "KINEST_WORKER_TEST_HOOKS"
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
    "pin_hands",
    "plant_feet",
    "precision",
)


class BadRequest(ValueError):
    """A request the worker cannot read or accept (exit code 2, kind ``bad_request``)."""


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
    """The tracking and options of a request; a :class:`BadRequest` for anything malformed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("times", "head", "left_wrist", "right_wrist", "options") if k not in z.files]
            if missing:
                raise BadRequest(f"request {path} lacks array(s) {', '.join(missing)}")
            options = json.loads(str(z["options"]))
            if not isinstance(options, dict):
                raise BadRequest(f"request {path}: 'options' is a JSON {type(options).__name__}, not an object")
            times = np.asarray(z["times"], dtype=np.float64)
            n = times.shape[0] if times.ndim == 1 else 0
            valid = np.asarray(z["valid"], dtype=bool) if "valid" in z.files else np.ones((n, 3), dtype=bool)
            info: dict[str, Any] = {"format": "worker-request", "file": str(path)}
            if "body_height_m" in z.files:
                height = float(np.asarray(z["body_height_m"]).reshape(-1)[0])
                if np.isfinite(height) and height > 0:
                    info["body_height_m"] = height
            fps = np.asarray(z["fps"]).reshape(-1) if "fps" in z.files else np.array([60.0])
            if fps.shape != (1,):
                raise BadRequest(f"request {path}: 'fps' must be one number, not {fps.shape[0]}")
            tracking = TrackingSequence(
                times=times,
                head=np.asarray(z["head"], dtype=np.float64),
                left_wrist=np.asarray(z["left_wrist"], dtype=np.float64),
                right_wrist=np.asarray(z["right_wrist"], dtype=np.float64),
                valid=valid,
                fps=float(fps[0]),
                info=info,
            )
    except BadRequest:
        raise
    except Exception as exc:  # a damaged zip, a pickle, a missing file, JSON errors: all a bad request
        raise BadRequest(f"cannot read request {path} ({type(exc).__name__}: {exc})") from exc
    if options.get("protocol", PROTOCOL_VERSION) != PROTOCOL_VERSION:
        raise BadRequest(f"request protocol {options.get('protocol')!r} is not {PROTOCOL_VERSION}; update kinest_core")
    check_options(options)
    try:
        check_tracking(tracking, str(path))
    except TrackingFileError as exc:
        raise BadRequest(str(exc)) from exc
    return tracking, options


#: ``precision`` values: :data:`kinest_core.precision.PRECISIONS`, repeated here so that this module
#: (imported by the Blender extension) does not import torch; a test keeps the two equal.
PRECISIONS = ("auto", "float32", "bfloat16")
#: Accepted types of each option (``None`` is always accepted and means the default).
OPTION_TYPES: dict[str, tuple[type, ...]] = {
    "protocol": (int,),
    "checkpoint": (str,),
    "mode": (str,),
    "device": (str,),
    "body_height": (int, float),
    "num_threads": (int,),
    "leave_core_free": (bool,),
    "batch_size": (int,),
    "overlap": (int,),
    "stride": (int,),
    "pin_hands": (bool,),
    "plant_feet": (bool,),
    "precision": (str,),
    "debug": (dict,),
}


def check_options(options: dict[str, Any]) -> None:
    """Types and ranges of the options; a :class:`BadRequest` naming the first wrong one."""
    for key, value in options.items():
        kinds = OPTION_TYPES.get(key)
        if kinds is None or value is None:
            continue  # unknown keys are ignored (a newer client), None means the default
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            raise BadRequest(f"option {key!r} is {value!r}; expected {' or '.join(k.__name__ for k in kinds)}")
    for key in ("num_threads", "batch_size", "stride"):
        if options.get(key) is not None and not 1 <= options[key] <= 4096:
            raise BadRequest(f"option {key!r} is {options[key]}; it must be 1-4096")
    if options.get("overlap") is not None and not 0 <= options["overlap"] <= 4096:
        raise BadRequest(f"option 'overlap' is {options['overlap']}; it must be 0-4096")
    if options.get("precision") is not None and options["precision"] not in PRECISIONS:
        raise BadRequest(f"option 'precision' is {options['precision']!r}; use one of {', '.join(PRECISIONS)}")
    if options.get("body_height") is not None and not (
        np.isfinite(options["body_height"]) and 0.5 <= options["body_height"] <= 3.0
    ):
        raise BadRequest(f"option 'body_height' is {options['body_height']}; it must be 0.5-3.0 m")
    if options.get("debug") and not test_hooks_enabled():
        raise BadRequest(f"option 'debug' is for tests only (the worker runs them only with {TEST_HOOKS_ENV}=1)")


def write_result(path: str | os.PathLike[str], motion: Motion) -> None:
    """The motion arrays (as ``Motion.save_npz``) plus ``info`` as a JSON string; written atomically."""
    check_motion(motion, str(path))
    arrays = {
        "local_rotations": motion.local_rotations,
        "root_translation": motion.root_translation,
        "joint_positions": motion.joint_positions,
        "rest_offsets": motion.rest_offsets,
        "fps": np.float64(motion.fps),
        "info": np.array(json.dumps(motion.info, default=str)),
    }
    if motion.contacts is not None:
        arrays["contacts"] = np.asarray(motion.contacts, dtype=bool)
    write_npz(path, arrays, compressed=False)


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
            contacts=np.asarray(z["contacts"], dtype=bool) if "contacts" in z.files else None,
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


def test_hooks_enabled() -> bool:
    """Whether this worker runs ``options["debug"]`` (only with ``KINEST_WORKER_TEST_HOOKS=1``)."""
    return os.environ.get(TEST_HOOKS_ENV, "") == "1"


def _debug_actions(debug: dict[str, Any], stage: str) -> None:
    """Test hooks (``options["debug"]``, only with ``KINEST_WORKER_TEST_HOOKS=1``): simulate a hang, a
    crash or running out of memory."""
    if not debug or not test_hooks_enabled() or debug.get("stage", "start") != stage:
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
    """Serve one request (the worker's main work); returns the exit code. Never raises."""
    try:
        if os.path.abspath(str(result)) == os.path.abspath(str(request)):
            raise BadRequest(f"the result path {result} is the request itself")
        tracking, options = read_request(request)
    except BadRequest as exc:
        return _fail(out, EXIT_BAD_REQUEST, "bad_request", str(exc))
    except Exception as exc:  # read_request turns everything into BadRequest; a bug otherwise
        return _fail(out, EXIT_BAD_REQUEST, "bad_request", unexpected_message(exc, f"reading request {request}"))
    debug = dict(options.get("debug") or {})
    stats = None
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
        if isinstance(exc, (KinestError, ValueError, OSError, ImportError)):
            return _fail(out, EXIT_ERROR, type(exc).__name__, _first_line(exc))
        return _fail(out, EXIT_ERROR, "internal", unexpected_message(exc, "reconstructing"))
    _emit(out, event="finished", device=stats.device, seconds=stats.seconds, frames=stats.frames)
    return EXIT_OK


def _first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an error (CUDA errors run to paragraphs of advice about debugging)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fail(out: IO[str], code: int, kind: str, message: str) -> int:
    line = " ".join(message.split())  # one line
    _emit(out, event="error", kind=kind, code=code, message=line)
    print(f"error: {line}", file=sys.stderr, flush=True)
    return code


def serve(inp: IO[str] = sys.stdin, out: IO[str] = sys.stdout) -> int:
    """Serve requests until stdin closes: one JSON line ``{"request": ..., "result": ...}`` each.

    Every line gets an answer ending in ``finished`` or ``error``: a line that is not a JSON object
    with string ``request`` and ``result`` is answered with a ``bad_request`` error, and no
    request, however broken, ends the loop.
    """
    _emit(out, event="ready", pid=os.getpid(), protocol=PROTOCOL_VERSION)
    for line in inp:
        if not line.strip():
            continue
        msg = _parse(line)
        if msg is not None and msg.get("quit"):
            break
        if msg is None or not isinstance(msg.get("request"), str) or not isinstance(msg.get("result"), str):
            shown = " ".join(line.split())[:120]
            _fail(
                out,
                EXIT_BAD_REQUEST,
                "bad_request",
                f'not a request line: {shown!r}; send {{"request": PATH, "result": PATH}} or {{"quit": true}}',
            )
            continue
        try:
            code = run_request(msg["request"], msg["result"], out)
        except Exception as exc:  # run_request never raises; if it does, the server still lives
            code = _fail(out, EXIT_ERROR, "internal", unexpected_message(exc, "serving a request"))
        if code == EXIT_OUT_OF_MEMORY:
            _free_cuda_cache()
    return EXIT_OK


def _free_cuda_cache() -> None:
    """After running out of GPU memory, give the cached blocks back so the next request can start clean."""
    torch = sys.modules.get("torch")  # not imported: nothing on a GPU to give back
    try:
        if torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # best effort only
        pass


def main(argv: list[str] | None = None) -> int:
    """The worker's entry point: any failure is a JSON error line and an exit code, never a traceback."""
    try:
        args = sys.argv[1:] if argv is None else argv
        if args == ["--serve"]:
            return serve()
        if args == ["--check"]:
            try:
                _emit(sys.stdout, **check_environment())
            except Exception as exc:
                return _fail(sys.stdout, EXIT_ERROR, type(exc).__name__, str(exc))
            return EXIT_OK
        if len(args) != 2 or args[0].startswith("-"):
            print("usage: python -m kinest_core.worker REQUEST.npz RESULT.npz | --serve | --check", file=sys.stderr)
            return EXIT_BAD_REQUEST
        return run_request(args[0], args[1])
    except KeyboardInterrupt:
        return _fail(sys.stdout, EXIT_ERROR, "interrupted", "the worker was interrupted")
    except Exception as exc:
        if debug_enabled():
            raise
        return _fail(sys.stdout, EXIT_ERROR, "internal", unexpected_message(exc, "running the worker"))


# ---------------------------------------------------------------------------------------------
# The client


def _popen_kwargs() -> dict[str, Any]:
    """Its own process group, so stopping it also stops anything it started."""
    if os.name == "nt":
        return {"creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0x200)}
    return {"start_new_session": True}


def _signal(proc: subprocess.Popen[str], hard: bool) -> None:
    """Terminate (or kill, ``hard``) the process: its whole group on POSIX; already gone is fine."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.name == "nt":
            (proc.kill if hard else proc.terminate)()
        else:
            os.killpg(proc.pid, signal.SIGKILL if hard else signal.SIGTERM)


def _stop(proc: subprocess.Popen[str], grace_s: float = 2.0) -> None:
    """Terminate, then kill, and reap the process (and its group on POSIX)."""
    if proc.poll() is None:
        _signal(proc, hard=False)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            _signal(proc, hard=True)
            proc.wait()
    elif os.name != "nt":  # it ended; make sure nothing it started lives on
        _signal(proc, hard=True)


def _read_lines(stream: IO[str], sink: Callable[[str], None]) -> None:
    for line in stream:
        sink(line.rstrip("\n"))


def _check_python(python: str) -> None:
    if not python or not (os.path.isfile(python) and os.access(python, os.X_OK)):
        raise WorkerCrashed(
            f"worker Python {python!r} is not an executable file: set it to a python (or python.exe) that has "
            "kinest_core and torch installed, or clear it to reconstruct inside Blender"
        )


class WorkerSession:
    """One worker process (``--serve``) kept for several reconstructions, so start-up, the torch
    import, CUDA's start and model loading are paid once (seconds on a GPU machine).

    One run at a time. A run that is cancelled, times out or whose caller raises stops the
    process (the next run starts a fresh one); a run that fails inside the worker (bad
    checkpoint, out of memory) leaves it serving. :meth:`close` (or leaving a ``with`` block)
    ends it; it also ends by itself when this process dies (its stdin closes).
    """

    def __init__(self, python_path: str, poll_s: float = 0.05) -> None:
        self.python = str(python_path)
        self.poll_s = poll_s
        self.proc: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: deque[str] = deque(maxlen=20)
        self._lock = threading.Lock()
        self._tmp: str | None = None
        self._count = 0

    def __enter__(self) -> WorkerSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _start(self) -> subprocess.Popen[str]:
        _check_python(self.python)
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="kinest-worker-")
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("PYTHONHOME", None)  # Blender's own Python home must not leak into another Python
        try:
            proc = subprocess.Popen(
                [self.python, "-m", "kinest_core.worker", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
                errors="replace",
                cwd=self._tmp,
                env=env,
                **_popen_kwargs(),
            )
        except OSError as exc:
            raise WorkerCrashed(f"cannot start worker Python {self.python}: {exc}") from exc
        self._lines = queue.Queue()
        self._stderr = deque(maxlen=20)
        lines, tail = self._lines, self._stderr
        assert proc.stdout is not None and proc.stderr is not None

        def read_out(stream: IO[str]) -> None:
            for line in stream:
                lines.put(line.rstrip("\n"))
            lines.put(None)  # end of output: the process is ending

        threading.Thread(target=read_out, args=(proc.stdout,), daemon=True).start()
        threading.Thread(target=_read_lines, args=(proc.stderr, tail.append), daemon=True).start()
        self.proc = proc
        return proc

    def _kill(self) -> None:
        if self.proc is not None:
            _stop(self.proc)
            for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
                try:
                    if stream is not None:
                        stream.close()
                except OSError:
                    pass
        self.proc = None

    def close(self) -> None:
        """End the worker (politely: closing its stdin ends its loop) and remove its files.

        If a run is still going after a few seconds, its process is killed (the run then fails).
        """
        if not self._lock.acquire(timeout=5.0):
            if self.proc is not None:
                _stop(self.proc)
            self._lock.acquire()
        try:
            proc = self.proc
            if proc is not None and proc.poll() is None and proc.stdin is not None:
                try:
                    proc.stdin.close()
                    proc.wait(2.0)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._kill()
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None
        finally:
            self._lock.release()

    def run(
        self,
        tracking: TrackingSequence,
        options: dict[str, Any] | None = None,
        progress: Callable[[int, int], None] | None = None,
        cancel: CancelFlag | None = None,
        timeout: float | None = 300.0,
        on_event: Callable[[dict[str, Any]], None] | None = None,
    ) -> Motion:
        """Reconstruct ``tracking`` in the worker (started now if needed); see :func:`run_in_worker`."""
        with self._lock:
            proc = self.proc if self.alive() else None
            if proc is None:
                self._kill()
                proc = self._start()
            assert self._tmp is not None and proc.stdin is not None
            self._count += 1
            request = os.path.join(self._tmp, f"request{self._count}.npz")
            result = os.path.join(self._tmp, f"result{self._count}.npz")
            write_request(request, tracking, dict(options or {}))
            done = False
            try:
                try:
                    proc.stdin.write(json.dumps({"request": request, "result": result}) + "\n")
                    proc.stdin.flush()
                except OSError:  # it died before reading: reported below from its exit code
                    pass
                motion = self._wait(proc, result, progress, cancel, timeout, on_event)
                done = True
                motion.info["worker_python"] = self.python
                return motion
            except WorkerError as exc:
                done = exc.returncode is not None and exc.returncode > 0 and self.alive()  # failed but serving
                raise
            finally:
                if not done:
                    self._kill()
                for path in (request, result):
                    try:
                        os.remove(path)
                    except OSError:
                        pass

    def _wait(
        self,
        proc: subprocess.Popen[str],
        result: str,
        progress: Callable[[int, int], None] | None,
        cancel: CancelFlag | None,
        timeout: float | None,
        on_event: Callable[[dict[str, Any]], None] | None,
    ) -> Motion:
        last_seen = time.monotonic()
        while True:
            try:
                line = self._lines.get(timeout=self.poll_s)
            except queue.Empty:
                line = ""
            if line is None:  # output ended: the process died
                code = proc.wait()
                time.sleep(0.05)  # let the stderr reader take the last lines
                raise _exit_error(code, None, list(self._stderr), proc.pid)
            msg = _parse(line) if line else None
            if msg is not None:
                last_seen = time.monotonic()
                if on_event is not None:
                    on_event(msg)
                if "done" in msg and "total" in msg and progress is not None:
                    progress(int(msg["done"]), int(msg["total"]))
                event = msg.get("event")
                if event == "finished":
                    return read_result(result)
                if event == "error":
                    raise _exit_error(int(msg.get("code", EXIT_ERROR)), msg, list(self._stderr), proc.pid)
            if cancel is not None and cancel.cancelled:
                raise WorkerCancelled("reconstruction cancelled; the worker was stopped", pid=proc.pid)
            if timeout is not None and time.monotonic() - last_seen > timeout:
                raise WorkerTimeout(
                    f"the worker sent nothing for {timeout:.0f} s and was stopped; it may hang on the GPU "
                    "driver or a much slower device: try the CPU device or raise the worker timeout in the "
                    "add-on preferences",
                    pid=proc.pid,
                )


def run_in_worker(
    python_path: str,
    tracking: TrackingSequence,
    options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    cancel: CancelFlag | None = None,
    timeout: float | None = 300.0,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    session: WorkerSession | None = None,
) -> Motion:
    """Reconstruct ``tracking`` in ``python_path -m kinest_core.worker`` and return the motion.

    ``options``: see ``RECONSTRUCT_OPTIONS`` (``checkpoint``, ``mode``, ``device``, ...).
    ``timeout``: seconds without any line from the worker (start-up, model loading and each
    batch must each finish within it); None waits for ever. ``progress(done, total)`` runs in
    the calling thread; an exception it raises (e.g. the caller's own cancel) stops the
    worker and propagates. Raises :class:`WorkerCancelled`, :class:`WorkerTimeout`,
    :class:`WorkerOutOfMemory` or :class:`WorkerCrashed`. Without ``session`` a worker is
    started for this call and always gone after it; with one, its worker is reused.
    """
    if session is not None:
        return session.run(tracking, options, progress, cancel, timeout, on_event)
    _check_python(str(python_path))
    with WorkerSession(python_path) as own:
        return own.run(tracking, options, progress, cancel, timeout, on_event)


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
