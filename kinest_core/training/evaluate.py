# SPDX-License-Identifier: GPL-3.0-or-later
"""Evaluation on full-body motion (AGRoL protocol) and on real tracking recordings.

Protocol (the paper's): non-overlapping windows of the model's length, the last one
re-aligned to end on the last frame; inputs are the ground truth's own head and wrist
transforms; forward kinematics for prediction and ground truth both use the ground
truth's converted skeleton; the prediction is placed by the ground-truth head position.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from kinest_core import metrics as mx
from kinest_core import rotations as rot
from kinest_core import rotations_torch as trot
from kinest_core.model import KineST
from kinest_core.postprocess.contacts import ContactAccumulator, contact_labels, motion_contacts
from kinest_core.postprocess.foot_planting import plant_feet as plant
from kinest_core.postprocess.hand_pinning import pin_wrists
from kinest_core.skeleton import HEAD, NUM_JOINTS, TRACKED_JOINTS, Skeleton, forward_kinematics
from kinest_core.training.data import protocol_seams, protocol_windows, tracked_joints, window_features
from kinest_core.types import Motion, TrackingSequence

Array = NDArray[np.float64]


#: Mean distance (cm) of the reconstructed head and wrists from the tracked ones, per device.
TRACKED_ERROR_KEYS = ("head_error_cm", "left_wrist_error_cm", "right_wrist_error_cm")


def model_window(model: nn.Module) -> int:
    return int(getattr(getattr(model, "config", None), "window", 96))


@torch.no_grad()
def predict_local(
    model: nn.Module,
    tracked_rot: NDArray,
    tracked_pos: NDArray,
    device: str | torch.device = "cpu",
    batch_size: int = 16,
) -> Array:
    """Local rotations (F, 22, 3, 3) for tracked head/wrist rotations (F, 3, 3, 3) and positions (F, 3, 3).

    Protocol windows; sequences shorter than a window are padded at the start with their first frame.
    """
    w = model_window(model)
    f = tracked_rot.shape[0]
    pad = max(0, w - f)
    if pad:
        tracked_rot = np.concatenate([np.repeat(tracked_rot[:1], pad, axis=0), tracked_rot], axis=0)
        tracked_pos = np.concatenate([np.repeat(tracked_pos[:1], pad, axis=0), tracked_pos], axis=0)
    n = tracked_rot.shape[0]
    starts = protocol_windows(n, w)
    feats = np.stack([window_features(tracked_rot, tracked_pos, s, w) for s in starts])
    out6 = np.empty((len(starts), w, NUM_JOINTS * 6), dtype=np.float64)
    was_training = model.training
    model.eval()
    for i in range(0, len(starts), batch_size):
        x = torch.from_numpy(feats[i : i + batch_size]).to(device)
        out6[i : i + batch_size] = model(x).double().cpu().numpy()
    model.train(was_training)
    pred = np.empty((n, NUM_JOINTS * 6))
    done = 0
    for s, y in zip(starts, out6, strict=True):
        pred[done : s + w] = y[done - s :]
        done = s + w
    mats = trot.sixd_to_matrix(torch.from_numpy(pred[pad:].reshape(-1, NUM_JOINTS, 6))).numpy()
    return mats


def tracking_from_joints(tracked_rot: NDArray, tracked_pos: NDArray, fps: float = 60.0) -> TrackingSequence:
    """Head and wrist world rotations (F, 3, 3, 3) and positions (F, 3, 3), e.g. from
    :func:`kinest_core.training.data.tracked_joints`, as a fully valid tracking recording."""
    n = tracked_rot.shape[0]
    mats = np.tile(np.eye(4), (n, 3, 1, 1))
    mats[:, :, :3, :3] = tracked_rot
    mats[:, :, :3, 3] = tracked_pos
    return TrackingSequence(
        np.arange(n) / fps, mats[:, 0], mats[:, 1], mats[:, 2], np.ones((n, 3), dtype=bool), fps=fps
    )


def predict_with_inference(
    model: KineST,
    tracked_rot: NDArray,
    tracked_pos: NDArray,
    mode: str,
    device: str | torch.device = "cpu",
    rest_offsets: NDArray | None = None,
) -> Array:
    """Local rotations (F, 22, 3, 3) from :func:`kinest_core.inference.reconstruct` in ``mode`` (offline, online...)."""
    motion = reconstruct_unplanted(model, tracked_rot, tracked_pos, mode, device, rest_offsets)
    return rot.quat_to_matrix(motion.local_rotations)


def reconstruct_unplanted(
    model: KineST,
    tracked_rot: NDArray,
    tracked_pos: NDArray,
    mode: str,
    device: str | torch.device = "cpu",
    rest_offsets: NDArray | None = None,
) -> Motion:
    """:func:`kinest_core.inference.reconstruct` of the tracked joints, without hand pinning or foot
    planting, posed on ``rest_offsets`` (default: the neutral body) with its contacts."""
    from kinest_core.inference import reconstruct

    seq = tracking_from_joints(tracked_rot, tracked_pos)
    body = Skeleton(rest_offsets=np.asarray(rest_offsets, dtype=np.float64)) if rest_offsets is not None else None
    return reconstruct(
        seq, model=model, mode=mode, device=str(device), pin_hands=False, plant_feet=False, skeleton=body
    )


def placed_motion(local: NDArray, truth: Motion) -> Motion:
    """Local rotations (F, 22, 3, 3) posed on ``truth``'s body and placed by its head, as the metrics place them."""
    _, fk = forward_kinematics(local, truth.rest_offsets)
    root = truth.joint_positions[:, HEAD] - fk[:, HEAD]
    q = rot.quat_make_continuous(rot.matrix_to_quat(local), axis=0)
    return Motion(q, root, fk + root[:, None], np.asarray(truth.rest_offsets, dtype=np.float64), truth.fps)


