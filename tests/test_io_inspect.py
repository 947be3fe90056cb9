# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest inspect``: text and JSON output, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kinest_core.cli import main

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "vr"


def test_inspect_json(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["inspect", str(FIX / "km_liebers_labstudy21_bowling_negative_time.csv"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["format"] == "csv" and out["units"] == "cm" and out["frames"] > 100
    assert [w["code"] for w in out["warnings"]] == ["TIME_SCALE_SUSPECT"]
    assert set(out["warnings"][0]) >= {"code", "message"}


def test_inspect_text_example(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["inspect", str(ROOT / "examples" / "xror_sample1_cut.bsor")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "bsor" in out and "unity" in out and "warnings:    none" in out and "body height" in out


def test_inspect_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "x.csv").write_text("nothing useful\n1\n")
    assert main(["inspect", str(tmp_path / "x.csv")]) == 1
    assert "x.csv" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path / "x.csv"), "--json"]) == 1
    assert "error" in json.loads(capsys.readouterr().out)


def test_inspect_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["inspect", str(FIX / "km_who_is_alyx_fixed_cutout.csv"), "--json", "--units", "m"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["units"] == "m" and out["units_from"] == "option"
    assert "UNITS_SUSPECT" in [w["code"] for w in out["warnings"]]


def test_every_report_key_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    doc = (ROOT / "docs" / "inspect.md").read_text()
    main(["inspect", str(ROOT / "examples" / "xror_sample1_cut.bsor"), "--json"])
    out = json.loads(capsys.readouterr().out)
    missing = [k for k in out if f"`{k}`" not in doc]
    assert not missing, missing
    from kinest_core.io import WARNING_CODES

    assert [c for c in WARNING_CODES if f"`{c}`" not in doc] == []
