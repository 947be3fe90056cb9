# SPDX-License-Identifier: GPL-3.0-or-later
"""One reconstruction on a worker thread, and the worker Python that can run the network instead.

The job's thread runs the network (in process through ``kinest_core.inference.reconstruct``, or
in a kept ``python -m kinest_core.worker`` process), then plans the take's keys
(:func:`.bake.plan_bake`), and only puts plain Python/NumPy messages on a queue; it never
touches ``bpy``. The main thread drains the queue (:meth:`ReconstructJob.poll`) and bakes the
plan in steps (:meth:`ReconstructJob.bake_step`); :mod:`.reconstruct_op` drives both.
"""

from __future__ import annotations

import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import bpy

from . import bake, import_op

if TYPE_CHECKING:
    from kinest_core.types import Motion, TrackingSequence

RUNNING, FINISHED, CANCELLED, FAILED = "RUNNING", "FINISHED", "CANCELLED", "FAILED"


@dataclass
class JobOptions:
    """Everything the worker needs, copied out of Blender's properties on the main thread."""

    take: str
    model: str | None = None
    mode: str = "offline"
    device: str = "auto"
    body_height: float | None = None
    num_threads: int | None = None
    bone_names: str = "SMPL"
    frame_start: int = 1
    leave_core_free: bool = True  # cap torch's threads at cores - 1 so the UI keeps a core
    extra: dict[str, Any] = field(default_factory=dict)


def reconstruct_in_process(
    tracking: TrackingSequence, opts: JobOptions, progress: Callable[[int, int], None], cancel: Any
) -> Motion:
    """The network in Blender's own Python (torch is imported here, on the job's thread, not at registration)."""
    from kinest_core.inference import reconstruct

    return reconstruct(
        tracking,
        model=opts.model,
        mode=opts.mode,
        device=opts.device,
        progress=progress,
        cancel=cancel,
        body_height=opts.body_height,
        num_threads=opts.num_threads,
        leave_core_free=opts.leave_core_free,
        **opts.extra,
    )


#: One kept worker process per worker Python (start-up, imports and model loading paid once).
_SESSIONS: dict[str, Any] = {}


def worker_session(python: str) -> Any:
    """The kept ``kinest_core.worker.WorkerSession`` for a worker Python (others are closed)."""
    from kinest_core.worker import WorkerSession

    for other in [p for p in _SESSIONS if p != python]:
        _SESSIONS.pop(other).close()
    if python not in _SESSIONS:
        _SESSIONS[python] = WorkerSession(python)
    return _SESSIONS[python]


def close_worker_sessions() -> None:
    """End every kept worker process (unregister, Blender quitting)."""
    while _SESSIONS:
        _SESSIONS.popitem()[1].close()


def worker_compute(
    python: str, timeout: float | None = 300.0, extra: dict[str, Any] | None = None
) -> Callable[..., Motion]:
    """A compute that runs the network in ``python -m kinest_core.worker`` (see docs/worker.md).

    It runs on the job's thread like the in-process one: the thread waits on the worker
    process, the main thread still only drains the queue. The worker process is kept for
    the next reconstruction; a cancel, hang or crash ends it and the next run starts anew.
    """

    def compute(
        tracking: TrackingSequence, opts: JobOptions, progress: Callable[[int, int], None], cancel: Any
    ) -> Motion:
        from kinest_core.worker import run_in_worker

        options: dict[str, Any] = {
            "checkpoint": opts.model,
            "mode": opts.mode,
            "device": opts.device,
            "body_height": opts.body_height,
            "num_threads": opts.num_threads,
            "leave_core_free": opts.leave_core_free,
            **opts.extra,
            **(extra or {}),
        }
        session = worker_session(python)
        return run_in_worker(
            python, tracking, options, progress=progress, cancel=cancel, timeout=timeout, session=session
        )

    return compute


