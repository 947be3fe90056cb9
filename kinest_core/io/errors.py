# SPDX-License-Identifier: GPL-3.0-or-later
"""The one error type for tracking input that cannot be read."""

from __future__ import annotations


class TrackingFileError(ValueError):
    """Unreadable tracking input. The message names the file, where (line or frame), what and what to do.

    A subclass of ``ValueError`` so the CLI and the add-on report it as a user error, not a crash.
    """

    def __init__(self, path: str, problem: str, *, where: str | None = None, hint: str | None = None) -> None:
        self.path = str(path)
        self.where = where
        self.problem = problem
        self.hint = hint
        text = f"{self.path}"
        if where:
            text += f", {where}"
        text += f": {problem}"
        if hint:
            text += f"; {hint}"
        super().__init__(text)