def evaluate_motions(
    model: nn.Module,
    motions: Sequence[Motion],
    device: str | torch.device = "cpu",
    batch_size: int = 16,
    progress: Callable[[str], None] | None = None,
    mode: str = "protocol",
    pin_hands: bool = False,
    plant_feet: bool = False,
) -> dict[str, Any]:
    """Metrics over all motions (frame-weighted) and per motion: ``{"overall": {...}, "files": {...}}``.

    ``mode`` "protocol" is the paper's evaluation; other modes ("offline", "online") run KineST
    through :func:`kinest_core.inference.reconstruct` as users get it. ``pin_hands`` applies the
    hand-pinning IK (:func:`kinest_core.postprocess.hand_pinning.pin_wrists`, as ``reconstruct`` does by default) to any
    model's prediction, on the motion's own skeleton; the paper's protocol has no such step.
    ``plant_feet`` likewise applies the foot-locking pass (:func:`kinest_core.postprocess.foot_planting.plant_feet`,
    after pinning). Foot contacts are scored either way (:mod:`kinest_core.postprocess.contacts`): the
    network's contact output in the other modes where the checkpoint has one, else contacts read off
    the prediction; ``floor_gap_cm_before`` is the gap before planting.
    """
    total = mx.MetricAccumulator()
    feet = ContactAccumulator()
    feet_before = ContactAccumulator()
    files: dict[str, Any] = {}
    for i, m in enumerate(motions):
        r, p = tracked_joints(m)
        seams: list[int] | None = None
        contacts = None
        before_gap = None
        if mode == "protocol":
            pred = predict_local(model, r, p, device, batch_size)
            w = model_window(model)
            seams = protocol_seams(max(len(r), w), w)
        elif isinstance(model, KineST):
            unplanted = reconstruct_unplanted(model, r, p, mode, device, m.rest_offsets)
            pred, contacts = rot.quat_to_matrix(unplanted.local_rotations), unplanted.contacts
        else:
            raise ValueError(f"mode {mode!r} needs a KineST model; baselines run the protocol only")
        if pin_hands:
            pred = pin_wrists(pred, m.rest_offsets, p[:, 1:] - p[:, :1])
        placed = placed_motion(pred, m)
        if contacts is None:
            contacts = motion_contacts(placed)
        file_feet = ContactAccumulator()
        file_feet.add(placed.joint_positions, contacts, m.joint_positions, m.rest_offsets, m.fps)
        if plant_feet:
            feet_before.merge(file_feet)
            before_gap = file_feet.result().get("floor_gap_cm")
            placed = plant(placed, contacts)
            pred = rot.quat_to_matrix(placed.local_rotations)
            file_feet = ContactAccumulator()
            file_feet.add(placed.joint_positions, contacts, m.joint_positions, m.rest_offsets, m.fps)
        feet.merge(file_feet)
        acc = mx.MetricAccumulator()
        acc.add(
            pred,
            rot.quat_to_matrix(m.local_rotations),
            m.rest_offsets,
            gt_positions=m.joint_positions,
            fps=m.fps,
            seams=seams,
        )
        total.merge(acc)
        name = str(m.info.get("source", i))
        files[name] = {**acc.result(), **file_feet.result()}
        if plant_feet and before_gap is not None:
            files[name]["floor_gap_cm_before"] = before_gap
        if progress is not None:
            progress(f"{name}: MPJPE {files[name]['mpjpe_cm']:.2f} cm, {m.num_frames} frames")
    overall: dict[str, Any] = {**total.result(), **feet.result()}
    if plant_feet and "floor_gap_cm" in feet_before.result():
        overall["floor_gap_cm_before"] = feet_before.result()["floor_gap_cm"]
    return {"overall": overall, "files": files}


