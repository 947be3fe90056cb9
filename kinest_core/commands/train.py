# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest train``: train KineST (or a baseline) on converted full-body motion."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a model on full-body motion (BVH folders or a converted cache)",
        description="Train KineST or a baseline. --data takes folders of .npz motions (kinest_core.training.mocap_library cache) "
        "or of BVH files (converted once into OUT/cache).",
    )
    p.add_argument("--data", nargs="+", required=True, help="training data: cache folders, BVH folders or files")
    p.add_argument("--out", required=True, help="output folder (checkpoints, log, train_state.pt)")
    p.add_argument("--config", help="training config JSON (keys of kinest_core.training.config.TrainConfig)")
    p.add_argument("--val", nargs="+", help="validation data, scored with the evaluation protocol")
    p.add_argument(
        "--hold-out",
        nargs="+",
        metavar="SUBJECT",
        help="move these subjects (e.g. cmu_daz:14 accad:Male2; see kinest_core.training.mocap_library.subject_key) from --data to validation, "
        "so model selection never looks at the test split",
    )
    p.add_argument(
        "--val-split",
        action="store_true",
        default=None,
        help="move the validation subjects (kinest_core.training.splits.VALIDATION_SUBJECTS: CMU 05, 08, 14) from "
        "--data to validation (config key val_split); kinest evaluate --split val scores the same motions",
    )
    p.add_argument(
        "--model", choices=("kinest", "avatarposer", "mean_pose"), help="model to train (overrides the config)"
    )
    p.add_argument("--iterations", type=int, help="iterations (overrides the config)")
    p.add_argument("--batch-size", type=int, help="windows per iteration and process")
    p.add_argument("--lr", type=float, help="learning rate")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints")
    p.add_argument("--val-every", type=int, help="iterations between validations")
    p.add_argument("--max-minutes", type=float, help="stop and save after this much training time")
    amp = p.add_mutually_exclusive_group()
    amp.add_argument(
        "--amp",
        action="store_const",
        const=True,
        dest="amp",
        help="bf16 autocast of the forward pass (the config's default, auto: on for CPUs with native bf16)",
    )
    amp.add_argument("--no-amp", action="store_const", const=False, dest="amp", help="float32 throughout")
    p.add_argument(
        "--ema", type=float, metavar="DECAY", help="keep a moving average of the weights (e.g. 0.998) and save that"
    )
    p.add_argument("--tiny", action="store_true", help="a tiny model (smoke tests)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")
    p.add_argument("--init", help="start from this checkpoint's weights (same architecture) with a fresh optimiser")
    p.set_defaults(run=run)


def load_data(paths: list[str], cache_root: str) -> list[Any]:
    """Motions from cache folders (.npz) or BVH folders/files (converted into ``cache_root`` once)."""
    from kinest_core.training.mocap_library import convert_folder, list_bvh, load_motions

    motions = []
    for p in paths:
        if (os.path.isdir(p) and any(f.endswith(".npz") for f in os.listdir(p))) or (
            os.path.isfile(p) and p.endswith(".npz")
        ):
            motions.extend(load_motions(p))
        elif list_bvh(p):
            name = os.path.basename(os.path.normpath(p)) or "data"
            files = convert_folder(p, os.path.join(cache_root, name))
            motions.extend(load_motions(files))
        else:
            raise FileNotFoundError(f"{p}: no .npz motions or BVH files found")
    return motions


def run(args: argparse.Namespace) -> int:
    from kinest_core.training.config import TrainConfig, describe_data
    from kinest_core.training.trainer import train

    cfg = TrainConfig.load(args.config) if args.config else TrainConfig()
    overrides = {
        "model": args.model,
        "iterations": args.iterations,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "seed": args.seed,
        "device": args.device,
        "threads": args.threads,
        "checkpoint_every": args.checkpoint_every,
        "val_every": args.val_every,
        "max_minutes": args.max_minutes,
        "init": args.init,
        "ema": args.ema,
    }
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, v)
    if args.val_split:
        cfg.val_split = True
    if args.amp is not None:
        cfg.amp = args.amp
    if args.tiny:
        cfg.model_config = {**cfg.model_config, "preset": "tiny"}
    cache = os.path.join(args.out, "cache")
    data = load_data(args.data, cache)
    val = load_data(args.val, cache) if args.val else None
    if args.hold_out:
        from kinest_core.training.mocap_library import subject_key

        held = set(args.hold_out)
        keys = [subject_key(str(m.info.get("source", ""))) for m in data]
        unknown = held - set(keys)
        if unknown:
            raise ValueError(
                f"--hold-out: no motions of {', '.join(sorted(unknown))} in --data (known: {', '.join(sorted(set(keys)))})"
            )
        val = (val or []) + [m for m, k in zip(data, keys, strict=True) if k in held]
        data = [m for m, k in zip(data, keys, strict=True) if k not in held]
        print(f"holding out {', '.join(sorted(held))}: {len(val)} validation motions, {len(data)} training motions")
    if cfg.val_split:
        from kinest_core.training.splits import VALIDATION_SUBJECTS, split_motions

        data, in_val = split_motions(data)
        val = (val or []) + in_val
        print(
            f"validation split ({', '.join(VALIDATION_SUBJECTS)}): {len(in_val)} validation motions, "
            f"{len(data)} training motions"
        )
    info = describe_data(data, args.data)
    summary = train(data, args.out, cfg, val=val, resume=args.resume, data_info=info)
    print(json.dumps(summary, indent=2))
    return 0
