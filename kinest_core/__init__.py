# SPDX-License-Identifier: GPL-3.0-or-later
"""KineST core: VR tracking (head + two hands) to SMPL-22 full-body motion.

Knows nothing of Blender. Readers live in :mod:`kinest_core.io`, the network in
:mod:`kinest_core.model`, inference in :mod:`kinest_core.inference`.
"""

__version__ = "0.1.0"
