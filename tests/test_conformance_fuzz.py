# SPDX-License-Identifier: GPL-3.0-or-later
"""Conformance fuzzing through the ``kinest`` entry point, in-process, for every format.

Each example writes one mutated file (CSV, BVH, ``.bsor``, ``.npz``, or random bytes) and runs
``kinest inspect --json`` on it; the run must end with exit 0 and a JSON report, or exit 1 and
exactly one stderr line naming the file: never an exception, a traceback, an internal error, a
numpy warning printed around the message, or a change to the input. Some ``.npz`` examples also run ``kinest reconstruct`` with a tiny network:
a motion file with finite values, or no file at all.

The default run tries a few hundred inputs. The long run (10,000 per format) is selected with
``-m fuzz_long`` and prints its counts::

    nice -n 5 python -m pytest -q -s -m fuzz_long tests/test_conformance_fuzz.py
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import struct
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kinest_core.cli import main
from kinest_core.io.bsor import FRAME_BYTES, frames_section, parse_header
from kinest_core.model import KineST, KineSTConfig, save_checkpoint
from kinest_core.types import Motion

FIX = Path(__file__).resolve().parent / "fixtures"
CSV_SEED = "\n".join((FIX / "vr" / "km_who_is_alyx_fixed_cutout.csv").read_text().splitlines()[:41]) + "\n"
_BVH_LINES = (FIX / "mocap" / "02_01_cut.bvh").read_text().splitlines()
_MOTION_AT = next(i for i, ln in enumerate(_BVH_LINES) if ln.startswith("Frames:"))
BVH_SEED = "\n".join([*_BVH_LINES[:_MOTION_AT], "Frames: 30", *_BVH_LINES[_MOTION_AT + 1 : _MOTION_AT + 32]]) + "\n"
_BSOR_FULL = (FIX / "vr" / "km_boxrr_beatsaber23_first1446.bsor").read_bytes()
_HDR = parse_header("seed", _BSOR_FULL)
_COUNT, _START = frames_section("seed", _BSOR_FULL, _HDR)
BSOR_FRAMES = 90
BSOR_SEED = _BSOR_FULL[: _HDR.info_end + 1] + struct.pack("<i", BSOR_FRAMES) + _BSOR_FULL[_START : _START + 92 * 90]

SHORT = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
LONG = settings(max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), database=None)
COUNTS: Counter[str] = Counter()


def _long_selected(request: pytest.FixtureRequest) -> None:
    expr = request.config.getoption("markexpr") or ""
    if "fuzz_long" not in expr or "not fuzz_long" in expr:
        pytest.skip("the long fuzz run: select it with -m fuzz_long")


def run_cli(*argv: str) -> tuple[int, str, list[str]]:
    """``kinest ARGV`` in this process: exit code, stdout and the non-empty stderr lines."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), [ln for ln in err.getvalue().splitlines() if ln.strip()]


def check_inspect(path: Path, fmt: str) -> None:
    """The conformance property for one input file (see the module doc)."""
    before = path.read_bytes()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code, out, err = run_cli("inspect", "--json", str(path))
    noise = [
        f"{w.filename}:{w.lineno}: {w.message}" for w in caught if issubclass(w.category, (RuntimeWarning, UserWarning))
    ]
    assert not noise, noise  # a user sees these as extra lines around the one message
    assert path.read_bytes() == before
    if code == 0:
        report = json.loads(out)
        assert report["frames"] >= 1 and report["fps"] and report["duration_s"] is not None, report
        COUNTS[f"{fmt} read"] += 1
    else:
        text = json.loads(out)["error"] if out.strip() else (err[0] if err else "")
        assert code == 1, (code, out, err)
        assert not err or len(err) == 1, err
        assert str(path) in text and "internal error" not in text and "unexpected problem" not in text, text
        COUNTS[f"{fmt} refused"] += 1


def _apply_text_edits(text: str, edits: list[tuple[int, int, str]]) -> str:
    for pos, cut, ins in edits:
        pos = min(pos, len(text))
        text = text[:pos] + ins + text[pos + cut :]
    return text


