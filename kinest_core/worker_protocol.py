# SPDX-License-Identifier: GPL-3.0-or-later
"""The worker protocol (``docs/worker.md``): request and result files, options, and the errors both sides use.

Shared by the worker process (:mod:`kinest_core.worker`) and its client
(:mod:`kinest_core.worker_client`); imports no torch, so the Blender extension can use it.
"""

from __future__ import annotations

import json
import os
from typing import Any, Protocol

import numpy as np

from kinest_core.checks import check_motion, check_tracking
from kinest_core.errors import TrackingFileError
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


def test_hooks_enabled() -> bool:
    """Whether this worker runs ``options["debug"]`` (only with ``KINEST_WORKER_TEST_HOOKS=1``)."""
    return os.environ.get(TEST_HOOKS_ENV, "") == "1"


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


def parse_line(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        msg = json.loads(line)
    except json.JSONDecodeError:
        return None
    return msg if isinstance(msg, dict) else None
