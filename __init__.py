# SPDX-License-Identifier: GPL-3.0-or-later
"""Blender extension entry: hands over to the ``kinest_blender`` package."""
from .kinest_blender import register, unregister  # noqa: F401
