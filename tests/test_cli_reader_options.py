# SPDX-License-Identifier: GPL-3.0-or-later
"""The CLI acts on every warning it prints: each hint names a flag, and that flag changes the reading.

For every code the readers raise on the VR recordings, the test runs ``kinest inspect``, takes the
flags the hint names (choosing a value where the hint leaves it to the user), runs again with
them, and checks that the warning is gone or that the report says the option was used.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from kinest_core.cli import main
from kinest_core.commands.reader_options import READER_OPTIONS, cli_spelling, parse_columns
from kinest_core.fixes import FIX_OPTIONS, Fix
from kinest_core.io import read_tracking

ROOT = Path(__file__).resolve().parents[1]
FIX_DIR = ROOT / "tests" / "fixtures" / "vr"
SHARED_VR = ROOT.parent / "shared" / "data" / "vr"
SHARED_MOCAP = ROOT.parent / "shared" / "data" / "mocap"

#: Values the test picks where a hint leaves the choice to the user (``--units UNIT``).
CHOSEN: dict[str, str] = {
    "units": "m",
    "time_units": "s",
    "quat_order": "xyzw",
    "convention": "unity",
    "euler_order": "XYZ",
    "floor": "4.0",
    "input_fps": "72",
    "body_height": "1.75",
}

#: How a report shows that an option was used, when the warning itself remains.
ACTED: dict[str, tuple[str, str]] = {
    "units": ("units_from", "option"),
    "convention": ("convention_from", "option"),
    "floor": ("floor_from", "option"),
    "body_height": ("body_height_from", "option"),
}

#: Every code the readers raise on the recordings in tests/fixtures/vr, and a file raising it.
CODE_FILES: dict[str, str] = {
    "HANDEDNESS_SUSPECT": "km_liebers_labstudy21_bowling_negative_coordinate_system.csv",
    "ROTATION_SUSPECT": "km_liebers_labstudy21_bowling_negative_rotations.csv",
    "TIME_SCALE_SUSPECT": "km_liebers_labstudy21_bowling_negative_time.csv",
    "UNITS_SUSPECT": "km_liebers_labstudy21_bowling_negative_units.csv",
    "FLOOR_ESTIMATED": "km_liebers_labstudy21_bowling_negative_units.csv",
    "GAPS": "km_liebers_beatsaber23_fixed.csv",
}


def inspect_json(capsys: pytest.CaptureFixture[str], path: Path, *flags: str) -> dict:
    assert main(["inspect", str(path), "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def flags_for(warning: dict) -> list[str]:
    """The flags a warning's hint names, with the test's value where the hint leaves one to choose."""
    out: list[str] = []
    for f in warning.get("fixes", []):
        fix = Fix(f["option"], f["value"])
        spelled = cli_spelling(fix)
        assert spelled in warning["hint"], (spelled, warning["hint"])
        opt = next(o for o in READER_OPTIONS if o.option == fix.option)
        value = f["value"]
        if value is None:
            value = CHOSEN[fix.option]
        elif isinstance(value, dict):
            value = ",".join(f"{k}={v}" for k, v in value.items())
        out += [opt.flag, str(value)]
    return out


def acted_on(report: dict, option: str, flags: list[str]) -> bool:
    if option in ACTED:
        key, want = ACTED[option]
        return report.get(key) == want
    if option == "quat_order":
        return "option" in str(report.get("quat_order"))
    if option == "time_units":
        return report.get("time_units") == flags[flags.index("--time-units") + 1]
    return False


def check_acts(capsys: pytest.CaptureFixture[str], path: Path, code: str) -> None:
    before = inspect_json(capsys, path)
    hits = [w for w in before["warnings"] if w["code"] == code]
    assert hits, f"{path.name} no longer raises {code}"
    for w in hits:
        if not w.get("fixes"):
            assert "hint" not in w and "--" not in w["message"]  # nothing to act on, and nothing promised
            continue
        assert "=" not in w["hint"].replace("--columns", ""), w["hint"]  # no Python keyword spelling
        flags = flags_for(w)
        after = inspect_json(capsys, path, *flags)
        same = [x for x in after["warnings"] if x["code"] == code and x.get("device") == w.get("device")]
        gone = not same or all(x.get("frames") != w.get("frames") for x in same if "frames" in w)
        used = all(acted_on(after, f["option"], flags) for f in w["fixes"] if f["option"] in {*ACTED, "quat_order"})
        assert gone or used, (code, flags, after["warnings"])


def test_every_code_on_the_fixtures_is_covered(capsys: pytest.CaptureFixture[str]) -> None:
    raised: set[str] = set()
    for path in sorted(FIX_DIR.iterdir()):
        if path.suffix in (".csv", ".bsor"):
            raised |= {w.code for w in read_tracking(path).warnings}
    assert raised == set(CODE_FILES)


@pytest.mark.parametrize("code", sorted(CODE_FILES))
def test_cli_acts_on_warning(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    check_acts(capsys, FIX_DIR / CODE_FILES[code], code)


def test_handedness_fix_clears_the_warning(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIX_DIR / CODE_FILES["HANDEDNESS_SUSPECT"]
    (w,) = [w for w in inspect_json(capsys, path)["warnings"] if w["code"] == "HANDEDNESS_SUSPECT"]
    assert "--convention unity" in w["message"] and "convention='unity'" not in w["message"]
    after = inspect_json(capsys, path, "--convention", "unity")
    assert after["warnings"] == [] and after["convention_from"] == "option"


def test_interior_gap_offers_max_gap_that_fills_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = (FIX_DIR / "km_liebers_labstudy21_bowling_fixed.csv").read_text().splitlines()
    header = src[0].split(",")
    left = [i for i, h in enumerate(header) if h.startswith("left_hand_")]
    rows = [r.split(",") for r in src[1:]]
    for r in rows[200:230]:  # about 0.4 s of the left hand lost mid-take
        for i in left:
            r[i] = ""
    path = tmp_path / "gap.csv"
    path.write_text("\n".join([src[0], *(",".join(r) for r in rows)]) + "\n")
    (w,) = [w for w in inspect_json(capsys, path)["warnings"] if w["code"] == "GAPS"]
    assert w["fixes"][0]["option"] == "max_gap_s" and "--max-gap" in w["hint"]
    check_acts(capsys, path, "GAPS")
    assert not [x for x in inspect_json(capsys, path, *flags_for(w))["warnings"] if x["code"] == "GAPS"]


def test_height_flag_replaces_the_estimate(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIX_DIR / "km_liebers_labstudy21_bowling_fixed.csv"
    rep = inspect_json(capsys, path, "--height", "1.62")
    assert rep["body_height_m"] == 1.62 and rep["body_height_from"] == "option"


def test_every_fix_option_has_a_flag() -> None:
    spelled = {o: cli_spelling(Fix(o)) for o in FIX_OPTIONS}
    assert all(s.startswith("--") for s in spelled.values()), spelled
    assert cli_spelling(Fix("convention", "unity")) == "--convention unity"
    assert cli_spelling(Fix("columns", {"time": "t", "head_pos_x": "hx"})) == "--columns time=t,head_pos_x=hx"
    assert str(Fix("floor", 0.5).option) == "floor"
    with pytest.raises(ValueError, match="unknown option"):
        Fix("scale", 3.0)


def test_columns_inline_and_from_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = (FIX_DIR / "km_liebers_labstudy21_bowling_fixed.csv").read_text().splitlines()
    renamed = src[0].replace("head_pos_", "hp").replace("delta_time_ms", "clock")
    path = tmp_path / "renamed.csv"
    path.write_text("\n".join([renamed, *src[1:]]) + "\n")
    with pytest.raises(Exception, match="head"):
        read_tracking(path)
    inline = "time=clock,head_pos_x=hpx,head_pos_y=hpy,head_pos_z=hpz"
    rep = inspect_json(capsys, path, "--columns", inline, "--time-units", "ms")
    assert rep["time_column"] == "clock" and rep["devices"][0]["present"]
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps(parse_columns(inline)))
    assert inspect_json(capsys, path, "--columns", str(mapping), "--time-units", "ms")["frames"] == rep["frames"]


def test_bad_option_values_are_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(FIX_DIR / "km_liebers_labstudy21_bowling_fixed.csv")
    for flags in (["--convention", "lefty"], ["--floor", "ground"], ["--height", "17"], ["--columns", "head_pos_x"]):
        with pytest.raises(SystemExit) as exc:
            main(["inspect", path, *flags])
        assert exc.value.code == 2
        assert flags[0] in capsys.readouterr().err


def test_reconstruct_prints_flags_and_takes_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(FIX_DIR / CODE_FILES["HANDEDNESS_SUSPECT"])
    assert main(["reconstruct", path, "-o", str(tmp_path / "a.npz"), "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning [HANDEDNESS_SUSPECT]" in err and "--convention unity" in err and "convention=" not in err
    out = tmp_path / "b.npz"
    assert (
        main(["reconstruct", path, "-o", str(out), "--threads", "1", "--convention", "unity", "--height", "1.7"]) == 0
    )
    assert "warning" not in capsys.readouterr().err
    z = np.load(out)
    assert z["rest_offsets"].shape == (22, 3)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_VR.is_dir(), reason="../shared/data/vr is not here")
def test_cli_acts_on_every_warning_of_the_shared_recordings(capsys: pytest.CaptureFixture[str]) -> None:
    seen: set[str] = set()
    for path in sorted(SHARED_VR.iterdir()):
        if path.suffix not in (".csv", ".bsor"):
            continue
        for code in sorted({w.code for w in read_tracking(path).warnings}):
            check_acts(capsys, path, code)
            seen.add(code)
    assert seen >= {"HANDEDNESS_SUSPECT", "ROTATION_SUSPECT", "TIME_SCALE_SUSPECT", "UNITS_SUSPECT"}


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_MOCAP.is_dir(), reason="../shared/data/mocap is not here")
@pytest.mark.parametrize("name", ["02_01.bvh", "02_03.bvh"])
def test_cmu_bvh_has_no_time_scale_warning(name: str) -> None:
    seq = read_tracking(SHARED_MOCAP / "test" / name)
    assert "TIME_SCALE_SUSPECT" not in {w.code for w in seq.warnings}


def test_bvh_frame_time_is_not_questioned() -> None:
    """CMU 02_01 (a walk, 120 Hz) starts with fast hands leaving the calibration pose; its Frame Time is right."""
    seq = read_tracking(ROOT / "tests" / "fixtures" / "mocap" / "02_01_cut.bvh")
    assert seq.info["checks"]["speed_p99_m_s"][1] > 20.0  # the speeds that used to raise it are still measured
    assert "TIME_SCALE_SUSPECT" not in {w.code for w in seq.warnings}
    assert seq.info["original_rate_hz"] == pytest.approx(120.0, rel=1e-4)


def test_reader_errors_name_their_fix_in_each_interfaces_spelling(tmp_path, capsys):
    """An unreadable file's hint names the flag on the command line and the keyword in Python."""
    from kinest_core.cli import main
    from kinest_core.io import TrackingFileError, read_tracking

    path = tmp_path / "odd_names.csv"
    path.write_text("t,a,b,c\n0,0,1.6,0\n0.1,0,1.6,0\n")
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert "--columns head_pos_x=COLUMN" in err and "columns={" not in err
    with pytest.raises(TrackingFileError) as info:
        read_tracking(str(path))
    assert "columns={'head_pos_x': 'COLUMN'" in str(info.value)
