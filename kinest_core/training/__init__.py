# SPDX-License-Identifier: GPL-3.0-or-later
"""Training and evaluation: mocap conversion (BVH, AMASS), windows and augmentation, losses,
the training loop, baselines and the evaluation protocol. Not needed at inference time."""
