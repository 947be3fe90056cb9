# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker's client: start (or reuse) a ``--serve`` process, send requests, follow its progress.

:class:`WorkerSession` and :func:`run_in_worker` import no torch: they write the request, turn
the worker's JSON lines into progress calls, and turn every way a run can end into a
:class:`~kinest_core.types.Motion` or one of the :class:`~kinest_core.worker_protocol.WorkerError`
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
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import IO, Any

from kinest_core.types import Motion, TrackingSequence
from kinest_core.worker_protocol import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_OUT_OF_MEMORY,
    CancelFlag,
    WorkerCancelled,
    WorkerCrashed,
    WorkerError,
    WorkerOutOfMemory,
    WorkerTimeout,
    parse_line,
    read_result,
    write_request,
)


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
            msg = parse_line(line) if line else None
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
