# SPDX-License-Identifier: GPL-3.0-or-later
"""Pictures of foot planting on one mocap take: a foot's path before and after, and the contact timeline.

``python scripts/feet_pictures.py TAKE.bvh [--out docs/img]`` reconstructs the take from its own
head and wrist joints (offline mode, hands pinned, on the take's skeleton, placed by its head, as
``kinest evaluate`` does), plants the feet with the contacts the reconstruction carries, and draws

- ``feet_trajectory.png``: the left ankle's height and its horizontal travel per frame for the
  capture, the unplanted and the planted reconstruction, contact spans shaded;
- ``feet_contacts.png``: per foot, the capture's contacts (the rule) and the reconstruction's.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from kinest_core import rotations as rot  # noqa: E402
from kinest_core.model import default_checkpoint_path, load_checkpoint  # noqa: E402
from kinest_core.postprocess.contacts import contact_spans, contact_truth, horizontal_travel  # noqa: E402
from kinest_core.postprocess.foot_planting import plant_feet  # noqa: E402
from kinest_core.postprocess.hand_pinning import pin_wrists  # noqa: E402
from kinest_core.training.data import tracked_joints  # noqa: E402
from kinest_core.training.evaluate import placed_motion, reconstruct_unplanted  # noqa: E402
from kinest_core.training.mocap_library import load_motions  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("take", help="a full-body BVH take")
    ap.add_argument("--out", default="docs/img", help="folder for the two PNGs")
    ap.add_argument("--frames", type=int, default=360, help="frames to draw from the start")
    args = ap.parse_args()
    truth = load_motions([args.take])[0]
    path = default_checkpoint_path()
    if path is None:
        raise SystemExit("no shipped checkpoint in this install")
    model, _ = load_checkpoint(path)
    r, p = tracked_joints(truth)
    free = reconstruct_unplanted(model, r, p, "offline", "cpu", truth.rest_offsets)
    local = pin_wrists(rot.quat_to_matrix(free.local_rotations), truth.rest_offsets, p[:, 1:] - p[:, :1])
    placed = placed_motion(local, truth)
    planted = plant_feet(placed, free.contacts)
    n = min(args.frames, truth.num_frames)
    t = np.arange(n) / truth.fps
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for label, m, style in (("capture", truth, "k-"), ("unplanted", placed, "C1-"), ("planted", planted, "C0-")):
        pos = m.joint_positions[:n, 7]
        top.plot(t, pos[:, 2] * 100, style, label=label, lw=1.2)
        bottom.plot(t, horizontal_travel(pos) * 100, style, lw=1.2)
    for a, b in contact_spans(planted.contacts[:n])[0]:
        for ax in (top, bottom):
            ax.axvspan(a / truth.fps, b / truth.fps, color="C0", alpha=0.15, lw=0)
    top.set_ylabel("left ankle height (cm)")
    bottom.set_ylabel("horizontal travel (cm/frame)")
    bottom.set_xlabel("time (s); shaded: the left foot's contact spans")
    top.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(out / "feet_trajectory.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(8, 2.2))
    rows = (
        ("left, capture", contact_truth(truth.joint_positions)[:n, 0]),
        ("left, reconstruction", planted.contacts[:n, 0]),
        ("right, capture", contact_truth(truth.joint_positions)[:n, 1]),
        ("right, reconstruction", planted.contacts[:n, 1]),
    )
    for i, (_label, mask) in enumerate(rows):
        for a, b in contact_spans(mask[:, None])[0]:
            ax.broken_barh([(a / truth.fps, (b - a) / truth.fps)], (i - 0.35, 0.7), color="C0" if i % 2 else "0.4")
    ax.set_yticks(range(len(rows)), [label for label, _ in rows])
    ax.set_xlabel("time (s)")
    ax.set_ylim(-0.6, len(rows) - 0.4)
    fig.tight_layout()
    fig.savefig(out / "feet_contacts.png", dpi=110)
    plt.close(fig)
    print(f"wrote {out / 'feet_trajectory.png'} and {out / 'feet_contacts.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
