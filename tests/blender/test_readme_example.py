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