def evaluate_tracking(
    paths: Sequence[str],
    model: KineST | str | None = None,
    device: str = "auto",
    progress: Callable[[str], None] | None = None,
    pin_hands: bool = False,
    body_height: float | None = None,
    plant_feet: bool = False,
    **read_options: Any,
) -> dict[str, Any]:
    """Real recordings: reconstruct each and measure head/wrist distance to the tracked joints
    (:data:`TRACKED_ERROR_KEYS` and ``wrist_error_cm``, both hands together: with hands not pinned, the
    gap between the network and real devices; over all files weighted by each device's tracked frames), jitter,
    foot skating and ground penetration (no full-body ground truth exists). ``pin_hands`` and
    ``body_height`` as in ``reconstruct`` (pinning off by default here, so the wrist distances measure
    the network itself); ``read_options`` go to ``read_tracking``. ``floor_gap_cm``: the lowest foot
    joint's height above standing height over the reconstruction's contacts (pooled median over files);
    with ``plant_feet`` the feet are planted and ``floor_gap_cm_before`` is the gap before."""
    from kinest_core.inference import reconstruct
    from kinest_core.io import read_tracking

    files: dict[str, Any] = {}
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    feet, feet_before = ContactAccumulator(), ContactAccumulator()
    for path in paths:
        seq = read_tracking(path, **read_options)
        motion = reconstruct(
            seq, model=model, device=device, pin_hands=pin_hands, body_height=body_height, plant_feet=False
        )
        file_feet = ContactAccumulator()
        file_feet.add(motion.joint_positions, motion.contacts, None, motion.rest_offsets, motion.fps)
        gap_before = file_feet.result().get("floor_gap_cm", float("nan"))
        if plant_feet:
            feet_before.merge(file_feet)
            motion = plant(motion)
            file_feet = ContactAccumulator()
            file_feet.add(motion.joint_positions, motion.contacts, None, motion.rest_offsets, motion.fps)
        feet.merge(file_feet)
        tracked = seq.transforms()[:, :, :3, 3]
        joints = motion.joint_positions
        n = min(joints.shape[0], tracked.shape[0])
        valid = seq.valid[:n]
        dist = np.linalg.norm(joints[:n, list(TRACKED_JOINTS)] - tracked[:n], axis=-1) * 100.0
        res: dict[str, Any] = {}
        counts: dict[str, int] = {}
        for dev, name in enumerate(TRACKED_ERROR_KEYS):
            d = dist[valid[:, dev], dev]
            res[name] = float(d.mean()) if d.size else float("nan")
            counts[name] = int(d.size)
        hands = dist[:, 1:][valid[:, 1:]]
        res["wrist_error_cm"] = float(hands.mean()) if hands.size else float("nan")
        counts["wrist_error_cm"] = int(hands.size)
        jit = mx.jitter_per_joint(joints, motion.fps)[3:]
        res["jitter"] = float(jit.mean() / 100.0) if jit.size else 0.0
        s, c = mx.foot_skate(joints, motion.fps)
        res["foot_skate_cm"] = s / c if c else 0.0
        res["ground_penetration_cm"] = float(np.maximum(0.0, -joints[..., 2].min(axis=-1)).mean() * 100.0)
        res["floor_gap_cm"] = file_feet.result().get("floor_gap_cm", float("nan"))
        if plant_feet:
            res["floor_gap_cm_before"] = gap_before
        res["frames"] = int(joints.shape[0])
        res["warnings"] = [w.code for w in seq.warnings]
        files[os.path.basename(path)] = res
        for k, v in res.items():  # frame-weighted: distances by the frames their device was tracked
            if isinstance(v, float) and np.isfinite(v):
                w = counts.get(k, res["frames"])
                sums[k] = sums.get(k, 0.0) + v * w
                weights[k] = weights.get(k, 0.0) + w
        if progress is not None:
            progress(
                f"{os.path.basename(path)}: head {res['head_error_cm']:.2f} cm, wrists "
                f"{res['left_wrist_error_cm']:.2f} / {res['right_wrist_error_cm']:.2f} cm, jitter {res['jitter']:.2f}"
            )
    overall: dict[str, Any] = {k: sums[k] / weights[k] for k in sums}
    for key, acc in (("floor_gap_cm", feet), ("floor_gap_cm_before", feet_before)):  # pooled medians
        overall.pop(key, None)
        if "floor_gap_cm" in acc.result():
            overall[key] = acc.result()["floor_gap_cm"]
    overall["frames"] = int(sum(f["frames"] for f in files.values()))
    return {"overall": overall, "files": files}


def ground_truth_metrics(motions: Sequence[Motion]) -> dict[str, float | int]:
    """The ground truth scored against itself: its jitter, foot skating, foot slide (``foot_slide_cm``),
    penetration and floor gap over its own contact labels (reference row)."""
    acc = mx.MetricAccumulator()
    feet = ContactAccumulator()
    for m in motions:
        loc = rot.quat_to_matrix(m.local_rotations)
        acc.add(loc, loc, m.rest_offsets, gt_positions=m.joint_positions, fps=m.fps)
        feet.add(m.joint_positions, contact_labels(m.joint_positions, m.fps), m.joint_positions, m.rest_offsets, m.fps)
    out: dict[str, float | int] = dict(acc.result())
    for key in ("foot_slide_cm", "floor_gap_cm"):
        if key in feet.result():
            out[key] = feet.result()[key]
    return out
