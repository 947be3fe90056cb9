# SPDX-License-Identifier: GPL-3.0-or-later
"""Reconstruction without freezing Blender: worker thread -> queue -> main-thread steps.

The worker runs ``kinest_core.inference.reconstruct``, then plans the take's keys
(``bake.plan_bake``), and only puts plain Python/NumPy messages on a queue; it never touches
``bpy``. :func:`step` (called by the modal operator's timer, by the synchronous path in
background mode, and by tests) drains the queue, updates the progress the panel draws and,
once the keys are ready, bakes them a few F-curves per step (``bake.BakeJob``, about
``BAKE_STEP_S`` seconds each), so even an hour-long take never holds the main thread for long.
Nothing in the scene changes before the bake's last step, so a cancel at any point (during
the reconstruction or the bake) leaves the scene as it was.
"""

from __future__ import annotations

import atexit
import inspect
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.app.handlers import persistent

from . import bake, import_op, prefs

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


def _call_reconstruct(
    tracking: TrackingSequence, opts: JobOptions, progress: Callable[[int, int], None], cancel: Any
) -> Motion:
    from kinest_core.inference import reconstruct

    kwargs: dict[str, Any] = {
        "model": opts.model,
        "mode": opts.mode,
        "device": opts.device,
        "progress": progress,
        "cancel": cancel,
        "body_height": opts.body_height,
        "num_threads": opts.num_threads,
        "leave_core_free": opts.leave_core_free,
        **opts.extra,
    }
    params = inspect.signature(reconstruct).parameters
    if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        kwargs = {k: v for k, v in kwargs.items() if k in params}
    return reconstruct(tracking, **kwargs)


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
        self.compute = compute or _call_reconstruct
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
    return f"Reconstruction failed ({name}): {text}"


#: Jobs alive in this session (cancelled as a group when another file loads).
_JOBS: list[ReconstructJob] = []


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


def apply_calibration(tracking: TrackingSequence, head_offset: Any, hand_offset: Any) -> TrackingSequence:
    """Move the tracked points to the joints by offsets in each device's own axes (right hand mirrored)."""
    import dataclasses

    h = np.asarray(head_offset, dtype=np.float64)
    w = np.asarray(hand_offset, dtype=np.float64)
    if not (h.any() or w.any()):
        return tracking

    def shifted(m: np.ndarray, off: np.ndarray) -> np.ndarray:
        out = np.array(m, copy=True)
        out[:, :3, 3] += np.einsum("fab,b->fa", m[:, :3, :3], off)
        return out

    mirror = np.array([-1.0, 1.0, 1.0])
    return dataclasses.replace(
        tracking,
        head=shifted(tracking.head, h),
        left_wrist=shifted(tracking.left_wrist, w),
        right_wrist=shifted(tracking.right_wrist, w * mirror),
    )


def start_job(context: bpy.types.Context, compute: Callable[..., Motion] | None = None) -> ReconstructJob:
    """Read the panel's settings and the take's tracking (main thread) and start the worker.

    Raises ValueError / RuntimeError with a message for the user when something is missing.
    """
    settings = context.scene.kinest
    root = settings.tracking
    if root is None:
        root = next((o for o in context.scene.objects if o.get(bake.ROLE_PROP) == "tracking"), None)
        if root is None:
            raise ValueError("No tracking to reconstruct: import a recording with File > Import > VR Tracking first")
        settings.tracking = root
    if active_jobs():
        raise RuntimeError("A reconstruction is already running: wait for it or press Cancel")
    try:
        tracking = import_op.tracking_from_objects(root)
        tracking = apply_calibration(tracking, settings.head_offset, settings.hand_offset)
        model = bpy.path.abspath(settings.model_path) if settings.model_path else None
        if model and not os.path.exists(model):
            raise ValueError(
                f"Model file {model} does not exist: pick a KineST .safetensors checkpoint or clear the field"
            )
        opts = JobOptions(
            take=str(root.get(bake.TAKE_PROP, root.name)),
            model=model,
            mode=settings.mode,
            device=settings.device,
            body_height=settings.body_height if settings.body_height > 0 else None,
            num_threads=settings.threads or None,
            bone_names=settings.bone_names,
            frame_start=int(root.get("kinest_frame_start", 1)),
            # Headless there is no UI to keep responsive; a thread count the user set is used as set.
            leave_core_free=not bpy.app.background and not settings.threads,
            extra={
                "pin_hands": settings.pin_hands,
                **({"stride": settings.stride} if settings.mode == "online" else {}),
            },
        )
        worker_python, worker_timeout = prefs.worker_settings(context)
        if compute is None and worker_python:
            compute = worker_compute(worker_python, worker_timeout)
        job = ReconstructJob(tracking, opts, compute)
        job.body_mesh = bool(settings.body_mesh)
        job.smpl_model = bpy.path.abspath(settings.smpl_model) if settings.smpl_model else ""
    except ImportError as exc:
        raise RuntimeError(import_op.core_import_hint(exc)) from exc
    wm = context.window_manager.kinest_progress
    wm.running, wm.done, wm.total, wm.seconds_left = True, 0, tracking.num_frames, -1.0
    wm.message = f"Reconstructing {opts.take}" + (" in the worker Python" if worker_python else "")
    return job.start()


