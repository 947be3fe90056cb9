# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest jitter MOTION.npz``: where a reconstruction shakes, and optionally a smoothing pass.

The numbers are the ones the Blender panel shows (``kinest_core.jitter``, the evaluation
metric's definition and unit), so a batch user and an animator talk about the same figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from kinest_core.jitter import jitter_summary
from kinest_core.outputs import check_output
from kinest_core.postprocess.smoothing import BODY_PARTS, METHODS, SmoothingOptions, smooth_motion
from kinest_core.types import Motion


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "jitter",
        help="jitter per joint and frame of a motion .npz; optional smoothing",
        description="Measure where a reconstructed motion shakes (jitter, the third derivative of joint "
        "positions, per joint and frame) and optionally smooth it per body part, writing the result with -o.",
    )
    p.add_argument("motion", help="motion .npz (from kinest reconstruct)")
    p.add_argument("--smooth", type=float, metavar="S", help="smooth every body part with strength S (0..1)")
    for part in BODY_PARTS:
        p.add_argument(f"--{part}", type=float, metavar="S", help=f"strength for the {part} (overrides --smooth)")
    p.add_argument("--method", choices=METHODS, default="savgol", help="smoothing filter (default savgol)")
    p.add_argument("-o", "--output", help="write the smoothed motion here (.npz)")
    p.add_argument("--top", type=int, default=5, help="worst joints and frames to list (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.output:  # before any work: never over the motion read, a folder we can write to
        out = Path(args.output)
        check_output(out if out.suffix == ".npz" else out.with_suffix(".npz"), inputs=[args.motion])
    motion = Motion.load_npz(args.motion)  # a damaged file is a TrackingFileError naming it (one line, exit 1)
    summary = jitter_summary(motion.joint_positions, motion.fps, top_joints=args.top, top_frames=args.top)
    report: dict = {"motion": args.motion, "frames": motion.num_frames, "jitter": summary.as_dict()}
    parts = {part: getattr(args, part) for part in BODY_PARTS}
    if args.smooth is not None or any(v is not None for v in parts.values()):
        base = 0.0 if args.smooth is None else args.smooth
        opts = SmoothingOptions(method=args.method, strengths={k: base if v is None else v for k, v in parts.items()})
        result = smooth_motion(motion, opts)  # bad strengths are a ValueError: one line on stderr, exit 1
        report["smoothing"] = {**result.as_dict(), "method": opts.method, "strengths": opts.strengths}
        if args.output:
            out = Path(args.output)
            result.motion.save_npz(str(out if out.suffix == ".npz" else out.with_suffix(".npz")))
            report["smoothing"]["output"] = str(out)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{args.motion}: {motion.num_frames} frames, mean jitter {summary.mean:.2f} (100 m/s^3)")
    joints = ", ".join(f"{j['name']} {j['mean']:.2f}" for j in report["jitter"]["worst_joints"])
    print(f"worst joints: {joints}")
    frames = ", ".join(f"{f['frame']} ({f['mean']:.1f})" for f in report["jitter"]["worst_frames"])
    print(f"worst frames (0-based): {frames}")
    if "smoothing" in report:
        s = report["smoothing"]
        print(
            f"smoothed ({s['method']}): {s['jitter_before']:.2f} -> {s['jitter_after']:.2f}, "
            f"{s['reduction_percent']:.0f}% lower; joints moved {s['joint_shift_mean_m'] * 1000:.1f} mm on average, "
            f"the head at most {s['head_shift_max_m'] * 1000:.1f} mm"
        )
        if "output" in s:
            print(f"wrote {s['output']}")
    return 0
