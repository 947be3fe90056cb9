# SPDX-License-Identifier: GPL-3.0-or-later
"""Import warnings in Blender name the fields a user sets, not Python keywords or CLI flags."""

from __future__ import annotations

from kb_helpers import FIXTURES, bpy, mod

from kinest_core.fixes import Fix
from kinest_core.io import read_tracking


def _spell(clean):
    dialog = bpy.ops.import_scene.kinest_tracking.get_rna_type()
    return mod("import_op").field_spelling(dialog, clean.scene.kinest.bl_rna)


def test_hints_name_the_dialog_fields(clean):
    spell = _spell(clean)
    path = FIXTURES / "vr" / "km_liebers_labstudy21_bowling_negative_coordinate_system.csv"
    (w,) = [w for w in read_tracking(path).warnings if w.code == "HANDEDNESS_SUSPECT"]
    text = w.text(spell)
    assert "Convention: Unity / Beat Saber (import options)" in text, text
    assert "convention=" not in text and "--convention" not in text
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(path)) == {"FINISHED"}  # reports it, spelled so
    assert bpy.ops.import_scene.kinest_tracking(filepath=str(path), convention="unity") == {"FINISHED"}
    assert "convention unity" in clean.scene.kinest.tracking["kinest_detected"]


def test_every_fix_has_a_blender_spelling(clean):
    spell = _spell(clean)
    assert spell(Fix("units")) == "Units (import options)"
    assert spell(Fix("calibration", "index")) == "Devices: Valve Index (import options)"
    assert spell(Fix("input_fps", 72.0)) == "Source Rate: 72 (import options)"
    assert spell(Fix("body_height")) == "Body Height (KineST panel)"
    # options the dialog does not offer are named as scripts pass them
    assert spell(Fix("floor")).startswith("floor=... (a read_tracking option")
