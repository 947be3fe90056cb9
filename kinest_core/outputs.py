# SPDX-License-Identifier: GPL-3.0-or-later
"""Writing results safely: checked before the work, written beside the target and renamed into place.

- :func:`check_output` runs before any long work: the target is not an input, not a folder,
  and its folder exists (or is created) and takes a new file.
- :func:`staged_outputs` hands out temporary paths beside the targets (same folder, hidden name,
  same suffix) and renames them all into place only when every one was written; on any failure
  they are all removed and an ``OSError`` (disk full, permission) becomes an
  :class:`~kinest_core.errors.OutputFileError` naming the target. A reader never sees a
  half-written file, and an old file of the same name survives a failed run.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from kinest_core.errors import OutputFileError

#: Temporary files carry this mark in their (hidden) names: ``.NAME.<random>.part.SUFFIX``.
PART_MARK = ".part"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _os_problem(exc: OSError) -> tuple[str, str]:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return f"cannot write: {exc.strerror or exc} (the disk or quota is full)", "free some space or write elsewhere"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"cannot write: {exc.strerror or exc}", "choose a folder you can write to"
    return f"cannot write: {exc.strerror or exc}", "check the output path"


def check_output(path: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str]] = ()) -> Path:
    """Refuse a target that is an input, a folder, or in a folder that cannot take a new file.

    Creates missing parent folders (as writing would) and probes the folder with an empty
    temporary file, so a read-only or missing location is found before the work runs.
    """
    target = Path(os.fspath(path))
    for src in inputs:
        if _same_file(target, Path(os.fspath(src))):
            raise OutputFileError(
                str(target), "is the input file; writing there would destroy it", hint="choose another output name"
            )
    if target.is_dir():
        raise OutputFileError(str(target), "is a folder", hint="give a file name such as take.npz")
    if target.exists() and not target.is_file():
        raise OutputFileError(str(target), "exists and is not a regular file", hint="choose another output name")
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        hint = _os_problem(exc)[1]
        raise OutputFileError(str(target), f"its folder cannot be created ({exc.strerror or exc})", hint=hint) from exc
    try:
        probe = _new_temp(target)
        os.unlink(probe)
    except OSError as exc:
        problem, hint = _os_problem(exc)
        raise OutputFileError(str(target), problem, hint=hint) from exc
    return target


def _new_temp(target: Path) -> Path:
    """Create an empty, hidden file beside ``target`` with the same suffix (``np.savez`` keeps it)."""
    for _ in range(100):
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{PART_MARK}{target.suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
        except FileExistsError:
            continue
        os.close(fd)
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temporary name", str(target))


@contextlib.contextmanager
def staged_outputs(*paths: str | os.PathLike[str]) -> Iterator[list[Path]]:
    """Temporary paths for ``paths``; all renamed into place on success, all removed on failure."""
    targets = [Path(os.fspath(p)) for p in paths]
    temps: list[Path] = []
    current = targets[0] if targets else Path()
    try:
        for t in targets:
            current = t
            temps.append(_new_temp(t))
        yield list(temps)
        for t, tmp in zip(targets, temps, strict=True):
            current = t
            os.replace(tmp, t)
    except OutputFileError as exc:  # from a writer given one of our temporary paths: name the target
        _remove(temps)
        named = {str(tmp): str(t) for t, tmp in zip(targets, temps, strict=False)}
        if exc.path not in named:
            raise
        raise OutputFileError(named[exc.path], exc.problem, where=exc.where, hint=exc.hint) from exc
    except OSError as exc:
        _remove(temps)
        problem, hint = _os_problem(exc)
        raise OutputFileError(str(current), problem, hint=hint) from exc
    except BaseException:
        _remove(temps)
        raise


def _remove(paths: Iterable[Path]) -> None:
    for p in paths:
        with contextlib.suppress(OSError):
            os.unlink(p)


def write_npz(path: str | os.PathLike[str], arrays: Mapping[str, Any], compressed: bool = True) -> None:
    """The arrays as an ``.npz`` (what ``np.savez[_compressed]`` writes), via a temporary file renamed into place.

    Written with our own ``ZipFile`` so a failed write closes everything at once (``np.savez``
    leaves its zip open to complain later); object arrays (pickles) are refused.
    """
    target = os.fspath(path)
    if not target.endswith(".npz"):
        target += ".npz"  # as np.savez names it
    data = {name: np.asanyarray(a) for name, a in arrays.items()}
    for name, a in data.items():
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} holds Python objects; only numbers and text are written")
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with staged_outputs(target) as (tmp,), zipfile.ZipFile(tmp, "w", compression=method, allowZip64=True) as zf:
        for name, a in data.items():
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, a, allow_pickle=False)
