# SPDX-License-Identifier: GPL-3.0-or-later
"""Beat Saber replays in BeatLeader's open ``.bsor`` format (v1): header strings and pose frames.

Layout (little-endian): int32 magic ``0x442d3d69``, version byte, section byte 0 and the info
block (strings are int32 length + UTF-8), then section byte 1, int32 frame count and frames of
``float time, int32 fps, 3 x (pos xyz, quat xyzw)`` for head, left and right hand (92 bytes).
Poses are Unity left-handed, Y up, metres. Later sections (notes, walls...) are not needed.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from kinest_core.io.errors import TrackingFileError
from kinest_core.io.files import read_bytes
from kinest_core.io.raw import MAX_SAMPLES, RawTracking

BSOR_MAGIC = 0x442D3D69
FRAME_BYTES = 92
#: Info-block fields in file order: (name, kind) with kind in str, int, float, bool.
INFO_FIELDS: tuple[tuple[str, str], ...] = (
    ("mod_version", "str"),
    ("game_version", "str"),
    ("timestamp", "str"),
    ("player_id", "str"),
    ("player_name", "str"),
    ("platform", "str"),
    ("tracking_system", "str"),
    ("hmd", "str"),
    ("controller", "str"),
    ("hash", "str"),
    ("song_name", "str"),
    ("mapper", "str"),
    ("difficulty", "str"),
    ("score", "int"),
    ("mode", "str"),
    ("environment", "str"),
    ("modifiers", "str"),
    ("jump_distance", "float"),
    ("left_handed", "bool"),
    ("height", "float"),
    ("start_time", "float"),
    ("fail_time", "float"),
    ("speed", "float"),
)
_MAX_STRING = 1 << 20


@dataclass
class BsorHeader:
    """The parsed info block plus the byte offsets that locate it (for rewriting tools)."""

    version: int
    info: dict[str, Any]
    info_end: int  # offset of the frames section byte
    field_spans: dict[str, tuple[int, int]]  # field -> [start, end) bytes, length prefix included


def _need(path: str, data: bytes, pos: int, n: int, what: str) -> None:
    if pos + n > len(data):
        raise TrackingFileError(
            path,
            f"the file ends inside {what} (byte {pos} of {len(data)}): it is truncated or not a .bsor replay",
            hint="download or export the replay again",
        )


def parse_header(path: str, data: bytes) -> BsorHeader:
    """Magic, version and info block; raises :class:`TrackingFileError` on anything malformed."""
    _need(path, data, 0, 6, "the header")
    (magic,) = struct.unpack_from("<i", data, 0)
    if magic != BSOR_MAGIC:
        raise TrackingFileError(
            path, "does not start with the .bsor magic number 0x442d3d69", hint="pass a BeatLeader .bsor replay"
        )
    version = data[4]
    if version != 1:
        raise TrackingFileError(path, f"is .bsor version {version}; only version 1 is known")
    if data[5] != 0:
        raise TrackingFileError(path, f"section byte {data[5]} where the info block (0) should start", where="byte 5")
    pos = 6
    info: dict[str, Any] = {}
    spans: dict[str, tuple[int, int]] = {}
    for name, kind in INFO_FIELDS:
        start = pos
        if kind == "str":
            _need(path, data, pos, 4, f"header field {name!r}")
            (n,) = struct.unpack_from("<i", data, pos)
            pos += 4
            if n < 0 or n > _MAX_STRING:
                raise TrackingFileError(
                    path, f"header field {name!r} claims {n} bytes", where=f"byte {start}", hint="the file is damaged"
                )
            _need(path, data, pos, n, f"header field {name!r}")
            info[name] = data[pos : pos + n].decode("utf-8", errors="replace")
            pos += n
        elif kind == "int":
            _need(path, data, pos, 4, f"header field {name!r}")
            info[name] = struct.unpack_from("<i", data, pos)[0]
            pos += 4
        elif kind == "float":
            _need(path, data, pos, 4, f"header field {name!r}")
            info[name] = struct.unpack_from("<f", data, pos)[0]
            pos += 4
        else:
            _need(path, data, pos, 1, f"header field {name!r}")
            info[name] = bool(data[pos])
            pos += 1
        spans[name] = (start, pos)
    return BsorHeader(version=version, info=info, info_end=pos, field_spans=spans)


def frames_section(path: str, data: bytes, header: BsorHeader) -> tuple[int, int]:
    """(frame count, offset of the first frame)."""
    pos = header.info_end
    _need(path, data, pos, 5, "the frames section")
    if data[pos] != 1:
        raise TrackingFileError(
            path, f"section byte {data[pos]} where the frames section (1) should be", where=f"byte {pos}"
        )
    (count,) = struct.unpack_from("<i", data, pos + 1)
    if count <= 0 or count > MAX_SAMPLES:
        raise TrackingFileError(path, f"frame count {count} is not plausible", where=f"byte {pos + 1}")
    start = pos + 5
    if start + count * FRAME_BYTES > len(data):
        have = (len(data) - start) // FRAME_BYTES
        raise TrackingFileError(
            path,
            f"the header promises {count} frames but the file ends after {have}: it is truncated",
            where=f"frame {have}",
            hint="download or export the replay again",
        )
    return count, start


def read_bsor(path: str) -> RawTracking:
    """Read a ``.bsor`` replay's pose frames (Unity axes, metres) into :class:`RawTracking`."""
    data = read_bytes(path)
    header = parse_header(path, data)
    count, start = frames_section(path, data, header)
    dt = np.dtype([("time", "<f4"), ("fps", "<i4"), ("pose", "<f4", (3, 7))])
    frames = np.frombuffer(data, dtype=dt, count=count, offset=start)
    times = frames["time"].astype(np.float64)
    pose = frames["pose"].astype(np.float64)
    positions = pose[:, :, 0:3].copy()
    quats = pose[:, :, [6, 3, 4, 5]].copy()  # xyzw -> wxyz
    if not np.all(np.isfinite(times)):
        bad = int(np.argmax(~np.isfinite(times)))
        raise TrackingFileError(path, "frame time is NaN or inf", where=f"frame {bad}", hint="the replay is damaged")
    finite = np.all(np.isfinite(pose), axis=-1)
    norms = np.linalg.norm(np.where(np.isfinite(quats), quats, 0.0), axis=-1)
    valid = finite & (norms > 0.5) & (norms < 1.5)
    big = finite & (np.max(np.abs(np.where(np.isfinite(positions), positions, 0.0)), axis=-1) > 1.0e4)
    if big.any():
        f = int(np.argmax(big.any(axis=1)))
        raise TrackingFileError(
            path, "a position is over 10 km from the origin", where=f"frame {f}", hint="the replay is damaged"
        )
    hdr = dict(header.info)
    hdr.pop("player_id", None)
    hdr.pop("player_name", None)
    fps_field = frames["fps"]
    info: dict[str, Any] = {
        "bsor_version": header.version,
        "bsor_header": {k: v for k, v in hdr.items() if isinstance(v, (str, int, float, bool))},
        "hmd": header.info.get("hmd", ""),
        "controller": header.info.get("controller", ""),
        "tracking_system": header.info.get("tracking_system", ""),
        "fps_field_median": float(np.median(fps_field)) if count else 0.0,
        "zero_frames": int((~valid).all(axis=1).sum()),
    }
    return RawTracking(
        times=times,
        positions=positions,
        quats=quats,
        valid=valid,
        format="bsor",
        convention="unity",
        units="m",
        info=info,
    )
