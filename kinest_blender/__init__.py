# SPDX-License-Identifier: GPL-3.0-or-later
"""KineST for Blender: import VR tracking, reconstruct full-body motion, bake, export.

A thin layer over ``kinest_core`` (bundled as wheels in the extension zip). Submodules load
in :func:`register`, so ``python -m kinest_blender.build`` runs without bpy, and registering
imports no torch: the core loads on the first import or reconstruction, so Blender starts
fast and a broken install becomes an operator report instead of a failed add-on.
Preferences (an external worker Python, ``prefs.py``) are keyed by the add-on's module name.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MODULE_NAMES = (
    "prefs",
    "props",
    "import_op",
    "reconstruct_op",
    "jitter_view",
    "smooth_op",
    "export",
    "retarget_op",
    "ui",
    "feet_op",
    "retarget_ui",
)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"{__name__}.{name}") for name in _MODULE_NAMES]


def register() -> None:
    for mod in _modules():
        mod.register()


def unregister() -> None:
    for mod in reversed(_modules()):
        mod.unregister()