_CSV_INSERTS = ["", ",", "\n", "nan", "-", "1e9", "-1e300", "x", ";", '"', "0", " ", "inf", "\x00", "é", "\r", "#"]


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    lines = CSV_SEED.splitlines()
    rows = [ln.split(",") for ln in lines[1:]]
    kind = draw(st.sampled_from(["edits", "time", "cells", "rows"]))
    if kind == "time":  # the time column: reversed, repeated, spiked, blank, scaled, deltas
        t = np.array([float(r[0]) for r in rows])
        how = draw(st.sampled_from(["reverse", "repeat", "spike", "blank", "scale", "delta", "shuffle", "const"]))
        k = draw(st.integers(0, len(rows) - 1))
        if how == "reverse":
            t = t[::-1]
        elif how == "repeat":
            t[k:] = t[k]
        elif how == "spike":
            t[k] = draw(st.floats(allow_nan=True, allow_infinity=True, width=64))
        elif how == "scale":
            t = t * draw(st.sampled_from([1e-9, 1e-3, 1e3, 1e6, 1e12, -1.0]))
        elif how == "delta":
            t = np.diff(t, prepend=t[0])
        elif how == "shuffle":
            t = np.random.default_rng(draw(st.integers(0, 99))).permutation(t)
        elif how == "const":
            t[:] = t[0]
        for r, v in zip(rows, t, strict=True):
            r[0] = "" if how == "blank" and r is rows[k] else repr(float(v))
    elif kind == "cells":
        for _ in range(draw(st.integers(1, 8))):
            r = draw(st.integers(0, len(rows) - 1))
            c = draw(st.integers(0, len(rows[0]) - 1))
            rows[r][c] = draw(
                st.one_of(st.sampled_from(_CSV_INSERTS), st.floats(width=64).map(repr), st.text(max_size=6))
            )
    elif kind == "rows":
        rng = np.random.default_rng(draw(st.integers(0, 999)))
        keep = rng.random(len(rows)) > draw(st.floats(0.0, 1.0))
        rows = [r for r, k in zip(rows, keep, strict=True) if k]
        if rows and draw(st.booleans()):
            rows.append(rows[-1][: draw(st.integers(0, len(rows[-1])))])
    text = "\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n"
    if kind == "edits":
        text = _apply_text_edits(
            text,
            draw(
                st.lists(
                    st.tuples(st.integers(0, len(text)), st.integers(0, 8), st.sampled_from(_CSV_INSERTS)),
                    min_size=1,
                    max_size=8,
                )
            ),
        )
    return text.encode("utf-8", errors="surrogatepass") if draw(st.booleans()) else text.encode("utf-8", "replace")


_BVH_TOKENS = ["", "\n", "{", "}", "0", "-5", "nan", "1e308", "JOINT", "End Site", "CHANNELS 3", "Frames: ", "x", " "]


@st.composite
def bvh_files(draw: st.DrawFn) -> bytes:
    text = BVH_SEED
    kind = draw(st.sampled_from(["edits", "frames", "frame_time", "lines"]))
    if kind == "frames":
        text = text.replace(
            "Frames: 30", f"Frames: {draw(st.sampled_from(['-5', '0', '1', '2', '29', '31', '1000000000', 'x', '']))}"
        )
    elif kind == "frame_time":
        value = draw(st.one_of(st.floats(width=64).map(repr), st.sampled_from(["0", "-1", "nan", "", "1e-9", "1e9"])))
        text = re.sub(r"Frame Time:.*", f"Frame Time: {value}", text)
    elif kind == "lines":
        lines = text.splitlines()
        for _ in range(draw(st.integers(1, 5))):
            k = draw(st.integers(0, len(lines) - 1))
            op = draw(st.sampled_from(["drop", "dup", "swap"]))
            if op == "drop":
                del lines[k]
            elif op == "dup":
                lines.insert(k, lines[k])
            elif k + 1 < len(lines):
                lines[k], lines[k + 1] = lines[k + 1], lines[k]
        text = "\n".join(lines) + "\n"
    else:
        text = _apply_text_edits(
            text,
            draw(
                st.lists(
                    st.tuples(st.integers(0, len(text)), st.integers(0, 12), st.sampled_from(_BVH_TOKENS)),
                    min_size=1,
                    max_size=8,
                )
            ),
        )
    return text.encode("latin-1", errors="replace")


