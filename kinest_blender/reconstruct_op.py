# SPDX-License-Identifier: GPL-3.0-or-later
"""Reconstruction without freezing Blender: worker thread -> queue -> main-thread steps.

The job (:mod:`.reconstruct_job`) runs ``kinest_core.inference.reconstruct`` on a worker thread,
then plans the take's keys (``bake.plan_bake``), and only puts plain Python/NumPy messages on a
queue; it never touches ``bpy``. :func:`step` (called by the modal operator's timer, by the synchronous path in
background mode, and by tests) drains the queue, updates the progress the panel draws and,
once the keys are ready, bakes them a few F-curves per step (``bake.BakeJob``, about
``BAKE_STEP_S`` seconds each), so even an hour-long take never holds the main thread for long.
Nothing in the scene changes before the bake's last step, so a cancel at any point (during
the reconstruction or the bake) leaves the scene as it was.
"""

from __future__ import annotations

import atexit
import dataclasses
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import bpy
import numpy as np
from bpy.app.handlers import persistent

from . import import_op, jitter_view, prefs, takes
from .reconstruct_job import (
    CANCELLED,
    FINISHED,
    RUNNING,
    JobOptions,
    ReconstructJob,
    active_jobs,
    cancel_all,
    close_worker_sessions,
    forget_job,
    session_jobs,
    worker_compute,
)

if TYPE_CHECKING:
    from kinest_core.types import Motion, TrackingSequence


def apply_calibration(tracking: TrackingSequence, head_offset: Any, hand_offset: Any) -> TrackingSequence:
    """Move the tracked points to the joints by offsets in each device's own axes (right hand mirrored)."""
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
        root = next((o for o in context.scene.objects if o.get(takes.ROLE_PROP) == "tracking"), None)
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
            take=str(root.get(takes.TAKE_PROP, root.name)),
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
                "plant_feet": settings.plant_feet,
                "precision": "float32" if settings.float32 else "auto",
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
    forget_job(job)
    if state == FINISHED and job.baker is not None and job.motion is not None:
        obj = bpy.data.objects[job.baker.obj_name]
        if context.scene.kinest.show_jitter_colors:
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
    jobs = session_jobs()
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
