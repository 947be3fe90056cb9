# SPDX-License-Identifier: GPL-3.0-or-later
"""Synthetic-corruption study of the tracking plausibility checks.

Seven broken files are too few to judge thresholds, so every good recording in
``../shared/data/vr`` is cut into 10 s windows and each window is corrupted the ways real
exports go wrong: units x3, x100, x0.01; time x3 and /3; a mirrored axis (forward, as the
KM ``negative_coordinate_system`` files, and left-right); quaternions stored xyzw but read
wxyz; Euler angles rebuilt intrinsic instead of extrinsic, with the X/Z axes swapped, and
both. Corruptions are applied to the samples as stored (source axes and units), before the
reader's conversions. Prints, per corruption, the detection rate of its expected code and
any other suspect codes, and per code the false-alarm rate on the clean windows.

Usage: ``python scripts/validation_study.py [--window 10] [--markdown]``.
"""

from __future__ import annotations

import argparse
import copy
import sys
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kinest_core.io import read_raw  # noqa: E402
from kinest_core.io.device_poses import poses_from_raw  # noqa: E402
from kinest_core.io.raw import RawTracking  # noqa: E402
from kinest_core.rotations import euler_to_matrix, matrix_to_euler, matrix_to_quat, quat_to_matrix  # noqa: E402

VR = ROOT.parent / "shared" / "data" / "vr"
GOOD = (
    "km_liebers_labstudy21_bowling_fixed.csv",
    "km_boxrr_beatsaber23_fixed.csv",
    "km_boxrr_beatsaber23_fixed.bsor",
    "km_liebers_beatsaber23_fixed.csv",
    "km_moore_cross_domain23_fixed_1m5s_to_1m20s.csv",
    "km_who_is_alyx_fixed_cutout.csv",
    "mlt_examples_data.csv",
    "xror_sample1.bsor",
)
SUSPECT = ("UNITS_SUSPECT", "TIME_SCALE_SUSPECT", "HANDEDNESS_SUSPECT", "ROTATION_SUSPECT")


def _scale_pos(k: float) -> Callable[[RawTracking], None]:
    def f(r: RawTracking) -> None:
        r.positions = r.positions * k

    return f


def _scale_time(k: float) -> Callable[[RawTracking], None]:
    def f(r: RawTracking) -> None:
        r.times = r.times * k

    return f


def _mirror(axis: int) -> Callable[[RawTracking], None]:
    s = np.ones(3)
    s[axis] = -1.0
    sm = np.diag(s)

    def f(r: RawTracking) -> None:
        r.positions = r.positions * s
        ok = np.all(np.isfinite(r.quats), axis=-1) & (np.linalg.norm(np.nan_to_num(r.quats), axis=-1) > 0.5)
        q = r.quats.copy()
        q[ok] = matrix_to_quat(sm @ quat_to_matrix(r.quats[ok]) @ sm)
        r.quats = q

    return f


def _swap_order(r: RawTracking) -> None:
    r.quats = r.quats[..., [1, 2, 3, 0]]  # stored x, y, z, w but read as w, x, y, z


def _euler(rebuild: str) -> Callable[[RawTracking], None]:
    """Extrinsic-xyz angles of each rotation re-applied with another convention."""

    def f(r: RawTracking) -> None:
        ok = np.all(np.isfinite(r.quats), axis=-1) & (np.linalg.norm(np.nan_to_num(r.quats), axis=-1) > 0.5)
        ang = matrix_to_euler(quat_to_matrix(r.quats[ok]), "xyz")
        if rebuild == "intrinsic":
            m = euler_to_matrix(ang, "XYZ")
        elif rebuild == "axis_swap":
            m = euler_to_matrix(ang, "zyx")
        else:  # both: axis swap, then intrinsic
            m = euler_to_matrix(matrix_to_euler(euler_to_matrix(ang, "zyx"), "xyz"), "XYZ")
        q = r.quats.copy()
        q[ok] = matrix_to_quat(m)
        r.quats = q

    return f


