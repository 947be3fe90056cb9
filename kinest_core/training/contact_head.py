# SPDX-License-Identifier: GPL-3.0-or-later
"""Fit a KineST checkpoint's foot-contact output on its frozen network, and choose its thresholds.

Why frozen: the contact output reads the same per-frame features the rotation head reads
(:meth:`KineST.trunk`); training only the small contact head keeps every rotation - and so every
existing metric - exactly as it was, and runs in minutes on a CPU, where training the whole
network with the contact loss (``LossConfig.contact``, in ``kinest train``) takes a GPU.

Labels: :func:`~kinest_core.postprocess.contacts.contact_truth` of the ground truth (the rule
contacts are scored against). Thresholds (:class:`ProbabilityThresholds`) are chosen on a
validation set that must be carved *by subject* from the training subjects; the test split is
never looked at here.

``python -m kinest_core.training.contact_head --train DIR.. --val DIR.. --out NAME``
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from kinest_core.model import KineST
from kinest_core.postprocess.contacts import ProbabilityThresholds, contact_truth, contacts_from_probabilities
from kinest_core.training.data import protocol_windows, tracked_joints, window_features
from kinest_core.training.losses import contact_loss
from kinest_core.types import Motion

__all__ = ["choose_thresholds", "contact_scores", "fit_contact_head", "frame_features", "head_probabilities"]


@torch.no_grad()
def frame_features(model: KineST, motion: Motion, batch_size: int = 8) -> NDArray[np.float32]:
    """(F, width) trunk features of every frame (protocol windows; short takes padded at the start)."""
    r, p = tracked_joints(motion)
    w = model.config.window
    pad = max(0, w - len(r))
    if pad:
        r = np.concatenate([np.repeat(r[:1], pad, axis=0), r])
        p = np.concatenate([np.repeat(p[:1], pad, axis=0), p])
    starts = protocol_windows(len(r), w)
    out = np.empty((len(r), model.config.width), dtype=np.float32)
    done = 0
    for i in range(0, len(starts), batch_size):
        batch = starts[i : i + batch_size]
        feats = torch.from_numpy(np.stack([window_features(r, p, s, w) for s in batch]))
        hidden = model.trunk(feats).float().numpy()
        for s, h in zip(batch, hidden, strict=True):
            out[done : s + w] = h[done - s :]
            done = s + w
    return out[pad:]


def fit_contact_head(
    model: KineST,
    features: NDArray[np.float32],
    labels: NDArray[np.bool_],
    iterations: int = 3000,
    batch: int = 4096,
    lr: float = 2e-3,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
) -> list[float]:
    """Train ``model.contact`` (only) on frames' trunk features (N, width) and labels (N, 2); returns the losses."""
    if model.contact is None:
        raise ValueError("the model has no contact output; build it with KineSTConfig(contact_head=True)")
    gen = torch.Generator().manual_seed(seed)
    for prm in model.contact.parameters():  # a fresh head: same start for the same seed
        if prm.dim() > 1:
            torch.nn.init.xavier_uniform_(prm, generator=gen)
        else:
            torch.nn.init.zeros_(prm)
    x = torch.from_numpy(features)
    y = torch.from_numpy(labels.astype(np.float32))
    opt = torch.optim.Adam(model.contact.parameters(), lr=lr, weight_decay=1e-5)
    losses: list[float] = []
    model.contact.train()
    for step in range(iterations):
        for g in opt.param_groups:
            g["lr"] = lr * (0.1 if step >= iterations * 2 // 3 else 1.0)
        idx = torch.randint(0, len(x), (batch,), generator=gen)
        loss = contact_loss(model.contact(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if log is not None and (step + 1) % 500 == 0:
            log(f"  contact head iteration {step + 1}: loss {np.mean(losses[-500:]):.4f}")
    model.contact.eval()
    return losses


@torch.no_grad()
def head_probabilities(model: KineST, features: NDArray[np.float32]) -> NDArray[np.float64]:
    """(N, 2) contact probabilities of the contact head for trunk features (N, width)."""
    if model.contact is None:
        raise ValueError("the model has no contact output")
    return torch.sigmoid(model.contact(torch.from_numpy(features))).double().numpy()


def contact_scores(predicted: Sequence[NDArray], truth: Sequence[NDArray]) -> dict[str, float]:
    """Pooled precision, recall and F1 of (F, 2) contact masks against the truth."""
    tp = sum(int((p & t).sum()) for p, t in zip(predicted, truth, strict=True))
    fp = sum(int((p & ~t).sum()) for p, t in zip(predicted, truth, strict=True))
    fn = sum(int((~p & t).sum()) for p, t in zip(predicted, truth, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def choose_thresholds(
    probabilities: Sequence[NDArray], truth: Sequence[NDArray], min_precision: float = 0.9
) -> tuple[ProbabilityThresholds, dict[str, float]]:
    """The thresholds with the best recall at ``min_precision`` or more (best F1 if none reaches it)."""
    best: tuple[tuple[int, float, float], ProbabilityThresholds, dict[str, float]] | None = None
    grid = itertools.product((0.4, 0.5, 0.6, 0.7, 0.8), (0.6, 0.8, 1.0), (1, 4, 8), (1, 4, 8))
    for on, off_share, gap, span in grid:
        t = ProbabilityThresholds(on=on, off=on * off_share, min_gap=gap, min_span=span)
        s = contact_scores([contacts_from_probabilities(p, t) for p in probabilities], truth)
        key = (int(s["precision"] >= min_precision), s["recall"] if s["precision"] >= min_precision else 0.0, s["f1"])
        if best is None or key > best[0]:
            best = (key, t, s)
    assert best is not None
    return best[1], best[2]


def main(argv: list[str] | None = None) -> int:
    from kinest_core.model.checkpoint import load_checkpoint, save_checkpoint
    from kinest_core.model.kinest import KineSTConfig
    from kinest_core.training.mocap_library import load_motions

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--checkpoint", required=True, help="the KineST checkpoint to add a contact output to")
    ap.add_argument("--train", nargs="+", required=True, help="training motions (BVH/.npz folders)")
    ap.add_argument("--val", nargs="+", required=True, help="validation motions: other subjects than --train")
    ap.add_argument("--out", required=True, help="NAME of the new checkpoint")
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    base, meta = load_checkpoint(args.checkpoint)
    cfg = KineSTConfig.from_dict({**base.config.to_dict(), "contact_head": True})
    model = KineST(cfg)
    model.load_state_dict(base.state_dict(), strict=False)
    model.eval()

    def features_of(paths: Sequence[str]) -> tuple[list[NDArray[np.float32]], list[NDArray[np.bool_]]]:
        motions = load_motions(paths)
        feats = [frame_features(model, m) for m in motions]
        return feats, [contact_truth(m.joint_positions, m.fps) for m in motions]

    train_x, train_y = features_of(args.train)
    val_x, val_y = features_of(args.val)
    print(
        f"features: {sum(len(x) for x in train_x)} training and {sum(len(x) for x in val_x)} validation frames "
        f"({time.perf_counter() - t0:.0f} s)",
        flush=True,
    )
    fit_contact_head(
        model, np.concatenate(train_x), np.concatenate(train_y), args.iterations, seed=args.seed, log=print
    )
    probs = [head_probabilities(model, x) for x in val_x]
    thresholds, scores = choose_thresholds(probs, val_y)
    print(f"validation: {scores} with {thresholds}", flush=True)
    info: dict[str, Any] = {k: v for k, v in meta.items() if k not in ("architecture", "config", "parameters")}
    info["contacts"] = {
        **asdict(thresholds),
        "validation": scores,
        "trained": "contact head only, on the frozen network of " + str(args.checkpoint),
        "iterations": args.iterations,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    save_checkpoint(args.out, model, info)
    print(f"saved {args.out} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
