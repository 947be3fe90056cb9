# SPDX-License-Identifier: GPL-3.0-or-later
"""The one error type for tracking input that cannot be read (defined with the others in :mod:`kinest_core.errors`)."""

from __future__ import annotations

from kinest_core.errors import TrackingFileError

__all__ = ["TrackingFileError"]
