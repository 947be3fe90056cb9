# SPDX-License-Identifier: GPL-3.0-or-later
"""Shrink a motion pack (``kinest_core.training.mocap_library --pack``) for a trip to a GPU machine, and back.

    python scripts/pack_codec.py encode train.pack.npz train.small.npz   # here (~30 s)
    python scripts/pack_codec.py decode train.small.npz train.pack.npz   # there (~3 s)

The device tool carries at most 64 MiB of working tree; the 63-minute training pack is 35 MB
and the shipped checkpoint already takes 43. Quaternions (int16, 1/32767 steps) are rounded to
1/8192 steps (at most 0.01 degrees), differenced along time, split into byte planes and xz-coded;
the root translation is stored exactly: 35 MB -> 17 MB.
"""

from __future__ import annotations

import io
import lzma
import sys

import numpy as np


def encode(src: str, dst: str) -> None:
    z = np.load(src)
    rest = {k: z[k] for k in z.files if k not in ("quats", "root")}
    quats = z["quats"]
    coarse = np.round(quats.astype(np.int32) / 4).astype(np.int32)
    deltas = np.diff(coarse, axis=0, prepend=0).astype(np.int16).view(np.uint8).reshape(-1, 2)
    root = z["root"].astype(np.float32).view(np.uint8).reshape(-1, 4)
    planes = [deltas[:, i] for i in range(2)] + [root[:, i] for i in range(4)]
    buf = io.BytesIO()
    np.savez(buf, **rest)
    packed = {
        f"p{i}": np.frombuffer(lzma.compress(np.ascontiguousarray(p).tobytes()), np.uint8) for i, p in enumerate(planes)
    }
    np.savez(dst, meta=np.frombuffer(buf.getvalue(), np.uint8), shape=np.array(quats.shape), **packed)


def decode(src: str, dst: str) -> None:
    z = np.load(src)
    shape = tuple(int(s) for s in z["shape"])
    planes = [np.frombuffer(lzma.decompress(z[f"p{i}"].tobytes()), np.uint8) for i in range(6)]
    deltas = np.stack(planes[:2], axis=1).copy().view(np.int16).reshape(shape)
    coarse = np.cumsum(deltas.astype(np.int64), axis=0).astype(np.int16).astype(np.int32)  # wraps back exactly
    quats = np.clip(coarse * 4, -32767, 32767).astype(np.int16)
    root = np.stack(planes[2:], axis=1).copy().view(np.float32).reshape(shape[0], 3)
    rest = dict(np.load(io.BytesIO(z["meta"].tobytes())))
    np.savez_compressed(dst, quats=quats, root=root, **rest)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("encode", "decode"):
        raise SystemExit(__doc__)
    {"encode": encode, "decode": decode}[sys.argv[1]](sys.argv[2], sys.argv[3])
