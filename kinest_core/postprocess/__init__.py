# SPDX-License-Identifier: GPL-3.0-or-later
"""What happens to a motion after the network: hand pinning, smoothing, foot planting, retargeting.

Each pass takes and returns plain core types (:class:`~kinest_core.types.Motion`, arrays), so the
CLI, the worker and the Blender add-on run the same code.
"""
