# SPDX-License-Identifier: GPL-3.0-or-later
"""How the two packages import: the core without Blender, the add-on without torch, no cycles.

The import checks run in fresh interpreters (this test process may already hold bpy or torch).
The cycle check reads every ``import`` statement of both packages with ``ast``, those inside
functions included, so a cycle hidden behind a function-level import is still one.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("kinest_core", "kinest_blender")


def _run(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a fresh Python at the repository root; it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------
# The import graph


def module_files(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's ``__init__``) for every module of ``packages``."""
    out = {}
    for pkg in packages:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_init = parts[-1] == "__init__"
            if is_init:
                parts = parts[:-1]
            out[".".join(parts)] = (path, is_init)
    return out


def import_graph(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, set[str]]:
    """Module -> the modules of ``packages`` it imports anywhere in its file (functions included).

    ``import a.b.c`` (or ``from a.b import c``) runs ``a`` and ``a.b`` first, so those are edges
    too, except packages the importing module lies in: Python has started them before it. A
    name imported from a package that is not a submodule is an edge to the package itself.
    """
    mods = module_files(root, packages)

    def existing(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, (path, is_init) in mods.items():
        own_package = mod if is_init else mod.rpartition(".")[0]
        parts = mod.split(".")
        enclosing = {".".join(parts[:i]) for i in range(1, len(parts))}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = own_package.split(".")
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                subs = [f"{source}.{a.name}" for a in node.names if f"{source}.{a.name}" in mods]
                targets = subs + ([source] if len(subs) < len(node.names) else [])
            for target in targets:
                found = existing(target)
                if found is None:
                    continue  # another distribution's module
                tparts = found.split(".")
                for i in range(1, len(tparts)):
                    parent = ".".join(tparts[:i])
                    if parent in mods and parent not in enclosing:
                        graph[mod].add(parent)
                if found != mod:
                    graph[mod].add(found)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (each holds at least one cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return groups


def _describe(graph: dict[str, set[str]], group: list[str]) -> str:
    inside = set(group)
    return "; ".join(f"{m} -> {', '.join(sorted(graph[m] & inside))}" for m in group)


def test_neither_package_has_an_import_cycle():
    graph = import_graph(REPO)
    assert "kinest_blender.bake" in graph and "kinest_core.inference" in graph
    cycles = import_cycles(graph)
    assert not cycles, "import cycles: " + " | ".join(_describe(graph, g) for g in cycles)


def test_the_core_never_imports_blender_or_the_addon():
    graph = import_graph(REPO)
    offenders = {m: sorted(t for t in ts if t.startswith("kinest_blender")) for m, ts in graph.items()}
    assert not {m: t for m, t in offenders.items() if m.startswith("kinest_core") and t}
    for mod, (path, _) in module_files(REPO, ("kinest_core",)).items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            assert not [n for n in names if n.split(".")[0] in ("bpy", "mathutils", "bpy_extras")], mod


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function(tmp_path):
    """The checker itself: a function-level import back to a module is found, re-exports are not cycles."""
    pkg = tmp_path / "kinest_blender"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import f\n")  # re-export: the package imports its submodule
    (pkg / "a.py").write_text("from . import b\n\ndef f():\n    return b.g()\n")
    (pkg / "b.py").write_text("from kinest_blender.c import h\n\ndef g():\n    return h()\n")
    (pkg / "c.py").write_text("def h():\n    from .a import f  # the dodge\n    return f\n")
    (pkg / "d.py").write_text("from kinest_blender import a\n")  # not part of a cycle
    graph = import_graph(tmp_path, ("kinest_blender",))
    assert graph["kinest_blender.c"] == {"kinest_blender.a"}
    assert import_cycles(graph) == [["kinest_blender.a", "kinest_blender.b", "kinest_blender.c"]]
    (pkg / "c.py").write_text("def h():\n    return 1\n")
    assert import_cycles(import_graph(tmp_path, ("kinest_blender",))) == []


# ------------------------------------------------------------------------------------------------
# What each import loads


def test_importing_the_core_loads_neither_blender_nor_the_addon():
    """Every module of kinest_core (io, model, training, postprocess, inference, cli included)."""
    names = sorted(module_files(REPO, ("kinest_core",)))
    assert {"kinest_core.io", "kinest_core.model", "kinest_core.inference", "kinest_core.cli"} <= set(names)
    assert any(n.startswith("kinest_core.training.") for n in names)
    assert any(n.startswith("kinest_core.postprocess.") for n in names)
    code = (
        "import importlib, json, sys\n"
        f"names = {names!r}\n"
        "for n in ['kinest_core.training', 'kinest_core.postprocess', *names]:\n"
        "    importlib.import_module(n)\n"
        "print(json.dumps({'loaded': sorted(m for m in sys.modules\n"
        "    if m.split('.')[0] in ('bpy', 'kinest_blender', 'mathutils', 'bpy_extras'))}))\n"
    )
    assert _run(code)["loaded"] == []


def test_the_addons_key_maths_import_without_blender():
    code = (
        "import json, sys\n"
        "import kinest_blender.keys as k\n"
        "assert len(k.BONE_NAME_PRESETS['SMPL']) == 22\n"
        "print(json.dumps({'bpy': 'bpy' in sys.modules, 'torch': 'torch' in sys.modules}))\n"
    )
    assert _run(code) == {"bpy": False, "torch": False}


@pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="needs bpy (pip install bpy==5.0.1)")
def test_registering_the_addon_imports_no_torch(tmp_path):
    """Real Blender: register every class and handler of the add-on; torch (and the core) stay unloaded."""
    code = (
        "import json, sys\n"
        "import bpy\n"
        "import kinest_blender\n"
        "kinest_blender.register()\n"
        "ops = sorted(n for n in dir(bpy.ops.kinest))\n"
        "loaded = {m: m in sys.modules for m in ('torch', 'kinest_core', 'scipy')}\n"
        "kinest_blender.unregister()\n"
        "print(json.dumps({'ops': ops, **loaded}))\n"
    )
    res = _run(code, env={"BLENDER_USER_RESOURCES": str(tmp_path)})
    assert {"reconstruct", "cancel", "smooth", "export_fbx", "export_bvh"} <= set(res["ops"]), res["ops"]
    assert res["torch"] is False
    assert res["kinest_core"] is False and res["scipy"] is False  # the core loads on first use
