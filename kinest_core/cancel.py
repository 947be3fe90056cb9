# SPDX-License-Identifier: GPL-3.0-or-later
"""Cancelling long work from another thread, without importing torch.

A GUI (the Blender add-on) creates the token before the heavy modules are loaded, so it lives
here rather than in :mod:`kinest_core.inference`, which re-exports both names.
"""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised by long work (e.g. :func:`kinest_core.inference.reconstruct`) once its token is set."""


class CancelToken:
    """Thread-safe flag a GUI sets to stop a running reconstruction between batches."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()