#: Seconds of baking per main-thread step (the modal operator's timer fires every 0.1 s).
BAKE_STEP_S = 0.1


def step(context: bpy.types.Context, job: ReconstructJob, budget_s: float = BAKE_STEP_S) -> str:
    """One main-thread step (what the timer does): progress, then the bake in steps once the keys are ready."""
    state = job.poll()
    wm = context.window_manager.kinest_progress
    if job.abandoned:
        state = CANCELLED
    if state == RUNNING and job.plan is not None:
        state = job.bake_step(context, budget_s)
    if job.baker is not None:
        wm.stage, wm.done, wm.total = "bake", job.baker.done, job.baker.total
    else:
        wm.stage, wm.done, wm.total = "reconstruct", job.done, job.total
    wm.seconds_left = job.seconds_left()
    if state == RUNNING:
        _redraw(context)
        return RUNNING
    wm.running = False
    wm.seconds_left = -1.0
    if job in _JOBS:
        _JOBS.remove(job)
    if state == FINISHED and job.baker is not None and job.motion is not None:
        obj = bpy.data.objects[job.baker.obj_name]
        if context.scene.kinest.show_jitter_colors:
            from . import jitter_view

            jitter_view.color_bones(context.scene, obj)
        elapsed = max(job.inferred_at - job.started, 1e-6)
        baked = job.finished_at - job.bake_started
        wm.last_result = result_text(job.motion, elapsed, job.opts.device) + f"; baked in {baked:.1f} s"
        wm.message = f"Baked {obj.name}" + (f"; {obj['kinest_body_warning']}" if "kinest_body_warning" in obj else "")
    elif state == CANCELLED:
        if job.baker is not None:
            job.baker.cancel()
        wm.message = "Reconstruction cancelled; the scene is unchanged"
    else:
        wm.message = job.error
    job.plan, job.baker = None, None  # the keys are in Blender now (or not wanted): free them
    _redraw(context)
    return state


def result_text(motion: Motion, elapsed: float, asked_device: str) -> str:
    """What the panel says about a finished run: frames, wall time, the device and the network's own speed."""
    info = motion.info if isinstance(motion.info, dict) else {}
    device = str(info.get("device") or asked_device)
    where = "worker Python" if info.get("worker_python") else "in Blender"
    text = f"{motion.num_frames} frames in {elapsed:.1f} s ({motion.num_frames / elapsed:.0f} fps) on {device}, {where}"
    net_fps = info.get("frames_per_second")
    if net_fps:
        text += f"; network {float(net_fps):.0f} fps"
    return text


def _redraw(context: bpy.types.Context) -> None:
    screen = getattr(context, "screen", None)
    if screen is None:
        return
    for area in screen.areas:
        if area.type == "VIEW_3D":
            area.tag_redraw()


def run_to_end(context: bpy.types.Context, job: ReconstructJob, poll_s: float = 0.05) -> str:
    """Drive :func:`step` until the job ends (background mode and scripts)."""
    while True:
        state = step(context, job)
        if state != RUNNING:
            return state
        job.wait(poll_s)


