# SPDX-License-Identifier: GPL-3.0-or-later
"""Make the bundled example: a 25 s cut of xror_sample1.bsor with the player's name and id removed.

Usage: ``python scripts/make_example.py [SRC] [DST] [--start 60] [--length 25]``. Defaults read
``../shared/data/vr/xror_sample1.bsor`` (BSD-3-Clause, MetaGuard/xror) and write
``examples/xror_sample1_cut.bsor``. The output is a valid BSOR v1 file: the info block with
``player_id`` and ``player_name`` set to empty strings, the frames whose time lies in
[start, start + length), and empty notes, walls, heights and pauses sections. Frame times
are kept as recorded. Also used by the tests to cut fixtures (``cut_bsor``).
"""

from __future__ import annotations

import argparse
import struct
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kinest_core.io.bsor import FRAME_BYTES, frames_section, parse_header  # noqa: E402

ANONYMISE = ("player_id", "player_name")


def cut_bsor(
    src: str, dst: str, *, start_s: float | None = None, length_s: float | None = None, frames: int | None = None
) -> int:
    """Write a cut of ``src`` to ``dst``; returns the number of frames written.

    Either a time window (``start_s``, ``length_s``) or the first ``frames`` frames.
    """
    data = Path(src).read_bytes()
    header = parse_header(src, data)
    count, first = frames_section(src, data, header)
    times = np.frombuffer(data, dtype="<f4", count=count * (FRAME_BYTES // 4), offset=first)[:: FRAME_BYTES // 4]
    if frames is not None:
        idx = np.arange(min(frames, count))
    else:
        lo = float(start_s or 0.0)
        hi = lo + float(length_s if length_s is not None else 1e9)
        idx = np.flatnonzero((times >= lo) & (times < hi))
    if idx.size == 0:
        raise ValueError(f"{src}: no frames in the requested window")
    out = bytearray(data[:6])
    pos = 6
    for name, (s, e) in header.field_spans.items():
        out += data[pos:s]
        if name in ANONYMISE:
            out += struct.pack("<i", 0)
        else:
            out += data[s:e]
        pos = e
    out += data[pos : header.info_end]
    out += bytes([1]) + struct.pack("<i", int(idx.size))
    a, b = int(idx[0]), int(idx[-1]) + 1
    out += data[first + a * FRAME_BYTES : first + b * FRAME_BYTES]
    for section in (2, 3, 4, 5):  # notes, walls, heights, pauses: empty
        out += bytes([section]) + struct.pack("<i", 0)
    Path(dst).write_bytes(bytes(out))
    return int(idx.size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", nargs="?", default=str(ROOT.parent / "shared" / "data" / "vr" / "xror_sample1.bsor"))
    ap.add_argument("dst", nargs="?", default=str(ROOT / "examples" / "xror_sample1_cut.bsor"))
    ap.add_argument("--start", type=float, default=60.0, help="first second to keep (default 60)")
    ap.add_argument("--length", type=float, default=25.0, help="seconds to keep (default 25)")
    args = ap.parse_args(argv)
    n = cut_bsor(args.src, args.dst, start_s=args.start, length_s=args.length)
    print(f"wrote {args.dst}: {n} frames from {args.start:g} s to {args.start + args.length:g} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
