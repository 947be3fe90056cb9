# SPDX-License-Identifier: GPL-3.0-or-later
"""The KineST network, its Mamba-2 building block and checkpoint files."""

from kinest_core.model.checkpoint import default_checkpoint_path, load_checkpoint, save_checkpoint
from kinest_core.model.kinest import KineST, KineSTConfig
from kinest_core.model.mamba2 import Mamba2

__all__ = ["KineST", "KineSTConfig", "Mamba2", "default_checkpoint_path", "load_checkpoint", "save_checkpoint"]
