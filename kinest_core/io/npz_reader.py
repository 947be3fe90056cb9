# SPDX-License-Identifier: GPL-3.0-or-later
"""Tracking ``.npz`` (KineST joint poses, as ``TrackingSequence.save_npz`` writes) -> :class:`RawTracking`.

Each array's ``.npy`` header is read first and its shape, type and size checked, so a small
compressed file that declares millions of frames, an object (pickle) array or a scalar where
the times should be is refused before anything is unpacked. The arrays then go through the
same time, quaternion and plausibility checks as every other format (``device_poses.poses_from_raw``).
"""

from __future__ import annotations

import zipfile
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.errors import TrackingFileError
from kinest_core.io.files import MAX_FILE_BYTES, check_file
from kinest_core.io.raw import MAX_ABS_COORD, MAX_SAMPLES, RawTracking
from kinest_core.rotations import matrix_to_quat

DEVICE_ARRAYS: tuple[str, str, str] = ("head", "left_wrist", "right_wrist")
#: Most bytes the arrays may unpack to (about 5 hours at 72 Hz).
MAX_ARRAY_BYTES = MAX_FILE_BYTES
#: Real tracking floats compress 1.5-3 times; above this ratio (on more than ``RATIO_FREE_BYTES``)
#: the file is not tracking data but a decompression bomb or a synthetic constant.
MAX_COMPRESSION_RATIO = 50.0
RATIO_FREE_BYTES = 64 * 1024 * 1024
#: Rate limits for the optional ``fps`` scalar (the times decide the rate; fps must agree with them).
FPS_RANGE = (1.0, 1000.0)
_HINT = "write it with TrackingSequence.save_npz (times (F,), head/left_wrist/right_wrist (F, 4, 4), valid (F, 3), fps)"


def _npy_header(fh: IO[bytes]) -> tuple[tuple[int, ...], np.dtype[Any]]:
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f".npy format version {version} is not supported")
    return tuple(int(x) for x in shape), np.dtype(dtype)


def _headers(path: str, zf: zipfile.ZipFile) -> dict[str, tuple[tuple[int, ...], np.dtype[Any], int]]:
    """name -> (shape, dtype, compressed bytes) for the arrays we use; checks kinds and sizes."""
    out: dict[str, tuple[tuple[int, ...], np.dtype[Any], int]] = {}
    members = {zi.filename: zi for zi in zf.infolist()}
    for name in (*DEVICE_ARRAYS, "times", "valid", "fps"):
        zi = members.get(name + ".npy")
        if zi is None:
            continue
        try:
            with zf.open(zi) as fh:
                shape, dtype = _npy_header(fh)
        except Exception as exc:  # zipfile, zlib and numpy each raise their own kinds for damaged data
            raise TrackingFileError(path, f"array {name!r} is damaged ({exc})", hint=_HINT) from exc
        if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
            raise TrackingFileError(
                path,
                f"array {name!r} has type {dtype} (objects or records); only plain numbers are read",
                hint=_HINT,
            )
        out[name] = (shape, dtype, int(zi.compress_size))
    return out


def _check_shapes(path: str, heads: dict[str, tuple[tuple[int, ...], np.dtype[Any], int]]) -> int:
    missing = [k for k in ("times", *DEVICE_ARRAYS) if k not in heads]
    if missing:
        raise TrackingFileError(path, f"lacks array(s) {', '.join(missing)}", hint=_HINT)
    tshape = heads["times"][0]
    if len(tshape) != 1:
        raise TrackingFileError(
            path, f"'times' has shape {tshape}; it must be one time in seconds per frame, shape (F,)", hint=_HINT
        )
    n = tshape[0]
    if n < 2:
        raise TrackingFileError(path, f"'times' holds {n} frame(s)", hint="a take needs at least two frames")
    if n > MAX_SAMPLES:
        raise TrackingFileError(path, f"declares {n} frames, above the {MAX_SAMPLES} limit", hint="split the take")
    for name in DEVICE_ARRAYS:
        if heads[name][0] != (n, 4, 4):
            raise TrackingFileError(
                path, f"'{name}' has shape {heads[name][0]}, expected ({n}, 4, 4) to match 'times'", hint=_HINT
            )
    if "valid" in heads and heads["valid"][0] != (n, 3):
        raise TrackingFileError(path, f"'valid' has shape {heads['valid'][0]}, expected ({n}, 3)", hint=_HINT)
    if "fps" in heads and heads["fps"][0] not in ((), (1,)):
        raise TrackingFileError(
            path,
            f"'fps' has shape {heads['fps'][0]}; it must be one number for the whole take (the rate of 'times')",
            hint=_HINT,
        )
    unpacked = sum(int(np.prod(s)) * d.itemsize for s, d, _c in heads.values())
    packed = sum(c for _s, _d, c in heads.values())
    if unpacked > MAX_ARRAY_BYTES:
        raise TrackingFileError(
            path,
            f"declares {n} frames, {unpacked / 1e6:.0f} MB of arrays, above the {MAX_ARRAY_BYTES / 1e6:.0f} MB limit",
            hint="split the take",
        )
    if unpacked > RATIO_FREE_BYTES and unpacked > MAX_COMPRESSION_RATIO * max(packed, 1):
        raise TrackingFileError(
            path,
            f"declares {unpacked / 1e6:.0f} MB of arrays in {packed / 1e6:.1f} MB: tracking data does not compress "
            f"{unpacked / max(packed, 1):.0f} times",
            hint="the file is damaged or not a tracking recording",
        )
    return n


