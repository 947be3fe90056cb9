# SPDX-License-Identifier: GPL-3.0-or-later
"""The error types users see: one per layer, each a one-line message naming the file, the place and the fix.

- :class:`TrackingFileError`: input that cannot be read (tracking in any format or in memory, a motion ``.npz``)
- :class:`CheckpointError`: a model checkpoint that cannot be loaded
- :class:`OutputFileError`: a result that cannot be written where asked
- :class:`ReconstructionError`: the network gave no usable motion (non-finite values)

All derive from :class:`KinestError`, a ``ValueError``, so callers that report ``ValueError`` as a
user mistake keep working. Anything else reaching the command line or the worker is a bug:
:func:`unexpected_message` turns it into one line with a bug-report hint (``KINEST_DEBUG=1``
shows the traceback).
"""

from __future__ import annotations

import os

from kinest_core.fixes import Fix, Spelling, python_spelling, render_hint

#: Set to 1 to get tracebacks instead of one-line messages for unexpected errors.
DEBUG_ENV = "KINEST_DEBUG"


class KinestError(ValueError):
    """A problem the user can act on: ``path, where: problem; hint``.

    ``hint`` may name reader options as ``{option}`` fields that ``fixes`` fill in, so that each
    interface shows them in its own spelling (:meth:`text`; ``str()`` is the Python spelling).
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        where: str | None = None,
        hint: str | None = None,
        fixes: tuple[Fix, ...] = (),
    ) -> None:
        self.path = str(path)
        self.where = where
        self.problem = problem
        self.hint = hint
        self.fixes = tuple(fixes)
        super().__init__(self.text())

    def text(self, spell: Spelling = python_spelling) -> str:
        """The whole message on one line, with the hint's options in ``spell``'s words."""
        text = self.path
        if self.where:
            text += f", {self.where}"
        text += f": {self.problem}"
        if self.hint:
            text += f"; {render_hint(self.hint, self.fixes, spell) if self.fixes else self.hint}"
        return " ".join(text.split())


class TrackingFileError(KinestError):
    """Unreadable input data (a tracking file or arrays, a motion ``.npz``).

    The message names the file, where (line or frame), what and what to do.
    """


class CheckpointError(KinestError):
    """A checkpoint (``NAME.safetensors`` + ``NAME.json``) that is missing, damaged or inconsistent."""


class OutputFileError(KinestError):
    """An output that cannot be written (the input itself, a folder, no permission, disk full)."""


class ReconstructionError(KinestError):
    """The reconstruction produced no usable motion; nothing was written."""


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def unexpected_message(exc: BaseException, doing: str) -> str:
    """One line for an error that should not happen: what, while doing what, and how to report it."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    if isinstance(exc, MemoryError):
        return f"out of memory while {doing}; try a shorter take or close other programs"
    return (
        f"internal error while {doing} ({type(exc).__name__}: {text}); this is a bug in KineST: please report it "
        f"with the command and the input file (set {DEBUG_ENV}=1 to see the traceback)"
    )
