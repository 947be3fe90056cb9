# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest reconstruct IN -o OUT``: tracking file -> motion ``.npz`` and/or ``.bvh``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kinest_core.commands.reader_options import add_reader_options, body_height, read_for_command, warning_lines


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct",
        help="tracking file (.npz, .csv, .bvh, .bsor) -> motion .npz / .bvh",
        description="Read a head and two-hand tracking recording and reconstruct the full body with KineST; "
        "write the motion as .npz (arrays) and/or .bvh (for animation tools). Warnings about the recording are "
        "printed with the flag that acts on each.",
    )
    p.add_argument("input", help="tracking file")
    p.add_argument("-o", "--output", required=True, help="OUT.npz or OUT.bvh (a path without suffix writes both)")
    p.add_argument("--checkpoint", help="model checkpoint (default: the shipped one)")
    p.add_argument(
        "--mode",
        choices=["offline", "online", "protocol"],
        default="offline",
        help="offline: overlapping windows blended so seams do not pop (default); online: causal, each frame "
        "from a window ending at it, as live tracking would be; protocol: the paper's non-overlapping windows",
    )
    p.add_argument("--stride", type=int, default=1, help="online mode: frames per window step (latency vs speed)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument(
        "--no-pin-hands",
        dest="pin_hands",
        action="store_false",
        help="keep the network's arms as predicted (default: bend them so the wrists land on the tracked wrists)",
    )
    p.add_argument(
        "--no-plant-feet",
        dest="plant_feet",
        action="store_false",
        help="keep the network's legs as predicted (default: lock each foot where it stands in its contact spans "
        "and keep the feet above the floor)",
    )
    p.add_argument(
        "--float32",
        dest="precision",
        action="store_const",
        const="float32",
        default="auto",
        help="run the network in float32 (default: bf16 on CPUs with native bf16, about 1.4x faster, same accuracy)",
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors (no warnings, progress or summary)")
    add_reader_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kinest_core.checks import check_motion
    from kinest_core.inference import InferenceStats, reconstruct
    from kinest_core.io.bvh import write_motion_bvh
    from kinest_core.outputs import check_output, staged_outputs

    out = Path(args.output)
    targets = [out] if out.suffix.lower() in (".npz", ".bvh") else [out.with_suffix(".npz"), out.with_suffix(".bvh")]
    for t in targets:  # before any work: not the input, a folder we can write to
        check_output(t, inputs=[args.input])
    tracking = read_for_command(args.input, args)
    if not args.quiet:
        for line in warning_lines(tracking):
            print(line, file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if not args.quiet:
            print(f"\rreconstructing: {done}/{total} frames", end="", file=sys.stderr, flush=True)

    stats = InferenceStats()
    motion = reconstruct(
        tracking,
        model=args.checkpoint,
        mode=args.mode,
        device=args.device,
        body_height=body_height(args),
        num_threads=args.threads,
        stride=args.stride,
        pin_hands=args.pin_hands,
        plant_feet=args.plant_feet,
        precision=args.precision,
        progress=progress,
        stats=stats,
    )
    check_motion(motion, str(args.input))
    with staged_outputs(*targets) as temps:  # all files or none; an old file survives a failure
        for t, tmp in zip(targets, temps, strict=True):
            if t.suffix.lower() == ".npz":
                motion.save_npz(str(tmp))
            else:
                write_motion_bvh(
                    str(tmp), motion.local_rotations, motion.root_translation, motion.rest_offsets, motion.fps
                )
    if not args.quiet:
        print(file=sys.stderr)
        print(
            f"{motion.num_frames} frames ({motion.num_frames / motion.fps:.1f} s) on {stats.device} in {stats.seconds:.2f} s "
            f"({stats.realtime_factor:.1f}x real time, {args.mode}); wrote {', '.join(str(t) for t in targets)}"
        )
    return 0
