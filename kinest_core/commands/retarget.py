# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest retarget MOTION.npz --target RIG.bvh -o OUT.bvh``: a motion on another skeleton, as BVH.

The target BVH's hierarchy (names, offsets, channel orders, end sites) is kept; its OFFSETs
are the rest pose. The file is read Y up (the BVH norm) unless its rest pose is clearly
taller along Z. Joints that need to move (the hips; feet hung from the root) get position
channels. The mapping is printed; the output is written beside itself and renamed into place.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from kinest_core import rotations as rot
from kinest_core.io.bvh import ZUP_TO_YUP, BvhData, read_bvh
from kinest_core.outputs import check_output, staged_outputs
from kinest_core.postprocess.bone_map import BoneMap, TargetSkeleton, map_skeleton
from kinest_core.postprocess.retarget import ROOT_MOTION_MODES, RetargetResult, retarget


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "retarget",
        help="motion .npz -> BVH on another skeleton (--target RIG.bvh)",
        description="Play a motion from kinest reconstruct on another character's skeleton: the target BVH's "
        "hierarchy and rest pose are kept, the bone mapping is printed, and the result is written as BVH.",
    )
    p.add_argument("motion", help="motion .npz written by kinest reconstruct")
    p.add_argument(
        "--target", required=True, help="BVH whose skeleton (its OFFSETs are the rest pose) receives the motion"
    )
    p.add_argument("-o", "--output", required=True, help="OUT.bvh")
    p.add_argument("--ik", action="store_true", help="bend arms and legs so hands and feet reach ours (scaled)")
    p.add_argument("--root-motion", choices=ROOT_MOTION_MODES, default="hips", help="where the travel goes")
    p.add_argument("--map", help="JSON file {smpl_joint: bone} to use instead of the automatic mapping")
    p.add_argument(
        "--no-plant-feet",
        dest="plant_feet",
        action="store_false",
        help="let the feet follow the copied leg rotations (default: each foot is held still through the "
        "motion's contact spans)",
    )
    p.set_defaults(run=run)


def bvh_skeleton(bvh: BvhData) -> tuple[TargetSkeleton, NDArray[np.float64]]:
    """The BVH's rest skeleton in Z-up world (file units) and the file-axes -> Z-up rotation."""
    n = len(bvh.names)
    heads = np.zeros((n, 3))
    for k, p in enumerate(bvh.parents):
        heads[k] = bvh.offsets[k] + (heads[p] if p >= 0 else 0.0)
    ext = np.ptp(heads, axis=0)
    to_zup = np.eye(3) if ext[2] > 1.5 * max(ext[1], 1e-9) else ZUP_TO_YUP.T  # zup = to_zup @ file
    tails = heads.copy()
    for k in range(n):
        kids = [c for c, p in enumerate(bvh.parents) if p == k]
        if kids:
            tails[k] = heads[max(kids, key=lambda c: np.linalg.norm(bvh.offsets[c]))]
        elif k in bvh.end_sites:
            tails[k] = heads[k] + bvh.end_sites[k]
        if np.linalg.norm(tails[k] - heads[k]) < 1e-9:
            p = bvh.parents[k]
            tails[k] = heads[k] + (heads[k] - heads[p] if p >= 0 else np.array([0.0, 1.0, 0.0])) * 0.3
    skel = TargetSkeleton(
        tuple(bvh.names),
        tuple(bvh.parents),
        heads @ to_zup.T,
        tails @ to_zup.T,
        np.tile(to_zup, (n, 1, 1)),
    )
    return skel, to_zup


