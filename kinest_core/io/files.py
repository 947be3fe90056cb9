# SPDX-License-Identifier: GPL-3.0-or-later
"""Opening a user's file: what it is (file, folder, pipe, device, broken link) and bounds checked before reading.

Every reader goes through :func:`check_file` first, so a FIFO, ``/dev/zero`` or a symlink loop
gets an accurate message instead of blocking or reading without end, and through
:func:`read_text_bytes` for the text formats, which refuses a line longer than
:data:`MAX_LINE_BYTES` after scanning the file in small chunks (a 30 MB single-line file is
refused in milliseconds, holding one chunk in memory).
"""

from __future__ import annotations

import errno
import os
import stat
import zlib

import numpy as np

from kinest_core.errors import TrackingFileError

#: Files above this size are refused before reading (no real take comes near it).
MAX_FILE_BYTES = 512 * 1024 * 1024
#: Longest line of a text format. A CSV row of head + hands with a few extra columns is well under
#: 1 kB and a BVH motion row of a 100-joint skeleton about 6 kB; 1 MB leaves room for anything real.
MAX_LINE_BYTES = 1 << 20
_CHUNK = 1 << 20
#: gzip: at most this many times the packed size is unpacked (beyond ``GZIP_FREE_BYTES``).
GZIP_MAX_RATIO = 30
GZIP_FREE_BYTES = 64 * 1024 * 1024


def check_file(path: str, limit: int = MAX_FILE_BYTES) -> int:
    """The size of a regular, non-empty file below ``limit``; a :class:`TrackingFileError` for anything else."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise TrackingFileError(path, _stat_problem(path, exc), hint=_stat_hint(exc)) from exc
    mode = st.st_mode
    if stat.S_ISDIR(mode):
        raise TrackingFileError(path, "is a folder, not a tracking file", hint="pass one recording file")
    if stat.S_ISFIFO(mode):
        raise TrackingFileError(
            path, "is a named pipe (FIFO), not a file", hint="save the stream to a file and pass that file"
        )
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        target = f" ({os.path.realpath(path)})" if os.path.islink(path) else ""
        raise TrackingFileError(path, f"is a device{target}, not a recording file", hint="pass a recording file")
    if stat.S_ISSOCK(mode) or not stat.S_ISREG(mode):
        raise TrackingFileError(path, "is not a regular file", hint="pass a recording file")
    if st.st_size == 0:
        raise TrackingFileError(path, "the file is empty (0 bytes)", hint="re-export the recording")
    if st.st_size > limit:
        raise TrackingFileError(
            path,
            f"the file is {st.st_size / 1e6:.0f} MB, above the {limit / 1e6:.0f} MB limit",
            hint="split the recording into shorter takes",
        )
    return int(st.st_size)


def _stat_problem(path: str, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "cannot open: it is a symbolic link that loops (it points back to itself through other links)"
    if exc.errno == errno.ENOENT:
        if os.path.islink(path):
            return f"cannot open: it is a symbolic link to {os.readlink(path)!r}, which does not exist"
        return "cannot open: no such file"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot open: permission denied"
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is too long"
    if exc.errno == errno.ENOTDIR:
        return "a part of the path is a file, not a folder"
    return f"cannot open ({exc.strerror or exc})"


def _stat_hint(exc: OSError) -> str:
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "check the file's permissions"
    if exc.errno == errno.ELOOP:
        return "fix the link or pass the file itself"
    return "check the path"


def read_bytes(path: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """The whole (checked) file; the size is checked again while reading (it may grow meanwhile)."""
    size = check_file(path, limit)
    try:
        with open(path, "rb") as fh:
            data = fh.read(size + 1)  # not limit + 1: that would reserve the whole limit up front
            if len(data) > size:
                data += fh.read(limit + 1 - len(data))
    except OSError as exc:
        raise TrackingFileError(path, _stat_problem(path, exc), hint=_stat_hint(exc)) from exc
    if len(data) > limit:
        raise TrackingFileError(path, f"the file grew above the {limit / 1e6:.0f} MB limit while being read")
    if not data:
        raise TrackingFileError(path, "the file is empty (0 bytes)", hint="re-export the recording")
    return data


def longest_line(data: bytes | memoryview, start: int = 0) -> tuple[int, int]:
    """(length in bytes, 1-based line number) of the longest line; ``\\n`` and ``\\r`` both end a line."""
    buf = np.frombuffer(data, dtype=np.uint8)
    best, best_line, line_no, last_end = 0, 1, 0, -1
    for a in range(start, buf.shape[0], _CHUNK):
        chunk = buf[a : a + _CHUNK]
        ends = np.flatnonzero((chunk == 10) | (chunk == 13)) + a
        if ends.size:
            gaps = np.diff(ends, prepend=last_end) - 1
            k = int(np.argmax(gaps))
            if gaps[k] > best:
                best, best_line = int(gaps[k]), line_no + k + 1
            line_no += int(ends.size)
            last_end = int(ends[-1])
    tail = buf.shape[0] - last_end - 1
    if tail > best:
        best, best_line = int(tail), line_no + 1
    return best, best_line


def check_lines(path: str, data: bytes, max_line: int = MAX_LINE_BYTES) -> None:
    """Refuse a text whose longest line exceeds ``max_line`` bytes, naming that line."""
    length, line = longest_line(data)
    if length > max_line:
        raise TrackingFileError(
            path,
            f"a line of {length / 1e6:.1f} MB, above the {max_line / 1e6:.0f} MB a line of tracking text can need",
            where=f"line {line}",
            hint="the file is not CSV/BVH text or lost its line breaks; re-export it",
        )


def read_text_bytes(path: str, limit: int = MAX_FILE_BYTES, max_line: int = MAX_LINE_BYTES) -> bytes:
    """A text file's bytes (gzip unpacked, to at most ``limit`` bytes) with every line at most ``max_line``."""
    data = read_bytes(path, limit)
    if data[:2] == b"\x1f\x8b":
        data = _gunzip(path, data, limit)
    check_lines(path, data, max_line)
    return data


def _gunzip(path: str, data: bytes, limit: int) -> bytes:
    """Unpack gzip in pieces, refusing output beyond ``limit`` or ``GZIP_MAX_RATIO`` times the input.

    Text tracking compresses 5-10 times; a small file that unpacks to far more is a bomb, found
    after a bounded amount of output.
    """
    cap = min(limit, max(GZIP_FREE_BYTES, GZIP_MAX_RATIO * len(data)))
    parts: list[bytes] = []
    total = 0
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        rest = data
        while not d.eof:
            piece = d.decompress(rest, _CHUNK * 4)
            rest = d.unconsumed_tail
            if not piece and not rest:
                break
            total += len(piece)
            if total > cap:
                raise TrackingFileError(
                    path,
                    f"unpacks to more than {cap / 1e6:.0f} MB from {len(data) / 1e6:.1f} MB",
                    hint="the file is damaged or far too long; split the recording into shorter takes",
                )
            parts.append(piece)
        if not d.eof:
            raise EOFError("the compressed data ends early")
    except (zlib.error, EOFError) as exc:
        raise TrackingFileError(
            path, f"gzip data is damaged ({exc})", hint="re-export or re-download the file"
        ) from exc
    return b"".join(parts)