class KINEST_OT_reconstruct(bpy.types.Operator):
    """Reconstruct full-body motion from the imported tracking and bake it onto an armature"""

    bl_idname = "kinest.reconstruct"
    bl_label = "Reconstruct"
    # UNDO: the finished bake is one undo step. No REGISTER: a redo would rerun the whole
    # inference synchronously.
    bl_options = {"UNDO"}

    _job: ReconstructJob | None = None
    _timer: Any = None

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return context.scene is not None and not active_jobs()

    def _start(self, context: bpy.types.Context) -> ReconstructJob | None:
        try:
            return start_job(context)
        except (ValueError, RuntimeError) as exc:
            self.report({"ERROR"}, str(exc))
            return None

    def _end(self, context: bpy.types.Context, state: str) -> set[str]:
        job = self._job
        self._job = None  # Blender may keep the operator for its redo panel: not the take's arrays
        if state == FINISHED:
            self.report({"INFO"}, context.window_manager.kinest_progress.last_result)
            return {"FINISHED"}
        if state == CANCELLED:
            self.report({"WARNING"}, "Reconstruction cancelled; the scene is unchanged")
        else:
            self.report({"ERROR"}, job.error if job else "Reconstruction failed")
        return {"CANCELLED"}

    def execute(self, context: bpy.types.Context) -> set[str]:
        """Runs to the end before returning (background mode, scripts, redo)."""
        self._job = self._start(context)
        if self._job is None:
            return {"CANCELLED"}
        return self._end(context, run_to_end(context, self._job))

    def invoke(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        if bpy.app.background or context.window is None:
            return self.execute(context)
        self._job = self._start(context)
        if self._job is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        return {"RUNNING_MODAL"}

    def modal(self, context: bpy.types.Context, event: bpy.types.Event) -> set[str]:
        job = self._job
        if job is None:
            return {"CANCELLED"}
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
        if event.type not in {"TIMER", "ESC"}:
            return {"PASS_THROUGH"}
        state = step(context, job)
        if state == RUNNING:
            context.window_manager.progress_update(int(1000 * job.fraction()))
            return {"PASS_THROUGH"}
        self._cleanup(context)
        return self._end(context, state)

    def cancel(self, context: bpy.types.Context) -> None:
        """Blender ends the operator (window closed, file loaded): stop the worker."""
        if self._job is not None:
            self._job.cancel()
            self._job.abandoned = True
            try:
                step(context, self._job)
            except (AttributeError, RuntimeError):  # the context may be half torn down
                pass
        self._cleanup(context)

    def _cleanup(self, context: bpy.types.Context) -> None:
        wm = context.window_manager
        if self._timer is not None:
            wm.event_timer_remove(self._timer)
            self._timer = None
        wm.progress_end()


class KINEST_OT_cancel(bpy.types.Operator):
    """Stop the running reconstruction; the scene stays as it was"""

    bl_idname = "kinest.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return bool(active_jobs())

    def execute(self, context: bpy.types.Context) -> set[str]:
        n = cancel_all()
        context.window_manager.kinest_progress.message = "Cancelling..."
        self.report({"INFO"}, f"Cancelled {n} reconstruction(s)")
        return {"FINISHED"}


@persistent
def _on_load_pre(*_args: Any) -> None:
    """Another file is loading: stop workers and drop their results (timers outlive the file)."""
    cancel_all(abandon=True)


classes = (KINEST_OT_reconstruct, KINEST_OT_cancel)


_ATEXIT: list[Callable[[], None]] = []


def register() -> None:
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.app.handlers.load_pre.append(_on_load_pre)
    atexit.register(_stop_everything)  # Blender quitting ends the kept worker process
    _ATEXIT.append(_stop_everything)


def _stop_everything() -> None:
    """Cancel running jobs (their threads stop their worker processes), then end the kept workers."""
    jobs = list(_JOBS)
    cancel_all(abandon=True)
    for job in jobs:
        job.wait(5.0)
    close_worker_sessions()


def unregister() -> None:
    _stop_everything()
    for fn in _ATEXIT:
        atexit.unregister(fn)
    _ATEXIT.clear()
    if _on_load_pre in bpy.app.handlers.load_pre:
        bpy.app.handlers.load_pre.remove(_on_load_pre)
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