@st.composite
def bsor_files(draw: st.DrawFn) -> bytes:
    data = bytearray(BSOR_SEED)
    kind = draw(st.sampled_from(["bytes", "times", "poses", "count", "cut"]))
    frames = _HDR.info_end + 5
    if kind == "bytes":
        for _ in range(draw(st.integers(1, 10))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif kind == "times":
        for _ in range(draw(st.integers(1, 4))):
            k = draw(st.integers(0, BSOR_FRAMES - 1))
            struct.pack_into("<f", data, frames + k * FRAME_BYTES, draw(st.floats(width=32)))
    elif kind == "poses":
        for _ in range(draw(st.integers(1, 6))):
            k = draw(st.integers(0, BSOR_FRAMES - 1))
            slot = draw(st.integers(0, 20))
            struct.pack_into("<f", data, frames + k * FRAME_BYTES + 8 + 4 * slot, draw(st.floats(width=32)))
    elif kind == "count":
        struct.pack_into("<i", data, _HDR.info_end + 1, draw(st.integers(-(2**31), 2**31 - 1)))
    else:
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


_TRACK = None


def _seed_arrays() -> dict[str, Any]:
    global _TRACK
    if _TRACK is None:
        from kinest_core.io import read_tracking

        seq = read_tracking(FIX / "vr" / "km_who_is_alyx_fixed_cutout.csv")
        _TRACK = {
            "times": seq.times[:90],
            "head": seq.head[:90],
            "left_wrist": seq.left_wrist[:90],
            "right_wrist": seq.right_wrist[:90],
            "valid": seq.valid[:90],
            "fps": np.float64(60.0),
        }
    return {k: np.array(v) for k, v in _TRACK.items()}


@st.composite
def npz_files(draw: st.DrawFn) -> bytes:
    arrays = _seed_arrays()
    n = arrays["times"].shape[0]
    for _ in range(draw(st.integers(0, 2))):
        name = draw(st.sampled_from(sorted(arrays)))
        how = draw(
            st.sampled_from(
                ["drop", "value", "shape", "dtype", "scalar", "reverse", "constant", "nan", "scale", "bool"]
            )
        )
        a = arrays.get(name)
        if a is None:
            continue
        if how == "drop":
            del arrays[name]
        elif how == "value" and a.size and a.dtype.kind in "biuf":
            flat = a.reshape(-1).astype(np.float64)
            flat[draw(st.integers(0, flat.size - 1))] = draw(st.floats(width=64))
            arrays[name] = flat.reshape(a.shape)
        elif how == "shape":
            arrays[name] = np.resize(a, draw(st.lists(st.integers(0, 6), max_size=3).map(tuple)))
        elif how == "dtype":
            kind = draw(st.sampled_from(["float32", "int8", "uint16", "bool", "complex", "U3"]))
            with np.errstate(invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with contextlib.suppress(ValueError, TypeError):  # e.g. text that is no number
                    arrays[name] = a + 0j if kind == "complex" else a.astype(kind)
        elif how == "scalar":
            arrays[name] = np.float64(draw(st.floats(width=64)))
        elif how == "reverse" and a.ndim:
            arrays[name] = a[::-1].copy()
        elif how == "constant" and a.size:
            arrays[name] = np.full_like(a, a.reshape(-1)[0])
        elif how == "nan" and a.size and a.dtype.kind == "f":
            b = a.copy()
            b.reshape(-1)[draw(st.integers(0, b.size - 1))] = np.nan
            arrays[name] = b
        elif how == "scale" and a.dtype.kind == "f":
            arrays[name] = a * draw(st.sampled_from([0.0, -1.0, 1e-6, 1e6, 3600.0 * 30]))
        elif how == "bool":
            arrays[name] = np.resize(np.array([True, False]), (n, 3))
    buf = io.BytesIO()
    try:
        np.savez_compressed(buf, **arrays)
    except (ValueError, TypeError):
        np.savez(buf, times=np.zeros(0))
    data = bytearray(buf.getvalue())
    if draw(st.integers(0, 4)) == 0 and data:  # damage the zip itself
        for _ in range(draw(st.integers(1, 6))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


FORMATS = {
    "csv": (".csv", csv_files()),
    "bvh": (".bvh", bvh_files()),
    "bsor": (".bsor", bsor_files()),
    "npz": (".npz", npz_files()),
}


def _one(tmp_path: Path, fmt: str, data: bytes) -> Path:
    p = tmp_path / f"fuzz{FORMATS[fmt][0]}"
    p.write_bytes(data)
    check_inspect(p, fmt)
    return p


@SHORT
@given(data=csv_files())
def test_fuzz_csv(tmp_path: Path, data: bytes) -> None:
    _one(tmp_path, "csv", data)


@SHORT
@given(data=bvh_files())
def test_fuzz_bvh(tmp_path: Path, data: bytes) -> None:
    _one(tmp_path, "bvh", data)


@SHORT
@given(data=bsor_files())
def test_fuzz_bsor(tmp_path: Path, data: bytes) -> None:
    _one(tmp_path, "bsor", data)


@SHORT
@given(data=npz_files())
def test_fuzz_npz(tmp_path: Path, data: bytes) -> None:
    _one(tmp_path, "npz", data)


@SHORT
@given(data=st.binary(max_size=2000), ext=st.sampled_from([".csv", ".bvh", ".bsor", ".npz", ".txt", ""]))
def test_fuzz_random_bytes(tmp_path: Path, data: bytes, ext: str) -> None:
    p = tmp_path / f"junk{ext}"
    p.write_bytes(data)
    check_inspect(p, "bytes")


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    return str(save_checkpoint(tmp_path_factory.mktemp("ck") / "tiny", KineST(KineSTConfig.tiny()).eval()))


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=npz_files())
def test_fuzz_npz_reconstruct(tmp_path: Path, tiny_checkpoint: str, data: bytes) -> None:
    """``kinest reconstruct`` on a fuzzed .npz: a finite motion file, or one error line and no file."""
    src = tmp_path / "take.npz"
    src.write_bytes(data)
    out = tmp_path / "motion.npz"
    out.unlink(missing_ok=True)
    code, _out, err = run_cli("reconstruct", str(src), "-o", str(out), "--checkpoint", tiny_checkpoint, "--quiet")
    assert src.read_bytes() == data
    assert not [p for p in tmp_path.iterdir() if ".part" in p.name]
    if code == 0:
        m = Motion.load_npz(str(out))
        assert np.all(np.isfinite(m.joint_positions)) and np.isfinite(m.fps) and m.fps > 0
    else:
        assert code == 1 and len(err) == 1 and "internal error" not in err[0] and not out.exists(), err


def teardown_module() -> None:
    print(f"\nconformance fuzz counts: {dict(sorted(COUNTS.items()))}")


def _long(tmp_path: Path, fmt: str, strategy: st.SearchStrategy[bytes]) -> None:
    @LONG
    @given(data=strategy)
    def run(data: bytes) -> None:
        _one(tmp_path, fmt, data)

    before = COUNTS.copy()
    run()
    done = {k: COUNTS[k] - before[k] for k in COUNTS if k.startswith(fmt)}
    print(f"\nfuzz_long {fmt}: {sum(done.values())} inputs through `kinest inspect`, all clean: {done}")


@pytest.mark.fuzz_long
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_fuzz_long(request: pytest.FixtureRequest, tmp_path: Path, fmt: str) -> None:
    _long_selected(request)
    _long(tmp_path, fmt, FORMATS[fmt][1])
