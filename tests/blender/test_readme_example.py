# SPDX-License-Identifier: GPL-3.0-or-later
"""The README's Blender batch script, run as written (with the installed extension and the shipped model)."""

from __future__ import annotations

import re
import sys

from kb_helpers import REPO, bpy, recording_path


def readme_batch_script() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- blender-batch-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md lost its marked Blender batch example"
    return m.group(1)


def test_readme_batch_script_reconstructs_smooths_and_exports_fbx(clean, tmp_path, monkeypatch, capsys):
    fbx = tmp_path / "take.fbx"
    monkeypatch.setattr(sys, "argv", ["blender", "-b", "--python", "batch.py", "--", str(recording_path()), str(fbx)])
    exec(compile(readme_batch_script(), "README.md:batch.py", "exec"), {"__name__": "__main__"})
    out = capsys.readouterr().out
    assert "frames in" in out  # the reconstruction's one-line result was printed
    arm = next(o for o in bpy.data.objects if o.get("kinest_role") == "armature")
    assert "kinest_smoothing" in arm  # Smooth ran on the baked take
    assert fbx.stat().st_size > 10_000
    assert fbx.read_bytes().startswith(b"Kaydara FBX Binary")


def readme_retarget_script() -> str:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- blender-retarget-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md lost its marked retarget example"
    return m.group(1)


def test_readme_retarget_script_puts_the_take_on_an_fbx_character(clean, checkpoint, tmp_path, monkeypatch):
    from test_retarget_op import _character  # a Mixamo-named character with a skinned mesh, built in code

    char = _character(clean, "mixamo")
    character_fbx = tmp_path / "character.fbx"
    bpy.ops.object.select_all(action="DESELECT")
    for o in (char, *char.children):
        o.select_set(True)
    assert bpy.ops.export_scene.fbx(filepath=str(character_fbx), use_selection=True, add_leaf_bones=False) == {
        "FINISHED"
    }
    bpy.ops.wm.read_homefile(use_empty=True)
    bpy.context.scene.kinest.model_path = str(checkpoint)  # the tiny network keeps this test quick
    out = tmp_path / "out.fbx"
    argv = ["blender", "-b", "--python", "retarget.py", "--", str(recording_path()), str(character_fbx), str(out)]
    monkeypatch.setattr(sys, "argv", argv)
    exec(compile(readme_retarget_script(), "README.md:retarget.py", "exec"), {"__name__": "__main__"})
    rig = next(o for o in bpy.data.objects if o.type == "ARMATURE" and o.get("kinest_role") is None)
    assert "kinest_retarget_map" in rig and rig.animation_data.action is not None
    assert out.stat().st_size > 10_000
