# SPDX-License-Identifier: GPL-3.0-or-later
"""Tracking sequence -> full-body motion, in three modes.

- ``protocol``: the paper's evaluation: non-overlapping windows, the last one re-aligned
  to end on the last frame.
- ``offline`` (default): overlapping windows whose predictions are blended across the
  overlap in rotation space (weighted quaternion mean), so window seams do not pop.
- ``online``: causal; every frame comes from a window that ends at it (``stride`` > 1 runs
  a window every ``stride`` frames and takes its last ``stride`` frames: faster, with up to
  ``stride - 1`` frames of extra latency).

Sequences shorter than a window are padded at the start by repeating the first frame
(the performer held still before the recording), and the padding is dropped again.
The root is not predicted: the body is placed so its head joint lands on the tracked head.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from kinest_core import rotations as rot
from kinest_core import rotations_torch as trot
from kinest_core.cancel import Cancelled, CancelToken
from kinest_core.checks import check_motion, check_tracking
from kinest_core.features import canonicalize_positions, tracking_features
from kinest_core.hardware import resolve_device
from kinest_core.model import KineST, default_checkpoint_path, load_checkpoint
from kinest_core.postprocess.contacts import motion_contacts
from kinest_core.postprocess.foot_planting import plant_feet as plant
from kinest_core.postprocess.hand_pinning import pin_wrists, tracking_weights
from kinest_core.precision import inference_precision, inference_view, resolve_precision
from kinest_core.skeleton import HEAD, NUM_JOINTS, Skeleton, forward_kinematics
from kinest_core.types import Motion, TrackingSequence

MODES = ("offline", "online", "protocol")
ProgressFn = Callable[[int, int], None]


@dataclass
class InferenceStats:
    """How a reconstruction ran: device, threads, windows and speed."""

    device: str = "cpu"
    threads: int = 1
    windows: int = 0
    frames: int = 0
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def realtime_factor(self) -> float:
        """How many times faster than the 60 fps recording plays."""
        return self.frames_per_second / 60.0


#: Default windows per network call. On 2 CPU cores batches of 4 to 8 windows run fastest
#: (about 24 ms a window; 16: about 28, 64: about 50) and hold 30-80 MB of activations (16: 250 MB).
CPU_BATCH = 4
GPU_BATCH = 16
#: Offline mode: frames two neighbouring windows share (window 96: a new window every 72 frames).
#: On the mocap validation subjects (hands pinned) 24 costs 0.008 cm of MPJPE against 32 and runs
#: 11 % fewer windows; 16 cost 0.044 cm (``docs/benchmarks.md``).
OFFLINE_OVERLAP = 24

_MODEL_CACHE: dict[tuple[str, str], tuple[KineST, dict[str, Any]]] = {}


def load_model(checkpoint: str | os.PathLike[str] | None = None, device: str = "auto") -> tuple[KineST, dict[str, Any]]:
    """The model of ``checkpoint`` (default: the shipped one), cached per path and device."""
    dev = resolve_device(device)
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint_path()
    if path is None:
        raise FileNotFoundError(
            "no trained checkpoint is installed with kinest_core; give the path of one "
            "(NAME.safetensors + NAME.json): --checkpoint on the command line, Model in the Blender panel"
        )
    key = (str(Path(path).resolve()), str(dev))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE[key] = load_checkpoint(path, device=dev)
    return _MODEL_CACHE[key]


def window_starts(
    num_frames: int, window: int, mode: str, overlap: int = OFFLINE_OVERLAP, stride: int = 1
) -> list[int]:
    """Start frames of the windows each mode runs (``num_frames >= window``)."""
    last = num_frames - window
    if mode == "protocol":
        starts = list(range(0, last + 1, window))
    elif mode == "offline":
        step = max(1, window - overlap)
        starts = list(range(0, last + 1, step))
    elif mode == "online":
        # Windows end at frames window-1+k*stride, ..., and at the last frame.
        starts = list(range(0, last + 1, max(1, stride)))
    else:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if starts[-1] != last:
        starts.append(last)
    return starts


def _blend_weights(window: int, overlap: int) -> NDArray[np.float64]:
    """Per-frame weights inside a window: ramps over the overlap at each end, 1 in the middle."""
    w = np.ones(window)
    if overlap > 0:
        x = (np.arange(overlap) + 0.5) / overlap
        ramp = x**3 * (x * (6 * x - 15) + 10)  # smootherstep: no kink in velocity or acceleration
        w[:overlap] = ramp
        w[-overlap:] = ramp[::-1]
    return w


def reconstruct(
    tracking: TrackingSequence,
    model: KineST | str | os.PathLike[str] | None = None,
    mode: str = "offline",
    device: str = "auto",
    progress: ProgressFn | None = None,
    cancel: CancelToken | None = None,
    body_height: float | None = None,
    skeleton: Skeleton | None = None,
    num_threads: int | None = None,
    leave_core_free: bool = False,
    batch_size: int | None = None,
    overlap: int = OFFLINE_OVERLAP,
    stride: int = 1,
    stats: InferenceStats | None = None,
    pin_hands: bool = True,
    plant_feet: bool = True,
    precision: str = "auto",
) -> Motion:
    """Reconstruct full-body motion from head and wrist joint tracking (60 fps, Z-up metres).

    ``progress(done_frames, total_frames)`` is called after every batch; ``cancel`` is checked
    between batches and raises :class:`Cancelled`. ``num_threads`` caps torch's CPU threads
    for this call (``leave_core_free`` caps them at cores - 1 so a GUI stays responsive).
    ``batch_size``: windows per network call; by default ``CPU_BATCH`` on the CPU (small batches
    run fastest there and keep torch's working memory small) and ``GPU_BATCH`` on CUDA.
    Memory grows with the length of the take only through its own arrays (about 1.3 kB per
    frame), never with the number of windows. ``pin_hands``: bend the arms so the wrists land on
    the tracked wrists (:func:`kinest_core.postprocess.hand_pinning.pin_wrists`), fading out where a hand's tracking is lost.
    The motion carries foot contacts (``Motion.contacts``: the network's contact output, or read off
    the predicted motion for checkpoints without one); ``plant_feet`` locks the feet in them and keeps
    them above the floor (:func:`kinest_core.postprocess.foot_planting.plant_feet`, after hand pinning).
    ``precision``: the network's number format (:mod:`kinest_core.precision`): ``auto`` runs it under
    bf16 autocast on CPUs with native bf16 and in float32 elsewhere; ``float32`` always in float32.
    """
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    check_tracking(tracking)  # shapes, NaN, times and fps: a TrackingFileError naming the source
    n = tracking.num_frames
    if body_height is not None and not (np.isfinite(body_height) and 0.5 <= body_height <= 3.0):
        raise ValueError(f"body height {body_height} m is not a person's height; give 0.5-3.0 m")
    dev = resolve_device(device)
    prec, _ = resolve_precision(precision, dev)
    if model is None or isinstance(model, (str, os.PathLike)):
        net, meta = load_model(model, device=str(dev))
    else:
        net, meta = model, {}
        net = net.to(dev).eval()
    window = net.config.window
    if batch_size is None:
        batch_size = CPU_BATCH if dev.type == "cpu" else GPU_BATCH
    if skeleton is None:
        height = body_height or float(tracking.info.get("body_height_m") or 0.0) or 1.75
        skeleton = Skeleton.neutral(height)

    threads_before = torch.get_num_threads()
    threads_used = None
    if dev.type == "cpu":
        cap = num_threads or threads_before
        if leave_core_free:
            cap = min(cap, max(1, (os.cpu_count() or 2) - 1))
        threads_used = max(1, cap)
        torch.set_num_threads(threads_used)
    t0 = time.perf_counter()
    try:
        with inference_precision(prec, dev):
            quats, contact_probs = _predict(
                inference_view(net, prec),
                tracking,
                mode,
                dev,
                window,
                progress,
                cancel,
                batch_size,
                overlap,
                stride,
                stats,
            )
    finally:
        if dev.type == "cpu":
            torch.set_num_threads(threads_before)
    head = tracking.head[:, :3, 3]
    pin = None
    if pin_hands:
        wrists = np.stack([tracking.left_wrist[:, :3, 3], tracking.right_wrist[:, :3, 3]], axis=1)
        pin = (wrists - head[:, None, :], tracking_weights(tracking.valid))
    root_translation, joint_positions = _place_body(quats, skeleton.rest_offsets, head, cancel, pin)
    seconds = time.perf_counter() - t0

    info = {
        "mode": mode,
        "device": str(dev),
        "threads": threads_used,
        "seconds": seconds,
        "frames_per_second": n / seconds if seconds > 0 else None,
        "body_height_m": skeleton.height,
        "checkpoint": meta.get("name") or meta.get("checkpoint"),
        "pin_hands": pin_hands,
        "precision": prec,
    }
    if stats is not None:
        stats.device, stats.frames, stats.seconds = str(dev), n, seconds
        stats.threads = threads_used or 0
        stats.extra["precision"] = prec
    motion = Motion(
        local_rotations=quats,
        root_translation=root_translation,
        joint_positions=joint_positions,
        rest_offsets=skeleton.rest_offsets.copy(),
        fps=tracking.fps,
        info=info,
    )
    motion.contacts = motion_contacts(motion, contact_probs, meta.get("contacts"))
    info["contacts_from"] = "network" if contact_probs is not None else "detected"
    info["plant_feet"] = plant_feet
    if plant_feet:
        motion = plant(motion, cancel=cancel, chunk_frames=POST_CHUNK_FRAMES, in_place=True)
    check_motion(motion)  # NaN or inf anywhere: a ReconstructionError, never a result
    return motion


def _predict(
    net: KineST,
    tracking: TrackingSequence,
    mode: str,
    dev: torch.device,
    window: int,
    progress: ProgressFn | None,
    cancel: CancelToken | None,
    batch_size: int,
    overlap: int,
    stride: int,
    stats: InferenceStats | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64] | None]:
    """Local joint rotations (frames, 22, 4) wxyz for every tracked frame, not yet normalised, and the
    foot-contact probabilities (frames, 2) of a network with a contact output (else None), windows
    combined as the rotations are.

    Windows run ``batch_size`` at a time and go straight into one quaternion buffer of the
    sequence's length (offline: weighted sums blended across the overlaps), so memory grows
    with the frames only, never with the number of windows.
    """
    n = tracking.num_frames
    t = tracking.transforms()  # (n, 3, 4, 4)
    # Online: every frame needs a window that ends at it, so pad a whole window's worth.
    pad = window - 1 if mode == "online" else max(0, window - n)
    if pad:
        t = np.concatenate([np.repeat(t[:1], pad, axis=0), t], axis=0)
    total = t.shape[0]
    rots, poss = t[..., :3, :3], t[..., :3, 3]
    overlap = min(overlap, window // 2)
    starts = window_starts(total, window, mode, overlap=overlap, stride=stride)
    if stats is not None:
        stats.windows = len(starts)

    quats = np.zeros((total, NUM_JOINTS, 4))  # offline: weighted sums; else the chosen window's rotations
    with_contacts = getattr(net, "contact", None) is not None
    probs = np.zeros((total, 2)) if with_contacts else None  # offline: weighted sums, as quats
    prob_w = np.zeros(total)
    filled = np.zeros(total, dtype=bool)  # offline: frames some window has reached
    next_unfilled = 0
    ref_quat = None
    blend_w = _blend_weights(window, overlap)
    for b0 in range(0, len(starts), batch_size):
        if cancel is not None and cancel.cancelled:
            raise Cancelled("reconstruction cancelled")
        batch = starts[b0 : b0 + batch_size]
        feats = np.stack(
            [tracking_features(rots[s : s + window], canonicalize_positions(poss[s : s + window])) for s in batch]
        )
        with torch.inference_mode():
            x = torch.from_numpy(feats).to(dev)
            out, logits = net(x, with_contacts=True) if with_contacts else (net(x), None)
            mats = trot.sixd_to_matrix(out.reshape(len(batch), window, NUM_JOINTS, 6).double()).cpu().numpy()
            p_batch = torch.sigmoid(logits).double().cpu().numpy() if logits is not None else None
        q_batch = rot.matrix_to_quat(mats)  # (batch, window, 22, 4), w >= 0
        for i, s in enumerate(batch):
            q = q_batch[i]
            if mode == "offline":
                if ref_quat is None:
                    ref_quat = q[0]
                # Align signs with what is already accumulated (or the first frame) before averaging.
                acc = quats[s : s + window]
                ref = np.where(filled[s : s + window, None, None], acc, ref_quat[None])
                q = np.where(np.sum(q * ref, axis=-1, keepdims=True) < 0, -q, q)
                w = blend_w.copy()
                if s == 0:
                    w[:overlap] = 1.0
                if s + window == total:
                    w[-overlap:] = np.maximum(w[-overlap:], 1e-3)
                acc += q * w[:, None, None]
                filled[s : s + window] = True
                if probs is not None and p_batch is not None:
                    probs[s : s + window] += p_batch[i] * w[:, None]
                    prob_w[s : s + window] += w
            elif mode == "protocol":
                # The re-aligned last window only fills the frames no earlier window reached.
                first = max(s, next_unfilled)
                quats[first : s + window] = q[first - s :]
                if probs is not None and p_batch is not None:
                    probs[first : s + window] = p_batch[i][first - s :]
                next_unfilled = s + window
            else:  # online: the frames this window is the first to reach, all at its end
                end = s + window
                quats[next_unfilled:end] = q[next_unfilled - s :]
                if probs is not None and p_batch is not None:
                    probs[next_unfilled:end] = p_batch[i][next_unfilled - s :]
                next_unfilled = end
        done = batch[-1] + window - pad
        if progress is not None:
            progress(max(0, min(done, n)), n)
    if probs is not None and mode == "offline":
        probs /= np.maximum(prob_w, 1e-12)[:, None]
    return quats[pad:], (probs[pad:] if probs is not None else None)


#: Frames per step of the work after the network (normalising, signs, forward kinematics):
#: bounds its temporaries, so an hour-long take needs little more than its own arrays.
POST_CHUNK_FRAMES = 16384


def _place_body(
    quats: NDArray[np.float64],
    rest_offsets: NDArray,
    head_positions: NDArray,
    cancel: CancelToken | None = None,
    pin: tuple[NDArray, NDArray] | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Normalise ``quats`` in place (w >= 0 on the first frame, signs continuous over time) and
    place the body so its head joint lands on ``head_positions``: (root translation, joint positions).
    ``pin``: (wrist targets relative to the head (F, 2, 3), weights (F, 2)) for :func:`pin_wrists`,
    applied to ``quats`` in place before the body is placed.

    Runs ``POST_CHUNK_FRAMES`` frames at a time; the sign of each chunk follows the last frame of
    the one before, which gives exactly the signs of one pass over the whole sequence.
    """
    n = quats.shape[0]
    root = np.empty((n, 3))
    positions = np.empty((n, NUM_JOINTS, 3))
    prev = None
    for a in range(0, n, POST_CHUNK_FRAMES):
        if cancel is not None and cancel.cancelled:
            raise Cancelled("reconstruction cancelled")
        b = min(n, a + POST_CHUNK_FRAMES)
        c = quats[a:b]
        c /= np.linalg.norm(c, axis=-1, keepdims=True)
        if pin is not None:
            mats = pin_wrists(rot.quat_to_matrix(c), rest_offsets, pin[0][a:b], pin[1][a:b])
            c[:] = rot.matrix_to_quat(mats)
        c *= np.where(c[..., :1] < 0, -1.0, 1.0)  # w >= 0, as matrix_to_quat gives
        c[:] = rot.quat_make_continuous(c, axis=0)
        if prev is not None:
            c *= np.where(np.sum(c[:1] * prev, axis=-1, keepdims=True) < 0, -1.0, 1.0)
        if pin is None:
            mats = rot.quat_to_matrix(c)
        prev = c[-1:].copy()
        _, fk = forward_kinematics(mats, rest_offsets)
        root[a:b] = head_positions[a:b] - fk[:, HEAD]
        positions[a:b] = fk + root[a:b, None, :]
    return root, positions