CORRUPTIONS: dict[str, tuple[Callable[[RawTracking], None] | None, str | None]] = {
    "clean": (None, None),
    "units x3": (_scale_pos(3.0), "UNITS_SUSPECT"),
    "units x100": (_scale_pos(100.0), "UNITS_SUSPECT"),
    "units x0.01": (_scale_pos(0.01), "UNITS_SUSPECT"),
    "time x3 (slow)": (_scale_time(3.0), "TIME_SCALE_SUSPECT"),
    "time /3 (fast)": (_scale_time(1 / 3), "TIME_SCALE_SUSPECT"),
    "mirrored forward axis": (None, "HANDEDNESS_SUSPECT"),  # axis set per convention below
    "mirrored left-right axis": (None, "HANDEDNESS_SUSPECT"),
    "quaternion order swapped": (_swap_order, "ROTATION_SUSPECT"),
    "Euler intrinsic/extrinsic": (_euler("intrinsic"), "ROTATION_SUSPECT"),
    "Euler X/Z axes swapped": (_euler("axis_swap"), "ROTATION_SUSPECT"),
    "Euler both errors": (_euler("both"), "ROTATION_SUSPECT"),
}


def windows(raw: RawTracking, length: float) -> list[RawTracking]:
    t = raw.times - raw.times[0]
    out = []
    start = 0.0
    while start + 0.5 * length <= t[-1] or start == 0.0:
        m = (t >= start) & (t < start + length)
        if m.sum() >= 50:
            w = copy.copy(raw)
            w.times, w.positions, w.quats, w.valid = raw.times[m], raw.positions[m], raw.quats[m], raw.valid[m]
            w.info = dict(raw.info)
            out.append(w)
        start += length
        if start > t[-1]:
            break
    return out


def run(
    length: float, hints: bool = True, data: Path = VR
) -> tuple[dict[str, Counter[str]], dict[str, int], list[str]]:
    hits: dict[str, Counter[str]] = {name: Counter() for name in CORRUPTIONS}
    totals: dict[str, int] = dict.fromkeys(CORRUPTIONS, 0)
    notes: list[str] = []
    for fname in GOOD:
        raw = read_raw(str(data / fname))
        if not hints:  # judge from the motion alone: no documented units, no .bsor fps field
            raw.units = None
            raw.info.pop("fps_field_median", None)
        ws = windows(raw, length)
        notes.append(f"{fname}: {len(ws)} window(s)")
        # the source's forward and sideways axes: Y-up sources have forward along Z, sideways X
        for w in ws:
            for name, (fn, _code) in CORRUPTIONS.items():
                c = copy.copy(w)
                if name == "mirrored forward axis":
                    fn = _mirror(2)
                elif name == "mirrored left-right axis":
                    fn = _mirror(0)
                if fn is not None:
                    fn(c)
                try:
                    dev = poses_from_raw(c, fname)
                    got = {x.code for x in dev.warnings}
                except ValueError as exc:  # a refused file also counts as flagged
                    got = {"ERROR"}
                    notes.append(f"{fname} {name}: refused ({exc})")
                totals[name] += 1
                for code in got:
                    hits[name][code] += 1
    return hits, totals, notes


def table(hits: dict[str, Counter[str]], totals: dict[str, int]) -> str:
    lines = [
        "| Corruption | Windows | Expected code | Detected | Other suspect codes |",
        "|---|---:|---|---:|---|",
    ]
    for name, (_fn, code) in CORRUPTIONS.items():
        if code is None:
            continue
        n = totals[name]
        det = hits[name][code] / n if n else 0.0
        others = ", ".join(f"{c} {hits[name][c] / n:.0%}" for c in SUSPECT if c != code and hits[name][c])
        lines.append(f"| {name} | {n} | `{code}` | {det:.0%} | {others or '-'} |")
    n = totals["clean"]
    lines += ["", "| Code | False alarms on clean windows |", "|---|---:|"]
    for c in SUSPECT:
        lines.append(f"| `{c}` | {hits['clean'][c]}/{n} ({hits['clean'][c] / n:.0%}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=VR, help=f"folder of real recordings (default {VR})")
    ap.add_argument("--window", type=float, default=10.0, help="window length in seconds (default 10)")
    ap.add_argument("--verbose", action="store_true", help="list windows and refusals")
    ap.add_argument(
        "--no-format-hints",
        action="store_true",
        help="ignore the formats' documented units and the .bsor fps field (motion-only checks)",
    )
    args = ap.parse_args(argv)
    if not args.data.is_dir():
        print(f"{args.data} is not a folder; pass --data with a folder of real recordings", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore", message="Gimbal lock")
    hits, totals, notes = run(args.window, hints=not args.no_format_hints, data=args.data)
    print(table(hits, totals))
    if args.verbose:
        print()
        print("\n".join(notes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
