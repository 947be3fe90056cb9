# SPDX-License-Identifier: GPL-3.0-or-later
"""KineST for Blender: import VR tracking, reconstruct full-body motion, bake, export.

A thin layer over ``kinest_core`` (bundled as wheels in the extension zip). Registering
imports no torch: the core loads on the first import or reconstruction, so Blender starts
fast and a broken install becomes an operator report instead of a failed add-on.
Preferences (e.g. an external worker Python) will hang off ``__package__`` later.
"""

from __future__ import annotations

from . import export, import_op, props, reconstruct_op, ui

_MODULES = (props, import_op, reconstruct_op, export, ui)


def register() -> None:
    for mod in _MODULES:
        mod.register()


def unregister() -> None:
    for mod in reversed(_MODULES):
        mod.unregister()
