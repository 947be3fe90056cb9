# SPDX-License-Identifier: GPL-3.0-or-later
"""Dropout and noise rates of real tracking, against the same figures for mocap joints.

Training windows are made from mocap joints and disturbed to look like real tracking
(``kinest_core.training.data.AugmentConfig``); this script measures what "real" is, on the
good recordings in ``../shared/data/vr`` (every file but the deliberately broken
``*negative*`` ones), read as the network gets them (``read_tracking``, 60 fps):

- dropouts: share of frames a device is invalid (the reader holds or interpolates them),
  stretches per minute and their lengths; and frozen samples in the file itself (a device
  repeating its pose exactly, as a game does while it has lost a controller);
- noise: a robust per-frame noise estimate from third differences (1.4826 MAD / sqrt(20),
  what white noise of that std gives), in mm and degrees. Fast real motion adds to third
  differences too, so the same estimator on the mocap joints of the test split is printed
  beside it: the difference is what the devices add.

Usage: ``python scripts/tracking_noise_study.py [--mocap DIR] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kinest_core import rotations as rot  # noqa: E402
from kinest_core.io import read_tracking  # noqa: E402
from kinest_core.training.data import tracked_joints  # noqa: E402
from kinest_core.training.mocap_library import load_motions  # noqa: E402

VR = ROOT.parent / "shared" / "data" / "vr"
DEVICES = ("head", "left", "right")


def good_recordings(folder: Path = VR) -> list[Path]:
    """Every recording but the deliberately broken ``*negative*`` files."""
    exts = (".csv", ".bsor")
    return sorted(p for p in folder.iterdir() if p.suffix in exts and "negative" not in p.name)


def _runs(mask: np.ndarray) -> list[int]:
    """Lengths of the True stretches of a 1-D bool array."""
    out, n = [], 0
    for v in mask:
        if v:
            n += 1
        elif n:
            out.append(n)
            n = 0
    if n:
        out.append(n)
    return out


def noise_std(x: np.ndarray) -> float:
    """Robust white-noise std from third differences along axis 0 of (F, ...) samples."""
    d3 = np.diff(x, n=3, axis=0).reshape(-1)
    if d3.size == 0:
        return float("nan")
    mad = np.median(np.abs(d3 - np.median(d3)))
    return float(1.4826 * mad / math.sqrt(20.0))


def rotation_noise_deg(r: np.ndarray) -> float:
    """Noise of rotations (F, 3, 3): third differences of the rotation vectors relative to the first frame."""
    rel = np.swapaxes(r[:1], -1, -2) @ r
    aa = rot.matrix_to_axis_angle(rel)
    return math.degrees(noise_std(aa))


def study(files: list[Path], mocap: str | None) -> dict[str, Any]:
    per_file: dict[str, Any] = {}
    total = {d: {"frames": 0, "invalid": 0, "runs": [], "frozen": 0, "samples": 0} for d in DEVICES}
    pos_noise = {d: [] for d in DEVICES}
    rot_noise = {d: [] for d in DEVICES}
    for f in files:
        seq = read_tracking(f)
        raw = read_tracking(f, resample_fps=None)
        mats = seq.transforms()
        row: dict[str, Any] = {"frames": seq.num_frames}
        for i, d in enumerate(DEVICES):
            inv = ~seq.valid[:, i]
            runs = _runs(inv)
            rm = raw.transforms()[:, i]
            same = (
                np.all(np.abs(np.diff(rm[:, :3, :], axis=0)) < 1e-9, axis=(1, 2)) & raw.valid[1:, i] & raw.valid[:-1, i]
            )
            ok = seq.valid[:, i]
            p = mats[ok, i, :3, 3]
            r = mats[ok, i, :3, :3]
            pn, rn = noise_std(p) * 1000.0, rotation_noise_deg(r)
            row[d] = {
                "invalid_share": float(inv.mean()),
                "dropouts": len(runs),
                "longest_dropout_frames": max(runs, default=0),
                "frozen_share": float(same.mean()) if same.size else 0.0,
                "noise_mm": pn,
                "noise_deg": rn,
            }
            t = total[d]
            t["frames"] += seq.num_frames
            t["invalid"] += int(inv.sum())
            t["runs"] += runs
            t["frozen"] += int(same.sum())
            t["samples"] += int(same.size)
            pos_noise[d].append((pn, int(ok.sum())))
            rot_noise[d].append((rn, int(ok.sum())))
        per_file[f.name] = row
    overall: dict[str, Any] = {}
    for d in DEVICES:
        t = total[d]
        minutes = t["frames"] / 60.0 / 60.0
        w = np.array([n for _, n in pos_noise[d]], dtype=float)
        overall[d] = {
            "invalid_share": t["invalid"] / max(t["frames"], 1),
            "dropouts_per_minute": len(t["runs"]) / max(minutes, 1e-9),
            "dropout_frames_median": float(np.median(t["runs"])) if t["runs"] else 0.0,
            "dropout_frames_max": max(t["runs"], default=0),
            "frozen_share": t["frozen"] / max(t["samples"], 1),
            "noise_mm": float(np.average([v for v, _ in pos_noise[d]], weights=w)),
            "noise_deg": float(np.average([v for v, _ in rot_noise[d]], weights=w)),
        }
    overall["frames"] = total["head"]["frames"]
    out: dict[str, Any] = {"real": overall, "files": per_file}
    if mocap:
        ref: dict[str, Any] = {d: {"noise_mm": [], "noise_deg": [], "w": []} for d in DEVICES}
        for m in load_motions(mocap):
            r, p = tracked_joints(m)
            for i, d in enumerate(DEVICES):
                ref[d]["noise_mm"].append(noise_std(p[:, i]) * 1000.0)
                ref[d]["noise_deg"].append(rotation_noise_deg(r[:, i]))
                ref[d]["w"].append(m.num_frames)
        out["mocap"] = {
            d: {k: float(np.average(ref[d][k], weights=ref[d]["w"])) for k in ("noise_mm", "noise_deg")}
            for d in DEVICES
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vr", default=str(VR), help="folder of recordings (default: the shared VR data)")
    ap.add_argument("--mocap", help="mocap motions (cache folder, pack or BVH) for the reference noise figure")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    res = study(good_recordings(Path(args.vr)), args.mocap)
    if args.json:
        print(json.dumps(res, indent=1))
        return 0
    print(f"good recordings: {len(res['files'])}, {res['real']['frames']} frames at 60 fps")
    for d in DEVICES:
        o = res["real"][d]
        ref = res.get("mocap", {}).get(d)
        print(
            f"{d:>5}: invalid {100 * o['invalid_share']:.2f} % of frames, {o['dropouts_per_minute']:.2f} dropouts/min "
            f"(median {o['dropout_frames_median']:.0f}, max {o['dropout_frames_max']} frames), frozen samples "
            f"{100 * o['frozen_share']:.2f} %, noise {o['noise_mm']:.3f} mm / {o['noise_deg']:.3f} deg"
            + (f" (mocap joints {ref['noise_mm']:.3f} mm / {ref['noise_deg']:.3f} deg)" if ref else "")
        )
    for name, row in res["files"].items():
        cells = ", ".join(
            f"{d} {100 * row[d]['invalid_share']:.1f} % / {row[d]['noise_mm']:.2f} mm / {row[d]['noise_deg']:.2f} deg"
            for d in DEVICES
        )
        print(f"  {name}: {row['frames']} frames; {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