def _read(path: str, zf: zipfile.ZipFile, name: str) -> NDArray[Any]:
    try:
        with zf.open(name + ".npy") as fh:
            return np.asarray(np.lib.format.read_array(fh, allow_pickle=False))
    except Exception as exc:  # zipfile, zlib and numpy each raise their own kinds for damaged data
        raise TrackingFileError(path, f"array {name!r} is damaged ({exc})", hint=_HINT) from exc


def read_npz_tracking(path: str) -> RawTracking:
    """Joint world matrices (Z-up, metres) from a tracking ``.npz`` as :class:`RawTracking` (``joints``)."""
    check_file(path)
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # zipfile raises several kinds for a damaged or foreign file
        raise TrackingFileError(path, f"is not a readable .npz (zip) file ({exc})", hint=_HINT) from exc
    with zf:
        heads = _headers(path, zf)
        n = _check_shapes(path, heads)
        times = _read(path, zf, "times").astype(np.float64)
        mats = np.stack([_read(path, zf, k).astype(np.float64) for k in DEVICE_ARRAYS], axis=1)  # (n, 3, 4, 4)
        valid = _read(path, zf, "valid").astype(bool) if "valid" in heads else np.ones((n, 3), dtype=bool)
        fps = float(_read(path, zf, "fps").reshape(-1)[0]) if "fps" in heads else None
    if fps is not None and not (np.isfinite(fps) and FPS_RANGE[0] <= fps <= FPS_RANGE[1]):
        raise TrackingFileError(
            path,
            f"'fps' is {fps:g}, not a frame rate",
            hint=f"it must be {FPS_RANGE[0]:g}-{FPS_RANGE[1]:g}, or leave it out",
        )
    finite = np.isfinite(mats).reshape(n, 3, -1).all(axis=-1) & (np.abs(mats) <= MAX_ABS_COORD).reshape(n, 3, -1).all(
        axis=-1
    )
    bad = valid & ~finite
    if bad.any():
        f, d = (int(x) for x in np.argwhere(bad)[0])
        raise TrackingFileError(
            path,
            f"'{DEVICE_ARRAYS[d]}' holds NaN, inf or absurd values at a valid frame",
            where=f"frame {f}",
            hint="fill it, or mark it False in 'valid'",
        )
    valid = valid & finite
    safe = np.where(valid[..., None, None], mats, np.eye(4))
    r = safe[..., :3, :3]
    ortho = np.abs(r @ np.swapaxes(r, -1, -2) - np.eye(3)).max(axis=(-1, -2)) < 1e-3
    proper = np.linalg.det(r) > 0
    bottom = np.abs(safe[..., 3, :] - np.array([0.0, 0.0, 0.0, 1.0])).max(axis=-1) < 1e-6
    wrong = valid & ~(ortho & proper & bottom)
    if wrong.any():
        f, d = (int(x) for x in np.argwhere(wrong)[0])
        raise TrackingFileError(
            path,
            f"'{DEVICE_ARRAYS[d]}' is not a rotation + translation (4x4 with an orthonormal, right-handed 3x3 "
            "and a last row 0 0 0 1)",
            where=f"frame {f}",
            hint="write world matrices without scale or shear",
        )
    quats = matrix_to_quat(r)
    positions = safe[..., :3, 3].copy()
    positions[~valid] = np.nan
    quats[~valid] = np.nan
    info: dict[str, Any] = {
        "quat_order": "n/a (matrices)",
        "npz_fps": fps,
    }
    if fps is not None:
        info["fps_field_median"] = fps
    return RawTracking(
        times=times,
        positions=positions,
        quats=quats,
        valid=valid,
        format="npz",
        convention="blender",
        units="m",
        joints=True,
        info=info,
    )