def bvh_text(bvh: BvhData, result: RetargetResult) -> str:
    """The target's hierarchy with the retargeted motion (rotations in each joint's channel order)."""
    n, frames = len(bvh.names), result.num_frames
    key = {nm: k for k, nm in enumerate(result.keyed)}
    channels = [list(c) for c in bvh.channels]
    for k, nm in enumerate(bvh.names):
        rot_axes = [c for c in channels[k] if c.lower().endswith("rotation")]
        if nm in key and not rot_axes:
            channels[k] += ["Zrotation", "Xrotation", "Yrotation"]
        if nm in result.locations and not any(c.lower().endswith("position") for c in channels[k]):
            channels[k] = ["Xposition", "Yposition", "Zposition"] + channels[k]
    lines = ["HIERARCHY"]

    def emit(k: int, depth: int) -> None:
        ind = "  " * depth
        lines.append(f"{ind}{'ROOT' if bvh.parents[k] < 0 else 'JOINT'} {bvh.names[k]}")
        lines.append(f"{ind}{{")
        o = bvh.offsets[k]
        lines.append(f"{ind}  OFFSET {o[0]:.6f} {o[1]:.6f} {o[2]:.6f}")
        if channels[k]:
            lines.append(f"{ind}  CHANNELS {len(channels[k])} {' '.join(channels[k])}")
        kids = [c for c, p in enumerate(bvh.parents) if p == k]
        for c in kids:
            emit(c, depth + 1)
        if k in bvh.end_sites:
            e = bvh.end_sites[k]
            lines.extend(
                [
                    f"{ind}  End Site",
                    f"{ind}  {{",
                    f"{ind}    OFFSET {e[0]:.6f} {e[1]:.6f} {e[2]:.6f}",
                    f"{ind}  }}",
                ]
            )
        lines.append(f"{ind}}}")

    order: list[int] = []
    for r in [k for k in range(n) if bvh.parents[k] < 0]:
        emit(r, 0)
        stack = [r]
        while stack:
            k = stack.pop()
            order.append(k)
            stack += [c for c, p in enumerate(bvh.parents) if p == k][::-1]
    cols = []
    for k in order:
        nm = bvh.names[k]
        axes = "".join(c[0].upper() for c in channels[k] if c.lower().endswith("rotation"))
        euler = None
        if axes:
            q = result.rotations[:, key[nm]] if nm in key else np.tile([1.0, 0.0, 0.0, 0.0], (frames, 1))
            euler = Rotation.from_matrix(rot.quat_to_matrix(q)).as_euler(axes, degrees=True)
        pos = bvh.offsets[k] + (result.locations[nm] if nm in result.locations else 0.0)
        pos = np.broadcast_to(pos, (frames, 3))
        r_i = 0
        for c in channels[k]:
            if c.lower().endswith("position"):
                cols.append(pos[:, "XYZ".index(c[0].upper())])
            else:
                assert euler is not None
                cols.append(euler[:, r_i])
                r_i += 1
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {1.0 / result.fps:.8f}"]
    rows = np.stack(cols, axis=-1) if cols else np.zeros((frames, 0))
    body = "\n".join(" ".join(f"{v:.5f}" for v in row) for row in rows)
    return "\n".join(lines) + "\n" + body + "\n"


def run(args: argparse.Namespace) -> int:
    from kinest_core.types import Motion

    out = check_output(args.output, inputs=[args.motion, args.target])  # before any work; never over an input
    if not Path(args.motion).exists():
        raise FileNotFoundError(f"{args.motion}: no such file")
    motion = Motion.load_npz(args.motion)
    bvh = read_bvh(args.target)
    skel, to_zup = bvh_skeleton(bvh)
    if args.map:
        with open(args.map, encoding="utf-8") as fh:
            try:
                mapping = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f'{args.map}: not JSON ({exc}); write {{"smpl_joint": "bone", ...}}') from exc
        if not isinstance(mapping, dict):
            raise ValueError(f'{args.map}: expected a JSON object {{"smpl_joint": "bone", ...}}')
        bm = BoneMap.from_mapping({str(k): str(v) for k, v in mapping.items()}, skel)
    else:
        bm = map_skeleton(skel)
    print(f"mapping of {args.target}:\n{bm.describe()}")
    result = retarget(motion, skel, bm, root_motion=args.root_motion, use_ik=args.ik, plant_feet=args.plant_feet)
    with staged_outputs(out) as (tmp,):  # written beside the target and renamed: no half-written file
        tmp.write_text(bvh_text(bvh, result), encoding="utf-8")
    print(f"wrote {out}: {result.num_frames} frames on {len(skel.names)} joints (root motion x{result.scale:.3g})")
    if result.contacts is None:
        print("feet: the motion has no contacts, so nothing held them (reconstruct it again to get them)")
    else:
        from kinest_core.postprocess.contacts import contact_spans

        left, right = (len(s) for s in contact_spans(result.contacts))
        verb = "held still through" if args.plant_feet else "not held (--no-plant-feet):"
        print(f"feet: {verb} {left} left and {right} right contact span(s)")
    return 0
