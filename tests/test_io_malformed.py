# SPDX-License-Identifier: GPL-3.0-or-later
"""Broken input gets one TrackingFileError naming the file, where, what and what to do; fuzzed too."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinest_core.io import TrackingFileError, read_tracking
from kinest_core.types import TrackingSequence

FIX = Path(__file__).resolve().parent / "fixtures" / "vr"
ALYX = FIX / "km_who_is_alyx_fixed_cutout.csv"
BSOR = FIX / "km_boxrr_beatsaber23_first1446.bsor"


def _small_csv(rows: int = 40) -> str:
    return "\n".join(ALYX.read_text().splitlines()[: rows + 1]) + "\n"


def _expect_error(path: Path, *words: str, **kw: object) -> TrackingFileError:
    with pytest.raises(TrackingFileError) as ei:
        read_tracking(path, **kw)  # type: ignore[arg-type]
    msg = str(ei.value)
    assert str(path) in msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    assert "unexpected problem" not in msg
    return ei.value


def _check_result(seq: TrackingSequence) -> None:
    assert seq.num_frames >= 1
    assert np.all(np.isfinite(seq.transforms())) and np.all(np.isfinite(seq.times))
    assert seq.valid.shape == (seq.num_frames, 3)


def test_missing_empty_folder(tmp_path: Path) -> None:
    _expect_error(tmp_path / "nope.csv", "cannot open")
    (tmp_path / "empty.csv").write_bytes(b"")
    _expect_error(tmp_path / "empty.csv", "empty")
    (tmp_path / "empty.bsor").write_bytes(b"")
    _expect_error(tmp_path / "empty.bsor", "empty")
    (tmp_path / "dir.csv").mkdir()
    _expect_error(tmp_path / "dir.csv", "folder")


def test_binary_garbage_and_non_utf8(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "garbage.csv").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    _expect_error(tmp_path / "garbage.csv", "binary")
    (tmp_path / "garbage").write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(TrackingFileError):
        read_tracking(tmp_path / "garbage")
    text = _small_csv().encode()
    k = text.index(b"\n") + 5
    (tmp_path / "latin.csv").write_bytes(text[:k] + "\xe9".encode("latin-1") + text[k:])
    _expect_error(tmp_path / "latin.csv", "utf-8", "line 2")


def test_truncated_csv_and_bsor(tmp_path: Path) -> None:
    text = _small_csv()
    (tmp_path / "trunc.csv").write_text(text[: len(text) - 60])
    _expect_error(tmp_path / "trunc.csv", "truncated", "line 41")
    data = BSOR.read_bytes()
    (tmp_path / "trunc.bsor").write_bytes(data[: len(data) // 2])
    _expect_error(tmp_path / "trunc.bsor", "truncated", "frame")
    (tmp_path / "head.bsor").write_bytes(data[:40])
    _expect_error(tmp_path / "head.bsor", "ends inside")
    bad = bytearray(data)
    bad[0] = 0
    (tmp_path / "magic.bsor").write_bytes(bytes(bad))
    _expect_error(tmp_path / "magic.bsor", "magic")
    bad = bytearray(data)
    bad[6:10] = struct.pack("<i", 2_000_000_000)
    (tmp_path / "strlen.bsor").write_bytes(bytes(bad))
    _expect_error(tmp_path / "strlen.bsor", "byte 6")


def test_wrong_columns_and_bad_cells(tmp_path: Path) -> None:
    (tmp_path / "cols.csv").write_text("a,b,c\n1,2,3\n4,5,6\n")
    _expect_error(tmp_path / "cols.csv", "no head position", "columns=")
    (tmp_path / "hdr.csv").write_text(_small_csv().splitlines()[0] + "\n")
    _expect_error(tmp_path / "hdr.csv", "no data rows")
    lines = _small_csv().splitlines()
    for name, cell, words in (
        ("inf.csv", "inf", ("line 6", "not a value")),
        ("huge.csv", "1e300", ("line 6", "not a value")),
        ("word.csv", "hello", ("line 6", "not a number")),
    ):
        rows = [ln.split(",") for ln in lines]
        rows[5][3] = cell
        (tmp_path / name).write_text("\n".join(",".join(r) for r in rows) + "\n")
        _expect_error(tmp_path / name, *words)
    rows = [ln.split(",") for ln in lines]
    rows[7][0] = ""
    (tmp_path / "notime.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    _expect_error(tmp_path / "notime.csv", "time", "line 8")
    rows = [ln.split(",") for ln in lines]
    rows[9] = rows[9][:5]
    (tmp_path / "short.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    _expect_error(tmp_path / "short.csv", "line 10", "fields")
    rows = [ln.split(",") for ln in lines]
    for r in rows[1:]:
        r[1:8] = [""] * 7
    (tmp_path / "nohead.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    _expect_error(tmp_path / "nohead.csv", "head has no usable sample")
    rows = [ln.split(",") for ln in lines]
    for r in rows[1:]:
        r[0] = "5"
    (tmp_path / "onetime.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    _expect_error(tmp_path / "onetime.csv", "fewer than 2")


def test_nonmonotonic_time_is_sorted_and_reported(tmp_path: Path) -> None:
    lines = _small_csv(80).splitlines()
    lines[20], lines[21] = lines[21], lines[20]
    (tmp_path / "swap.csv").write_text("\n".join(lines) + "\n")
    seq = read_tracking(tmp_path / "swap.csv")
    assert "NONMONOTONIC_TIME" in {w.code for w in seq.warnings}
    _check_result(seq)


def test_enormous_file_refused_quickly(tmp_path: Path) -> None:
    p = tmp_path / "huge.csv"
    with open(p, "wb") as fh:
        fh.write(b"delta_time_ms,head_pos_x\n")
        fh.truncate(600 * 1024 * 1024)  # sparse: no disk used, nothing read
    _expect_error(p, "limit", "split")


def test_absurd_time_span(tmp_path: Path) -> None:
    lines = _small_csv().splitlines()
    rows = [ln.split(",") for ln in lines]
    rows[-1][0] = "9000000"  # ms: one row 2.5 h after the others is a corrupt time stamp: dropped
    (tmp_path / "ok.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    seq = read_tracking(tmp_path / "ok.csv", resample_fps=None)
    spike = [w.message for w in seq.warnings if w.code == "NONMONOTONIC_TIME"]
    assert spike and "line 41" in spike[0] and seq.info["duration_s"] < 2.0
    rows = [ln.split(",") for ln in lines]
    for r in rows[20:]:
        r[0] = str(float(r[0]) + 13 * 3600e3)  # half the take 13 h later
    (tmp_path / "bad.csv").write_text("\n".join(",".join(r) for r in rows) + "\n")
    _expect_error(tmp_path / "bad.csv", "span", "time_units", "line 20 and line 21")


def test_bvh_errors(tmp_path: Path) -> None:
    (tmp_path / "a.bvh").write_text("HIERARCHY\nROOT Hips\n{\n OFFSET 0 0\n")
    _expect_error(tmp_path / "a.bvh", "line")
    (tmp_path / "b.bvh").write_text(
        "HIERARCHY\nROOT Hips\n{\n OFFSET 0 0 0\n CHANNELS 3 Xposition Yposition Zposition\n"
        " End Site\n {\n  OFFSET 0 1 0\n }\n}\nMOTION\nFrames: 2\nFrame Time: 0.01\n0 0 0\n1 1 1\n"
    )
    _expect_error(tmp_path / "b.bvh", "no head joint")


def test_bad_options_are_plain_value_errors() -> None:
    for kw in ({"units": "furlong"}, {"convention": "maya"}, {"quat_order": "zyxw"}, {"columns": {"nose_x": "a"}}):
        with pytest.raises(ValueError) as ei:
            read_tracking(ALYX, **kw)  # type: ignore[arg-type]
        assert not isinstance(ei.value, TrackingFileError)


# ---------------------------------------------------------------- fuzzing
_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _read_or_error(path: Path) -> None:
    try:
        seq = read_tracking(path)
    except TrackingFileError as exc:
        assert "unexpected problem" not in str(exc), str(exc)
        assert str(path) in str(exc)
    else:
        _check_result(seq)


@_SETTINGS
@given(data=st.binary(min_size=0, max_size=600), ext=st.sampled_from([".csv", ".bsor", ".bvh", ".npz", ""]))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes, ext: str) -> None:
    p = tmp_path / f"f{ext}"
    p.write_bytes(data)
    _read_or_error(p)


_CSV_TEXT = _small_csv(30)


@_SETTINGS
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(_CSV_TEXT) - 1),
            st.integers(0, 6),
            st.sampled_from(["", ",", "\n", "nan", "-", "1e9", "x", ";", '"', "0", " ", "inf", "\x00", "é"]),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_fuzz_mutated_csv(tmp_path: Path, edits: list[tuple[int, int, str]]) -> None:
    text = _CSV_TEXT
    for pos, cut, ins in edits:
        pos = min(pos, len(text))
        text = text[:pos] + ins + text[pos + cut :]
    p = tmp_path / "m.csv"
    p.write_bytes(text.encode("utf-8"))
    _read_or_error(p)


_BSOR = BSOR.read_bytes()[: 400 + 92 * 120]


@_SETTINGS
@given(
    flips=st.lists(st.tuples(st.integers(0, len(_BSOR) - 1), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, len(_BSOR))),
)
def test_fuzz_mutated_bsor(tmp_path: Path, flips: list[tuple[int, int]], cut: int | None) -> None:
    data = bytearray(_BSOR)
    for pos, val in flips:
        data[pos] = val
    if cut is not None:
        data = data[:cut]
    p = tmp_path / "m.bsor"
    p.write_bytes(bytes(data))
    _read_or_error(p)


_BVH = (
    "HIERARCHY\nROOT Hips\n{\n OFFSET 0 90 0\n CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n"
    " JOINT Head\n {\n  OFFSET 0 70 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n  End Site\n  {\n   OFFSET 0 10 0\n  }\n }\n"
    " JOINT LeftHand\n {\n  OFFSET 60 50 0\n  CHANNELS 3 Zrotation Xrotation Yrotation\n  End Site\n  {\n   OFFSET 5 0 0\n  }\n }\n"
    "}\nMOTION\nFrames: 6\nFrame Time: 0.0333333\n" + "".join(f"{k} 0 0 {k} 2 0 {k} 0 1 0 0 {k}\n" for k in range(6))
)


@_SETTINGS
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(_BVH) - 1),
            st.integers(0, 4),
            st.sampled_from(["", "{", "}", "\n", "-", "9e99", "x", "JOINT", " ", "nan"]),
        ),
        min_size=1,
        max_size=5,
    )
)
def test_fuzz_mutated_bvh(tmp_path: Path, edits: list[tuple[int, int, str]]) -> None:
    text = _BVH
    for pos, cut, ins in edits:
        text = text[:pos] + ins + text[pos + cut :]
    p = tmp_path / "m.bvh"
    p.write_text(text)
    _read_or_error(p)


def test_truncated_bsor_every_size(tmp_path: Path) -> None:
    """Every prefix length of the header and first frames fails cleanly."""
    for n in list(range(0, 420, 7)) + [len(_BSOR) - 1]:
        p = tmp_path / f"t{n}.bsor"
        p.write_bytes(_BSOR[:n])
        _read_or_error(p)
    assert os.path.exists(tmp_path / "t0.bsor")
