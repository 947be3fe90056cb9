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

This module is the worker process. The request and result files, options and errors are in
:mod:`kinest_core.worker_protocol`; the client (:class:`WorkerSession`, :func:`run_in_worker`,
no torch) in :mod:`kinest_core.worker_client`. Both are re-exported here.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import IO, Any

from kinest_core.errors import KinestError, debug_enabled, unexpected_message
from kinest_core.worker_client import WorkerSession, run_in_worker
from kinest_core.worker_protocol import (
    EXIT_BAD_REQUEST,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_OUT_OF_MEMORY,
    OPTION_TYPES,
    PRECISIONS,
    PROTOCOL_VERSION,
    RECONSTRUCT_OPTIONS,
    TEST_HOOKS_ENV,
    BadRequest,
    WorkerCancelled,
    WorkerCrashed,
    WorkerError,
    WorkerOutOfMemory,
    WorkerTimeout,
    check_options,
    parse_line,
    read_request,
    read_result,
    test_hooks_enabled,
    write_request,
    write_result,
)

__all__ = [  # the worker's whole API: ``from kinest_core.worker import ...`` finds the client and protocol too
    "EXIT_BAD_REQUEST",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_OUT_OF_MEMORY",
    "OPTION_TYPES",
    "PRECISIONS",
    "PROTOCOL_VERSION",
    "RECONSTRUCT_OPTIONS",
    "TEST_HOOKS_ENV",
    "BadRequest",
    "WorkerCancelled",
    "WorkerCrashed",
    "WorkerError",
    "WorkerOutOfMemory",
    "WorkerSession",
    "WorkerTimeout",
    "check_environment",
    "check_options",
    "main",
    "read_request",
    "read_result",
    "run_in_worker",
    "run_request",
    "serve",
    "test_hooks_enabled",
    "write_request",
    "write_result",
]


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
        msg = parse_line(line)
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


if __name__ == "__main__":
    sys.exit(main())
