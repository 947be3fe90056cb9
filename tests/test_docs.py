# SPDX-License-Identifier: GPL-3.0-or-later
"""The README and docs/ speak of this repository only: no paths outside it, no dead links, a short README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "examples" / "README.md"]

# A path that leaves the repository: a parent-folder step, or an absolute path of this machine.
OUTSIDE = re.compile(r"(?<![\w.])\.\./|(?<![\w~.])/(?:work|tmp|home|root|opt|mnt)/|\bshared/data\b")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_docs_name_no_path_outside_the_repository(doc: Path) -> None:
    for n, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
        m = OUTSIDE.search(line)
        assert m is None, f"{doc.name}:{n} names a path outside the repository: {line.strip()!r}"


def test_the_outside_path_check_catches_what_it_should() -> None:
    for bad in ("see ../shared/data/vr", "`/work/main/x`", "data in shared/data/mocap", "(../README.md)"):
        assert OUTSIDE.search(bad), bad
    for good in ("`~/.cache/kinest/kernels`", "https://download.pytorch.org/whl/cpu", "docs/training.md"):
        assert not OUTSIDE.search(good), good


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_point_at_files_that_exist(doc: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
        if "://" in target:
            continue
        assert (doc.parent / target).exists(), f"{doc.name} links to missing {target}"


def test_readme_is_short_enough_to_read_in_ten_minutes() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 260, f"README.md has {len(lines)} lines; move details to docs/"


def test_docs_hold_a_few_dozen_files_at_most() -> None:
    files = [p for p in (REPO / "docs").rglob("*") if p.is_file()]
    assert len(files) <= 40, f"docs/ holds {len(files)} files"
