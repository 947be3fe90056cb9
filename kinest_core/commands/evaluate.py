# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest evaluate``: AGRoL-protocol metrics on full-body motion, or plausibility checks on real recordings."""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import Any

from kinest_core.commands.reader_options import add_reader_options, body_height, reader_kwargs

ROWS = (
    ("mpjre_deg", "MPJRE (deg)"),
    ("mpjpe_cm", "MPJPE (cm)"),
    ("hand_pe_cm", "H-PE (cm)"),
    ("upper_pe_cm", "U-PE (cm)"),
    ("lower_pe_cm", "L-PE (cm)"),
    ("root_pe_cm", "Root-PE (cm)"),
    ("mpjve_cms", "MPJVE (cm/s)"),
    ("jitter", "Jitter (100 m/s^3)"),
    ("gt_jitter", "GT jitter (100 m/s^3)"),
    ("jitter_seams", "  at window seams"),
    ("jitter_interior", "  inside windows"),
    ("foot_skate_cm", "Foot skating (cm/frame)"),
    ("ground_penetration_cm", "Ground penetration (cm)"),
    ("foot_slide_cm", "Foot slide (cm/frame)"),
    ("contact_precision", "Contact precision"),
    ("contact_recall", "Contact recall"),
    ("contact_f1", "Contact F1"),
    ("contact_f1_always", "  F1 if always in contact"),
    ("floor_gap_cm_before", "Floor gap, unplanted (cm)"),
    ("floor_gap_cm", "Floor gap (cm)"),
    ("frames", "Frames"),
)
TRACKING_ROWS = (
    ("head_error_cm", "Head error (cm)"),
    ("left_wrist_error_cm", "Left wrist error (cm)"),
    ("right_wrist_error_cm", "Right wrist error (cm)"),
    ("wrist_error_cm", "Wrist error, both (cm)"),
    ("jitter", "Jitter (100 m/s^3)"),
    ("foot_skate_cm", "Foot skating (cm/frame)"),
    ("ground_penetration_cm", "Ground penetration (cm)"),
    ("floor_gap_cm_before", "Floor gap, unplanted (cm)"),
    ("floor_gap_cm", "Floor gap (cm)"),
    ("frames", "Frames"),
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="metrics on full-body BVH/AMASS motion, or checks on tracking recordings",
        description="--data: full-body motion (BVH files/folders, converted .npz caches) scored with the AGRoL "
        "protocol. --tracking: real recordings, reconstructed and checked against the tracked joints.",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", nargs="+", help="full-body BVH or .npz motion files or folders")
    src.add_argument("--tracking", nargs="+", help="tracking recordings (any format kinest reads)")
    p.add_argument("--checkpoint", help="checkpoint (KineST or a baseline; default: the shipped one)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    p.add_argument(
        "--mode",
        default="protocol",
        choices=("protocol", "offline", "online"),
        help="protocol: the paper's windows (default); offline/online: as kinest reconstruct runs (KineST only)",
    )
    p.add_argument(
        "--pin-hands",
        action="store_true",
        help="apply the hand-pinning IK (kinest reconstruct's default) to the prediction; the paper's protocol "
        "has no such step, so it is off by default",
    )
    p.add_argument(
        "--plant-feet",
        action="store_true",
        help="apply the foot-locking pass (kinest reconstruct's default) to the prediction, after --pin-hands; "
        "off by default, like --pin-hands",
    )
    p.add_argument(
        "--split",
        default="all",
        choices=("all", "train", "val"),
        help="with --data from the training folder: only the validation subjects (val: CMU 05, 08, 14; "
        "kinest_core.training.splits) or only the others (train); all: every motion (default)",
    )
    p.add_argument("--per-file", action="store_true", help="also list every file")
    p.add_argument(
        "--ground-truth",
        action="store_true",
        help="score the ground truth itself (jitter, foot skating, penetration): the reference row",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    add_reader_options(p)
    p.set_defaults(run=run)


TRACKING_EXTENSIONS = (".csv", ".tsv", ".txt", ".bsor", ".bvh", ".npz", ".json")


def tracking_files(paths: list[str]) -> list[str]:
    """Files as given; folders contribute their recordings (by extension, sorted, not recursive)."""
    import os

    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out.extend(sorted(os.path.join(p, f) for f in os.listdir(p) if f.lower().endswith(TRACKING_EXTENSIONS)))
        else:
            out.append(p)
    return out


def _split_motions(motions: list[Any], split: str) -> list[Any]:
    """The motions of ``split`` (kinest_core.training.splits.select_split)."""
    from kinest_core.training.splits import select_split

    return select_split(motions, split)


def _fmt(v: Any) -> str:
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "n/a" if math.isnan(v) else f"{v:.2f}"
    return str(v)


def run(args: argparse.Namespace) -> int:
    import torch

    from kinest_core.model import default_checkpoint_path
    from kinest_core.training.baselines import load_any_checkpoint

    if args.tracking and args.split != "all":
        print("kinest evaluate: --split applies to --data (motions of the training folder)", file=sys.stderr)
        return 2
    read_options = reader_kwargs(args)
    if args.data and (read_options or body_height(args) is not None):
        print("kinest evaluate: the reading options (--units, --convention, ...) apply to --tracking", file=sys.stderr)
        return 2
    if args.ground_truth:
        if not args.data:
            print("kinest evaluate: --ground-truth needs --data", file=sys.stderr)
            return 1
        from kinest_core.training.evaluate import ground_truth_metrics
        from kinest_core.training.mocap_library import load_motions

        gt = dict(ground_truth_metrics(_split_motions(load_motions(args.data), args.split)))
        if args.json:
            print(json.dumps(gt, indent=2))
        else:
            print("ground truth")
            for key, label in ROWS:
                if key in gt:
                    print(f"  {label:<26} {_fmt(gt[key])}")
        return 0
    device = torch.device(
        "cuda"
        if args.device == "auto" and torch.cuda.is_available()
        else ("cpu" if args.device == "auto" else args.device)
    )
    path = args.checkpoint or default_checkpoint_path()
    if path is None:
        print("kinest evaluate: no shipped checkpoint in this install; pass --checkpoint PATH", file=sys.stderr)
        return 1
    model, meta = load_any_checkpoint(path, device=device)
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if args.json else (lambda s: print(s, flush=True))
    if args.tracking:
        from kinest_core.model import KineST
        from kinest_core.training.evaluate import evaluate_tracking

        if not isinstance(model, KineST):
            print("kinest evaluate: --tracking needs a KineST checkpoint (reconstruct runs KineST)", file=sys.stderr)
            return 1
        res = evaluate_tracking(
            tracking_files(args.tracking),
            model=model,
            device=str(device),
            progress=say,
            pin_hands=args.pin_hands,
            body_height=body_height(args),
            plant_feet=args.plant_feet,
            **read_options,
        )
        rows: tuple[tuple[str, str], ...] = TRACKING_ROWS
    else:
        from kinest_core.training.evaluate import evaluate_motions
        from kinest_core.training.mocap_library import load_motions

        motions = _split_motions(load_motions(args.data), args.split)
        if not motions:
            where = "in --data" if args.split == "all" else f"of the {args.split} split in --data"
            print(f"kinest evaluate: no motion found {where}", file=sys.stderr)
            return 1
        res = evaluate_motions(
            model,
            motions,
            device,
            args.batch_size,
            progress=say if args.per_file else None,
            mode=args.mode,
            pin_hands=args.pin_hands,
            plant_feet=args.plant_feet,
        )
        rows = ROWS
    out: dict[str, Any] = dict(res["overall"])
    out["checkpoint"] = str(path)
    out["architecture"] = meta.get("architecture", "KineST")
    if args.data:
        out["mode"] = args.mode
        out["split"] = args.split
    out["pin_hands"] = args.pin_hands
    out["plant_feet"] = args.plant_feet
    if args.per_file:
        out["files"] = res["files"]
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"checkpoint: {path} ({out['architecture']})")
    for key, label in rows:
        if key in out:
            print(f"  {label:<26} {_fmt(out[key])}")
    return 0