class ReconstructJob:
    """One reconstruction on a worker thread. Only :meth:`poll` and friends run on the main thread."""

    def __init__(
        self, tracking: TrackingSequence, opts: JobOptions, compute: Callable[..., Motion] | None = None
    ) -> None:
        from kinest_core.cancel import CancelToken

        self.tracking: TrackingSequence | None = tracking  # dropped once the network has run
        self.opts = opts
        self.compute = compute or reconstruct_in_process
        self.token = CancelToken()
        self.messages: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name=f"kinest-{opts.take}", daemon=True)
        self.state = RUNNING
        self.done = 0
        self.total = tracking.num_frames
        self.started = 0.0
        self.finished_at = 0.0
        self.motion: Motion | None = None
        self.plan: bake.BakePlan | None = None  # the take's keys, planned on the worker thread
        self.baker: bake.BakeJob | None = None  # the main-thread bake of ``plan``, step by step
        self.inferred_at = 0.0
        self.error: str = ""
        self.abandoned = False  # set when the scene it belongs to went away (file load)
        self.bake_started = 0.0
        self.body_mesh = True  # build the body mesh with the bake
        self.smpl_model = ""  # the user's SMPL model file for the body ("" = built-in body)

    def start(self) -> ReconstructJob:
        self.started = time.perf_counter()
        _JOBS.append(self)
        self.thread.start()
        return self

    def _run(self) -> None:  # worker thread: no bpy here
        from kinest_core.cancel import Cancelled
        from kinest_core.worker import WorkerCancelled

        def progress(done: int, total: int) -> None:
            self.messages.put(("progress", (int(done), int(total))))
            if self.token.cancelled:
                raise Cancelled()

        try:
            tracking, self.tracking = self.tracking, None  # not needed after the network: freed with it
            assert tracking is not None
            motion = self.compute(tracking, self.opts, progress, self.token)
            del tracking
            if self.token.cancelled:
                raise Cancelled()
            plan = bake.plan_bake(motion, self.opts.take, self.opts.bone_names, self.opts.frame_start)
            self.messages.put(("done", (motion, plan)))
        except (Cancelled, WorkerCancelled):
            self.messages.put(("cancelled", None))
        except MemoryError:
            self.messages.put(("error", "Out of memory: reconstruct a shorter range, or choose the CPU device"))
        except Exception as exc:  # reported to the user as an operator report
            traceback.print_exc()
            self.messages.put(("error", _error_text(exc)))

    def cancel(self) -> None:
        self.token.cancel()

    def poll(self) -> str:
        """Drain the worker's messages (main thread); returns the job state."""
        while True:
            try:
                kind, payload = self.messages.get_nowait()
            except queue.Empty:
                break
            if kind == "progress":
                self.done, self.total = payload
            elif kind == "done":
                self.motion, self.plan = payload
                self.inferred_at = time.perf_counter()
            elif kind == "cancelled":
                self.state = CANCELLED
            elif kind == "error":
                self.error = payload
                self.state = FAILED
        if self.token.cancelled and self.state == RUNNING:
            self.state = CANCELLED  # a cancel wins even over a result that just arrived or a bake under way
        if self.state != RUNNING and not self.finished_at:
            self.finished_at = time.perf_counter()
        return self.state

    def wait(self, timeout: float) -> None:
        self.thread.join(timeout)

    def seconds_left(self) -> float:
        """Estimated seconds to the end of the current stage (-1: not known yet)."""
        if self.baker is not None:
            done, total, since = self.baker.done, self.baker.total, self.bake_started
        else:
            done, total, since = self.done, self.total, self.started
        if done <= 0 or total <= 0:
            return -1.0
        return (time.perf_counter() - since) / done * (total - done)

    def fraction(self) -> float:
        """Share of the whole job done: the reconstruction counts 90 %, the bake 10 %."""
        if self.baker is not None:
            return 0.9 + 0.1 * self.baker.done / max(self.baker.total, 1)
        return 0.9 * self.done / max(self.total, 1)

    def bake_step(self, context: bpy.types.Context, budget_s: float) -> str:
        """One main-thread step of the bake (the keys are ready): RUNNING, FINISHED or FAILED."""
        try:
            if self.baker is None:
                assert self.plan is not None
                self.baker = bake.BakeJob(self.plan, body=self.body_mesh, smpl_model=self.smpl_model)
                self.bake_started = time.perf_counter()
            if not self.baker.step(context, budget_s):
                return RUNNING
        except (RuntimeError, ValueError, KeyError, ReferenceError) as exc:  # e.g. the take's objects were edited
            traceback.print_exc()
            if self.baker is not None:
                self.baker.cancel()
            self.state = FAILED
            self.error = (
                f"Baking failed ({type(exc).__name__}: {exc}); delete the take's armature and reconstruct again"
            )
            return FAILED
        self.state = FINISHED
        self.finished_at = time.perf_counter()
        return FINISHED


def _error_text(exc: BaseException) -> str:
    name = type(exc).__name__
    text = str(exc) or name
    worker_errors: tuple[type[BaseException], ...] = ()
    try:
        from kinest_core.worker import WorkerError

        worker_errors = (WorkerError,)
    except ImportError:
        pass
    if isinstance(exc, worker_errors):  # already says what happened and what to do
        return f"Worker Python: {text[:1].upper()}{text[1:]}"
    if isinstance(exc, ImportError):
        return import_op.core_import_hint(exc)
    if "CUDA" in text or "cuda" in text:
        return f"{text}. Choose the CPU device in the KineST panel"
    if isinstance(exc, FileNotFoundError):
        return f"{text}. Set the Model field in the KineST panel to a KineST .safetensors checkpoint"
    try:
        from kinest_core import errors as core_errors
    except ImportError:
        return f"Reconstruction failed ({name}): {text}"
    if isinstance(exc, core_errors.CheckpointError):  # one line naming the file and the fix
        return f"Model (KineST panel): {text}"
    if isinstance(exc, core_errors.KinestError):
        return f"Reconstruction failed: {text}"
    if isinstance(exc, (ValueError, OSError)):
        return f"Reconstruction failed ({name}): {text}"
    line = core_errors.unexpected_message(exc, "reconstructing")
    return line[:1].upper() + line[1:]


#: Jobs alive in this session (cancelled as a group when another file loads).
_JOBS: list[ReconstructJob] = []


def session_jobs() -> list[ReconstructJob]:
    """Every job of this session not yet ended by a step (running, or stopping)."""
    return list(_JOBS)


def active_jobs() -> list[ReconstructJob]:
    return [j for j in _JOBS if j.state == RUNNING]


def cancel_all(abandon: bool = False) -> int:
    """Cancel every running job; ``abandon`` also drops their results (the scene is gone)."""
    n = 0
    for job in list(_JOBS):
        if job.state == RUNNING:
            job.cancel()
            n += 1
        if abandon:
            job.abandoned = True
    if abandon:
        _JOBS.clear()
    return n


def forget_job(job: ReconstructJob) -> None:
    """Drop an ended job from the session's registry."""
    if job in _JOBS:
        _JOBS.remove(job)
