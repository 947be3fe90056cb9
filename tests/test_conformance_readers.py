# SPDX-License-Identifier: GPL-3.0-or-later
"""Conformance: every tracking format goes through one read path with the same checks and bounds.

Each test builds a broken input of one class (issue 19) and checks the reader refuses it with
one :class:`TrackingFileError` naming the file and the place, or repairs it with a warning
naming the frame, within bounded memory.
"""

from __future__ import annotations

import os
import struct
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from kinest_core.io import TrackingFileError, read_tracking
from kinest_core.io.bsor import FRAME_BYTES, frames_section, parse_header
from kinest_core.types import TrackingSequence

FIX = Path(__file__).resolve().parent / "fixtures" / "vr"
ALYX = FIX / "km_who_is_alyx_fixed_cutout.csv"
BSOR = FIX / "km_boxrr_beatsaber23_first1446.bsor"


def _refused(path: Path, *words: str, **kw: object) -> str:
    with pytest.raises(TrackingFileError) as ei:
        read_tracking(path, **kw)  # type: ignore[arg-type]
    msg = str(ei.value)
    assert str(path) in msg and "\n" not in msg
    for w in words:
        assert w.lower() in msg.lower(), msg
    assert "unexpected problem" not in msg, msg
    return msg


def _codes(seq: TrackingSequence) -> set[str]:
    return {w.code for w in seq.warnings}


def _messages(seq: TrackingSequence, code: str) -> list[str]:
    return [w.message for w in seq.warnings if w.code == code]


@pytest.fixture(scope="module")
def good() -> TrackingSequence:
    return read_tracking(ALYX)


def _npz(path: Path, seq: TrackingSequence, **override: object) -> Path:
    arrays: dict[str, object] = {
        "times": seq.times,
        "head": seq.head,
        "left_wrist": seq.left_wrist,
        "right_wrist": seq.right_wrist,
        "valid": seq.valid,
        "fps": np.float64(seq.fps),
    }
    arrays.update(override)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})  # type: ignore[arg-type]
    return path


# ------------------------------------------------------------------ .npz: the same path as the others


def test_npz_junk_and_empty_are_read_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04" + os.urandom(200))
    _refused(tmp_path / "junk.npz", "not a readable .npz")
    with zipfile.ZipFile(tmp_path / "empty.npz", "w"):
        pass
    _refused(tmp_path / "empty.npz", "lacks", "times")
    (tmp_path / "zero.npz").write_bytes(b"")
    _refused(tmp_path / "zero.npz", "empty")


@pytest.mark.parametrize("fps", [0.0, float("nan"), -60.0, 1e9])
def test_npz_fps_must_be_a_rate(tmp_path: Path, good: TrackingSequence, fps: float) -> None:
    _refused(_npz(tmp_path / "f.npz", good, fps=np.float64(fps)), "'fps'", "not a frame rate")


def test_npz_per_device_fps_scalar_and_2d_times(tmp_path: Path, good: TrackingSequence) -> None:
    _refused(_npz(tmp_path / "a.npz", good, fps=np.array([60.0, 60.0, 72.0])), "'fps' has shape (3,)", "one number")
    _refused(_npz(tmp_path / "b.npz", good, times=np.float64(1.0)), "'times' has shape ()")
    _refused(_npz(tmp_path / "c.npz", good, times=good.times[:, None]), "'times' has shape", "(f,)")
    t2 = np.stack([good.times, good.times], axis=1)
    t2[3, 1] = np.nan
    _refused(_npz(tmp_path / "d.npz", good, times=t2), "'times' has shape")


