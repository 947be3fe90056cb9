# SPDX-License-Identifier: GPL-3.0-or-later
"""Long recordings for the benchmarks: a real ``.bsor`` replay looped to any length.

The bundled example (``examples/xror_sample1_cut.bsor``, 25 s of Beat Saber at about 91 Hz,
BSD-3-Clause) is played forwards, then backwards, then forwards again ... so positions and
rotations stay continuous at every seam (no teleport the importer would flag), and the
frame times keep the recording's own spacing. The result is a valid BSOR v1 file that the
add-on's importer reads like any replay.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from kinest_core.io.bsor import FRAME_BYTES, frames_section, parse_header

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "xror_sample1_cut.bsor"


def write_looped_bsor(dst: str | Path, seconds: float, src: str | Path = EXAMPLE) -> int:
    """Write ``src`` ping-pong looped to ``seconds`` of recording into ``dst``; returns the frame count."""
    data = Path(src).read_bytes()
    header = parse_header(str(src), data)
    count, first = frames_section(str(src), data, header)
    frames = np.frombuffer(data, dtype=np.uint8, count=count * FRAME_BYTES, offset=first).reshape(count, FRAME_BYTES)
    times = frames[:, :4].copy().view("<f4")[:, 0].astype(np.float64)
    dt = float(np.median(np.diff(times)))
    need = int(np.ceil(seconds / dt)) + 1
    cycle = np.concatenate([np.arange(count), np.arange(count - 2, 0, -1)])  # forwards, then back (no repeats)
    idx = np.resize(cycle, need)
    out = frames[idx].copy()
    # Times: the recording's own intervals in playing order (backwards playback reuses them mirrored).
    steps = np.abs(np.diff(times[idx]))
    steps = np.where(steps > 0, steps, dt)
    new_t = times[0] + np.concatenate([[0.0], np.cumsum(steps)])
    out[:, :4] = new_t.astype("<f4").view(np.uint8).reshape(-1, 4)
    blob = bytearray(data[: header.info_end])
    blob += bytes([1]) + struct.pack("<i", int(need))
    blob += out.tobytes()
    for section in (2, 3, 4, 5):  # notes, walls, heights, pauses: empty
        blob += bytes([section]) + struct.pack("<i", 0)
    Path(dst).write_bytes(bytes(blob))
    return need