def test_npz_times_checked_like_every_format(tmp_path: Path, good: TrackingSequence) -> None:
    seq = read_tracking(_npz(tmp_path / "rev.npz", good, times=good.times[::-1].copy()))
    assert "NONMONOTONIC_TIME" in _codes(seq)
    _refused(_npz(tmp_path / "eq.npz", good, times=np.zeros_like(good.times)), "fewer than 2 distinct")
    one = {k: getattr(good, k)[:1] for k in ("times", "head", "left_wrist", "right_wrist", "valid")}
    _refused(_npz(tmp_path / "one.npz", good, **one), "1 frame")
    long_t = good.times.copy()
    long_t[len(long_t) // 2 :] += 30 * 3600.0
    _refused(_npz(tmp_path / "long.npz", good, times=long_t), "span", "12 h")
    nan_t = good.times.copy()
    nan_t[5] = np.nan
    _refused(_npz(tmp_path / "nant.npz", good, times=nan_t), "nan", "frame 5")


def test_npz_matrices_must_be_rigid_and_finite(tmp_path: Path, good: TrackingSequence) -> None:
    scaled = good.left_wrist.copy()
    scaled[10, :3, :3] *= 2.0
    _refused(_npz(tmp_path / "s.npz", good, left_wrist=scaled), "left_wrist", "not a rotation", "frame 10")
    nan = good.head.copy()
    nan[7, 0, 3] = np.nan
    _refused(_npz(tmp_path / "n.npz", good, head=nan), "'head'", "frame 7")
    valid = good.valid.copy()
    valid[7, 0] = False  # NaN where the file says the head was not tracked: fine
    seq = read_tracking(_npz(tmp_path / "ok.npz", good, head=nan, valid=valid))
    assert np.all(np.isfinite(seq.transforms()))


def test_npz_pickled_arrays_are_refused(tmp_path: Path, good: TrackingSequence) -> None:
    p = tmp_path / "obj.npz"
    np.savez(
        p,
        times=np.array([object()] * good.num_frames, dtype=object),
        head=good.head,
        left_wrist=good.left_wrist,
        right_wrist=good.right_wrist,
        allow_pickle=True,
    )
    _refused(p, "'times'", "objects")


def _write_declared_npz(path: Path, frames: int) -> None:
    """A compressed .npz of identity matrices declaring ``frames`` frames, written in pieces."""
    eye = np.tile(np.eye(4), (10_000, 1, 1)).tobytes()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, shape, block in (
            ("times", (frames,), None),
            ("head", (frames, 4, 4), eye),
            ("left_wrist", (frames, 4, 4), eye),
            ("right_wrist", (frames, 4, 4), eye),
        ):
            with zf.open(name + ".npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_1_0(fh, {"descr": "<f8", "fortran_order": False, "shape": shape})
                if block is None:
                    for a in range(0, frames, 10_000):
                        fh.write((np.arange(a, min(frames, a + 10_000)) / 60.0).tobytes())
                else:
                    for a in range(0, frames, 10_000):
                        fh.write(block[: 128 * (min(frames, a + 10_000) - a)])


def test_npz_declaring_millions_of_frames_is_refused_from_its_header(tmp_path: Path) -> None:
    p = tmp_path / "big.npz"
    _write_declared_npz(p, 1_500_000)
    size = p.stat().st_size
    tracemalloc.start()
    try:
        msg = _refused(p, "1500000 frames", "limit")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"\n{size / 1e6:.1f} MB .npz declaring 1.5M frames: refused, peak Python allocation {peak / 1e6:.1f} MB")
    assert peak < 20e6, msg


# ------------------------------------------------------------------ bounds before reading


def test_single_line_csv_refused_in_bounded_memory(tmp_path: Path) -> None:
    p = tmp_path / "oneline.csv"
    with open(p, "wb") as fh:
        fh.write(b"delta_time_ms,head_pos_x,head_pos_y,head_pos_z,")
        fh.write(b"1.0," * 7_500_000)  # 30 MB, no line break
    tracemalloc.start()
    try:
        _refused(p, "line 1", "30.0 MB")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    print(f"\n30 MB single-line CSV refused; peak Python allocation {peak / 1e6:.1f} MB")
    assert peak < 100e6


def test_thousands_of_columns_refused(tmp_path: Path) -> None:
    p = tmp_path / "wide.csv"
    p.write_text(("x," * 50_000 + "\n") * 20)
    _refused(p, "50001 columns", "line 1")


def test_fifo_device_and_links(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    _refused(fifo, "named pipe")
    zero = tmp_path / "zero.csv"
    zero.symlink_to("/dev/zero")
    _refused(zero, "device", "/dev/zero")
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.symlink_to(b)
    b.symlink_to(a)
    _refused(a, "loops")
    broken = tmp_path / "broken.csv"
    broken.symlink_to(tmp_path / "gone.csv")
    _refused(broken, "gone.csv", "does not exist")
    _refused(tmp_path / "missing.csv", "no such file")


# ------------------------------------------------------------------ time: spikes, order, repeats, spans


def _bsor_with_time(k: int, value: float) -> bytes:
    data = bytearray(BSOR.read_bytes())
    header = parse_header(str(BSOR), bytes(data))
    _count, start = frames_section(str(BSOR), bytes(data), header)
    struct.pack_into("<f", data, start + k * FRAME_BYTES, value)
    return bytes(data)


def test_bsor_flipped_frame_time_is_repaired_naming_the_frame(tmp_path: Path) -> None:
    ref = read_tracking(BSOR)
    p = tmp_path / "flip.bsor"
    p.write_bytes(_bsor_with_time(700, 79_000.0))  # one float's exponent flipped: a 22 h take before
    seq = read_tracking(p)
    msgs = _messages(seq, "NONMONOTONIC_TIME")
    assert msgs and "frame 700" in msgs[0], msgs
    assert seq.num_frames == ref.num_frames and seq.info["duration_s"] == pytest.approx(ref.info["duration_s"])


def test_bsor_time_running_backwards_is_reported(tmp_path: Path) -> None:
    p = tmp_path / "back.bsor"
    data = _bsor_with_time(700, 0.001)  # far before its neighbours: a spike, dropped
    p.write_bytes(data)
    assert any("frame 700" in m for m in _messages(read_tracking(p), "NONMONOTONIC_TIME"))


def _alyx_rows() -> tuple[str, list[list[str]]]:
    lines = ALYX.read_text().splitlines()
    return lines[0], [ln.split(",") for ln in lines[1:]]


def _write(p: Path, header: str, rows: list[list[str]]) -> Path:
    p.write_text(header + "\n" + "\n".join(",".join(r) for r in rows) + "\n")
    return p


def test_reversed_delta_time_column_is_nonmonotonic_not_a_long_take(tmp_path: Path) -> None:
    header, rows = _alyx_rows()
    assert header.startswith("delta_time_ms")
    ref = read_tracking(ALYX)
    seq = read_tracking(_write(tmp_path / "rev.csv", header, rows[::-1]))
    assert "NONMONOTONIC_TIME" in _codes(seq)
    assert seq.info["duration_s"] == pytest.approx(ref.info["duration_s"], rel=1e-6)
    assert not {"TIME_SCALE_SUSPECT", "GAPS"} & _codes(seq)


def test_per_row_delta_column_is_still_summed(tmp_path: Path) -> None:
    header, rows = _alyx_rows()
    t = np.array([float(r[0]) for r in rows])
    d = np.diff(t, prepend=t[0] - 14.0)
    for r, v in zip(rows, d, strict=True):
        r[0] = f"{v:.3f}"
    seq = read_tracking(_write(tmp_path / "delta.csv", header, rows))
    assert seq.info["time_base"].startswith("per-row")
    assert abs(seq.info["duration_s"] - (t[-1] - t[0]) / 1000.0) < 0.05


def test_repeated_times_in_the_middle_are_reported(tmp_path: Path) -> None:
    header, rows = _alyx_rows()
    rows[30][0] = rows[29][0]
    seq = read_tracking(_write(tmp_path / "rep.csv", header, rows))
    msgs = _messages(seq, "NONMONOTONIC_TIME")
    assert msgs and "line 32" in msgs[0], msgs


def test_leading_repeats_are_not_a_warning() -> None:
    seq = read_tracking(BSOR)  # starts with five frames at t = 0, as real replays do
    assert seq.info["leading_duplicates"] >= 1 and "NONMONOTONIC_TIME" not in _codes(seq)


def test_a_gap_of_hours_is_refused_naming_both_lines(tmp_path: Path) -> None:
    header, rows = _alyx_rows()
    for r in rows[100:]:
        r[0] = str(float(r[0]) + 3600e3)
    _refused(_write(tmp_path / "gap.csv", header, rows), "jumps", "line 101 and line 102", "split the take")


# ------------------------------------------------------------------ BVH: frame counts and bounds

MOCAP = Path(__file__).resolve().parent / "fixtures" / "mocap" / "02_01_cut.bvh"


def _bvh_with_frames(tmp_path: Path, value: str) -> Path:
    import re

    p = tmp_path / f"frames{value}.bvh"
    p.write_text(re.sub(r"Frames:\s*\d+", f"Frames: {value}", MOCAP.read_text(), count=1))
    return p


def test_bvh_negative_and_zero_frame_counts(tmp_path: Path) -> None:
    _refused(_bvh_with_frames(tmp_path, "-5"), "'Frames: -5'", "not a frame count", "line")
    _refused(_bvh_with_frames(tmp_path, "0"), "'Frames: 0'", "no motion")


def test_bvh_gzip_bomb_and_long_line(tmp_path: Path) -> None:
    import gzip

    bomb = tmp_path / "bomb.bvh.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        fh.write(b"HIERARCHY\n")
        for _ in range(600):
            fh.write(b"\n" * (1 << 20))  # 600 MB of blank lines in a file of about 600 kB
    tracemalloc.start()
    try:
        _refused(bomb, "unpacks to more than")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 600e6
    long = tmp_path / "long.bvh"
    long.write_bytes(b"HIERARCHY\nROOT Hips\n{\n OFFSET " + b"0 " * 10_000_000 + b"\n}\n")
    _refused(long, "line 4", "20.0 MB")


# ------------------------------------------------------------------ motion .npz (jitter, retarget, training)


def test_motion_npz_reader_refuses_broken_files(tmp_path: Path) -> None:
    from kinest_core.types import Motion

    q = np.tile([1.0, 0.0, 0.0, 0.0], (10, 22, 1))
    good = {
        "local_rotations": q,
        "root_translation": np.zeros((10, 3)),
        "joint_positions": np.zeros((10, 22, 3)),
        "rest_offsets": np.zeros((22, 3)),
        "fps": np.float64(60.0),
    }
    np.savez(tmp_path / "ok.npz", **good)
    assert Motion.load_npz(str(tmp_path / "ok.npz")).num_frames == 10
    cases = {
        "missing": ({k: v for k, v in good.items() if k != "joint_positions"}, "lacks"),
        "shape": ({**good, "root_translation": np.zeros((9, 3))}, "'root_translation'"),
        "nan": ({**good, "joint_positions": np.full((10, 22, 3), np.nan)}, "nan"),
        "fps": ({**good, "fps": np.array([60.0, 30.0])}, "'fps'"),
    }
    for name, (arrays, words) in cases.items():
        p = tmp_path / f"{name}.npz"
        np.savez(p, **arrays)
        with pytest.raises(TrackingFileError, match=words) as ei:
            Motion.load_npz(str(p))
        assert str(p) in str(ei.value)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04" + os.urandom(100))
    with pytest.raises(TrackingFileError, match="not a readable motion"):
        Motion.load_npz(str(tmp_path / "junk.npz"))
