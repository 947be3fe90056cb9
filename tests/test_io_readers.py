# SPDX-License-Identifier: GPL-3.0-or-later
"""Readers: the real layouts, column aliases, time bases, gaps, BVH, .bsor, .npz and resampling."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from kinest_core.io import TrackingFileError, inspect_report, read_raw, read_tracking
from kinest_core.rotations import geodesic_angle, quat_to_matrix
from kinest_core.types import TrackingSequence

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures" / "vr"
EXAMPLE = ROOT / "examples" / "xror_sample1_cut.bsor"
SUSPECT = {"UNITS_SUSPECT", "TIME_SCALE_SUSPECT", "HANDEDNESS_SUSPECT", "ROTATION_SUSPECT"}


def codes(seq: TrackingSequence) -> set[str]:
    return {w.code for w in seq.warnings}


def _table(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(path.read_text().splitlines()))
    return rows[0], rows[1:]


def _write(path: Path, header: list[str], rows: list[list[str]], delim: str = ",") -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delim, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    path.write_text(buf.getvalue())
    return path


def test_bowling_fixed_is_clean_and_60fps() -> None:
    seq = read_tracking(FIX / "km_liebers_labstudy21_bowling_fixed.csv")
    assert seq.fps == 60.0 and np.allclose(np.diff(seq.times), 1 / 60)
    assert seq.head.shape == (seq.num_frames, 4, 4) and seq.valid.all()
    assert not codes(seq), [w.message for w in seq.warnings]
    i = seq.info
    assert i["units"] == "cm" and i["convention"] == "openxr" and i["handedness"] == "right"
    assert i["original_samples"] == 517 and abs(i["duration_s"] - 7.185) < 1e-6
    assert abs(i["original_rate_hz"] - 71.4) < 1.0
    assert 1.5 < i["body_height_m"] < 2.1
    # floor-level tracking space; recentred horizontally on the head
    assert i["floor_level_m"] == 0.0 and abs(np.median(seq.head[:, 0, 3])) < 0.05
    assert np.allclose(np.linalg.det(seq.head[:, :3, :3]), 1.0)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("km_liebers_labstudy21_bowling_negative_units.csv", {"UNITS_SUSPECT"}),
        ("km_liebers_labstudy21_bowling_negative_time.csv", {"TIME_SCALE_SUSPECT"}),
        ("km_liebers_labstudy21_bowling_negative_coordinate_system.csv", {"HANDEDNESS_SUSPECT"}),
        ("km_liebers_labstudy21_bowling_negative_rotations.csv", {"ROTATION_SUSPECT"}),
        ("km_liebers_labstudy21_bowling_negative_coordinate_mapping.csv", {"ROTATION_SUSPECT"}),
        ("km_liebers_labstudy21_bowling_fixed.csv", set()),
        ("km_boxrr_beatsaber23_fixed.csv", set()),
        ("km_boxrr_beatsaber23_first1446.bsor", set()),
        ("km_who_is_alyx_fixed_cutout.csv", set()),
        ("km_liebers_beatsaber23_fixed.csv", set()),
        ("km_moore_cross_domain23_first300.csv", set()),
        ("mlt_examples_data_first300.csv", set()),
    ],
)
def test_expected_codes(name: str, expected: set[str]) -> None:
    seq = read_tracking(FIX / name)
    assert codes(seq) & SUSPECT == expected, [w.message for w in seq.warnings]


def test_example_bsor_reads_clean_and_is_anonymised() -> None:
    seq = read_tracking(EXAMPLE)
    assert not codes(seq)
    assert seq.info["format"] == "bsor" and seq.info["convention"] == "unity" and seq.info["units"] == "m"
    assert seq.info["device_family"] == "index"
    assert abs(seq.info["duration_s"] - 25.0) < 0.1 and seq.num_frames == 1499
    raw = read_raw(str(EXAMPLE))
    assert raw.num_samples == 2250
    data = EXAMPLE.read_bytes()
    assert b"vcninc" not in data and b"76561198082405957" not in data
    assert "player_name" not in seq.info["bsor_header"]


def test_bsor_frame_zero_is_dropped() -> None:
    raw = read_raw(str(FIX / "km_boxrr_beatsaber23_first1446.bsor"))
    assert not raw.valid[0].any() and raw.valid[1:].all()
    seq = read_tracking(FIX / "km_boxrr_beatsaber23_first1446.bsor")
    assert seq.info["zero_frames"] == 1 and seq.valid.all()


def test_mlt_aliases_and_wxyz_columns() -> None:
    seq = read_tracking(FIX / "mlt_examples_data_first300.csv")
    i = seq.info
    assert i["time_column"] == "timestamp" and i["time_units"] == "ms"
    assert "hmd_rot_w" in i["device_columns"]["head"] and "left_controller_pos_x" in i["device_columns"]["left"]
    assert i["units"] == "cm" and i["quat_norm_range"][0] < 0.999  # two-decimal quaternions, renormalised


def test_extra_index_column_is_ignored() -> None:
    seq = read_tracking(FIX / "km_moore_cross_domain23_first300.csv")
    assert seq.info["time_column"] == "delta_time_ms" and "Unnamed: 0" in seq.info["columns"]
    assert not codes(seq)


def test_nan_gaps_and_missing_hands(tmp_path: Path) -> None:
    seq = read_tracking(FIX / "km_liebers_beatsaber23_fixed.csv")
    gaps = [w for w in seq.warnings if w.code == "GAPS"]
    assert {w.device for w in gaps} == {"left_wrist", "right_wrist"}
    assert seq.valid[:, 0].all() and not seq.valid[:10, 1].any() and seq.valid[200, 1]
    assert all(w.frames is not None for w in gaps)
    assert np.all(np.isfinite(seq.left_wrist)) and np.all(np.isfinite(seq.right_wrist))
    # a take with no hand columns at all: hands reported missing, reconstruction input still finite
    header, rows = _table(FIX / "km_who_is_alyx_fixed_cutout.csv")
    keep = [k for k, h in enumerate(header) if not h.startswith(("left", "right"))]
    p = _write(tmp_path / "head_only.csv", [header[k] for k in keep], [[r[k] for k in keep] for r in rows])
    seq = read_tracking(p)
    assert [w.device for w in seq.warnings if w.code == "DEVICE_MISSING"] == ["left_wrist", "right_wrist"]
    assert not seq.valid[:, 1:].any() and np.all(np.isfinite(seq.transforms()))


def test_short_gap_is_interpolated_and_valid(tmp_path: Path) -> None:
    header, rows = _table(FIX / "km_who_is_alyx_fixed_cutout.csv")
    lcols = [k for k, h in enumerate(header) if h.startswith("left_hand")]
    for r in rows[100:103]:  # ~0.1 s
        for k in lcols:
            r[k] = ""
    seq = read_tracking(_write(tmp_path / "gap.csv", header, rows))
    assert "GAPS" not in codes(seq) and seq.valid.all()
    assert seq.info["interpolated_gaps"]["left_wrist"]


def test_w_columns_at_the_end_and_reordered(tmp_path: Path) -> None:
    header, rows = _table(FIX / "km_liebers_labstudy21_bowling_fixed.csv")
    ws = [k for k, h in enumerate(header) if h.endswith("_rot_w")]
    order = [k for k in range(len(header)) if k not in ws] + ws
    p = _write(tmp_path / "wlast.csv", [header[k] for k in order], [[r[k] for k in order] for r in rows])
    a = read_tracking(FIX / "km_liebers_labstudy21_bowling_fixed.csv")
    b = read_tracking(p)
    assert np.allclose(a.transforms(), b.transforms())


def test_time_in_seconds_semicolons_and_decimal_commas(tmp_path: Path) -> None:
    header, rows = _table(FIX / "km_who_is_alyx_fixed_cutout.csv")
    header2 = ["time"] + header[1:]
    rows2 = [[f"{float(r[0]) / 1000:.4f}".replace(".", ",")] + [c.replace(".", ",") for c in r[1:]] for r in rows]
    p = _write(tmp_path / "semi.csv", header2, rows2, delim=";")
    a = read_tracking(FIX / "km_who_is_alyx_fixed_cutout.csv")
    b = read_tracking(p)
    assert b.info["time_units"] == "s" and b.info["delimiter"] == ";"
    assert np.allclose(a.transforms(), b.transforms(), atol=1e-9)


def test_absolute_epoch_timestamps(tmp_path: Path) -> None:
    header, rows = _table(FIX / "km_who_is_alyx_fixed_cutout.csv")
    for unit, scale in (("timestamp", 1), ("timestamp_ns", 1_000_000)):
        rows2 = [[str(int((1_700_000_000_000 + float(r[0])) * scale))] + r[1:] for r in rows]
        p = _write(tmp_path / f"{unit}.csv", [unit] + header[1:], rows2)
        seq = read_tracking(p)
        assert seq.info["time_base"].startswith("absolute")
        assert seq.info["time_units"] == ("ms" if unit == "timestamp" else "ns")
        assert abs(seq.info["duration_s"] - 9.965) < 1e-3


def test_per_row_delta_times(tmp_path: Path) -> None:
    header, rows = _table(FIX / "km_who_is_alyx_fixed_cutout.csv")
    t = np.array([float(r[0]) for r in rows])
    d = np.concatenate([[0.0], np.diff(t)])
    p = _write(
        tmp_path / "deltas.csv", ["delta_time"] + header[1:], [[f"{x:g}"] + r[1:] for x, r in zip(d, rows, strict=True)]
    )
    seq = read_tracking(p, resample_fps=None)
    assert seq.info["time_base"] == "per-row deltas (summed)" and seq.info["time_units"] == "ms"
    assert np.allclose(seq.times, (t - t[0]) / 1000)


def test_preamble_and_units_in_names(tmp_path: Path) -> None:
    header, rows = _table(FIX / "km_who_is_alyx_fixed_cutout.csv")
    named = ["Time (ms)"] + [f"{h} [m]" if "_pos_" in h else h for h in header[1:]]
    arr = [
        [r[0]] + [f"{float(c) / 100:.6f}" if "_pos_" in h else c for c, h in zip(r[1:], header[1:], strict=True)]
        for r in rows
    ]
    p = _write(tmp_path / "named.csv", named, arr)
    p.write_text("Recorded with SomeTool 1.2\nsubject: 7\n" + p.read_text())
    seq = read_tracking(p)
    a = read_tracking(FIX / "km_who_is_alyx_fixed_cutout.csv")
    assert seq.info["units"] == "m" and seq.info["units_in_column_names"] == "m"
    assert seq.info["time_units"] == "ms" and not codes(seq)
    assert np.allclose(a.transforms(), seq.transforms(), atol=1e-6)


def test_explicit_column_mapping(tmp_path: Path) -> None:
    header, rows = _table(FIX / "km_who_is_alyx_fixed_cutout.csv")
    new = [f"c{k}" for k in range(len(header))]
    p = _write(tmp_path / "anon.csv", new, rows)
    with pytest.raises(TrackingFileError, match="no head position"):
        read_tracking(p)
    mapping = {("time" if h == "delta_time_ms" else h.replace("_hand", "")): f"c{k}" for k, h in enumerate(header)}
    b = read_tracking(p, columns=mapping, units="cm", time_units="ms")
    a = read_tracking(FIX / "km_who_is_alyx_fixed_cutout.csv")
    assert np.allclose(a.transforms(), b.transforms())


def test_quat_order_override(tmp_path: Path) -> None:
    """Labels say xyzw but the numbers are w,x,y,z: quat_order='wxyz' reads them right."""
    header, rows = _table(FIX / "km_who_is_alyx_fixed_cutout.csv")  # x,y,z,w columns
    for r in rows:
        for base in (4, 11, 18):
            x, y, z, w = r[base : base + 4]
            r[base : base + 4] = [w, x, y, z]
    p = _write(tmp_path / "mislabelled.csv", header, rows)
    wrong = read_tracking(p)
    assert "ROTATION_SUSPECT" in codes(wrong)
    rot_warning = next(w for w in wrong.warnings if w.code == "ROTATION_SUSPECT")
    assert "quat_order='wxyz'" in rot_warning.text()
    assert [(f.option, f.value) for f in rot_warning.fixes] == [("quat_order", "wxyz")]
    right = read_tracking(p, quat_order="wxyz")
    a = read_tracking(FIX / "km_who_is_alyx_fixed_cutout.csv")
    assert np.allclose(a.transforms(), right.transforms()) and not codes(right)


def test_euler_columns(tmp_path: Path) -> None:
    from kinest_core.rotations import matrix_to_euler

    header, rows = _table(FIX / "km_who_is_alyx_fixed_cutout.csv")
    arr = np.array(rows, dtype=float)
    out_h = ["delta_time_ms"]
    cols = [arr[:, 0]]
    for dev, base in (("head", 1), ("left_hand", 8), ("right_hand", 15)):
        q = arr[:, base + 3 : base + 7][:, [3, 0, 1, 2]]
        eul = matrix_to_euler(quat_to_matrix(q / np.linalg.norm(q, axis=1, keepdims=True)), "xyz", degrees=True)
        out_h += [f"{dev}_pos_{c}" for c in "xyz"] + [f"{dev}_euler_{c}" for c in "xyz"]
        cols += [arr[:, base + k] for k in range(3)] + [eul[:, k] for k in range(3)]
    p = _write(tmp_path / "euler.csv", out_h, np.stack(cols, 1).astype(str).tolist())
    a = read_tracking(FIX / "km_who_is_alyx_fixed_cutout.csv")
    b = read_tracking(p)
    assert "Euler" in b.info["rotations"]["head"]
    assert np.degrees(geodesic_angle(a.head[:, :3, :3], b.head[:, :3, :3])).max() < 0.01


def test_resample_slerp_and_original_times() -> None:
    seq = read_tracking(FIX / "km_who_is_alyx_fixed_cutout.csv", resample_fps=None)
    assert seq.num_frames == 340 and np.allclose(seq.times, seq.info["original_times"])
    seq60 = read_tracking(FIX / "km_who_is_alyx_fixed_cutout.csv")
    # a 60 fps frame between two samples lies on the geodesic between them
    t = seq.times
    k = 50
    tm = 0.5 * (t[k] + t[k + 1])
    j = int(np.argmin(np.abs(seq60.times - tm)))
    a, b, m = seq.head[k, :3, :3], seq.head[k + 1, :3, :3], seq60.head[j, :3, :3]
    total = geodesic_angle(a, b)
    assert abs(geodesic_angle(a, m) + geodesic_angle(m, b) - total) < 1e-6


def test_npz_round_trip(tmp_path: Path) -> None:
    seq = read_tracking(FIX / "km_who_is_alyx_fixed_cutout.csv")
    p = tmp_path / "t.npz"
    seq.save_npz(str(p))
    back = read_tracking(p)
    assert back.info["format"] == "npz" and np.allclose(back.transforms(), seq.transforms())
    assert abs(back.info["body_height_m"] - seq.info["body_height_m"]) < 0.05
    json.dumps(inspect_report(back))
    slow = read_tracking(p, resample_fps=30.0)
    assert slow.fps == 30.0 and np.allclose(slow.transforms(), seq.transforms()[::2], atol=1e-9)
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(TrackingFileError, match="bad.npz"):
        read_tracking(tmp_path / "bad.npz")
    np.savez(tmp_path / "wrong.npz", times=np.arange(3.0))
    with pytest.raises(TrackingFileError, match="lacks"):
        read_tracking(tmp_path / "wrong.npz")


def _smpl_motion(frames: int = 90) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from kinest_core.rotations import axis_angle_to_quat
    from kinest_core.skeleton import Skeleton

    rng = np.random.default_rng(3)
    t = np.arange(frames)[:, None, None] / 30.0
    aa = 0.3 * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6, (1, 22, 3))) * rng.uniform(0, 1, (1, 22, 3))
    q = axis_angle_to_quat(aa)
    root = np.zeros((frames, 3))
    root[:, 0] = np.linspace(0, 0.5, frames)
    return q, root, Skeleton.neutral(1.75).rest_offsets


def test_full_body_bvh_gives_joint_poses(tmp_path: Path) -> None:
    from kinest_core.io.bvh import write_motion_bvh
    from kinest_core.skeleton import HEAD, LEFT_WRIST, RIGHT_WRIST, forward_kinematics

    q, root, rest = _smpl_motion()
    p = tmp_path / "body.bvh"
    write_motion_bvh(str(p), q, root, rest, fps=30.0)
    seq = read_tracking(p, resample_fps=None, recenter=False, floor=0.0)
    assert seq.info["bvh_kind"].startswith("full-body") and seq.info["device_family"] == "joints"
    assert seq.info["units"] == "cm"
    glob_r, pos = forward_kinematics(quat_to_matrix(q), rest, root)
    for j, m in ((HEAD, seq.head), (LEFT_WRIST, seq.left_wrist), (RIGHT_WRIST, seq.right_wrist)):
        assert np.abs(m[:, :3, 3] - pos[:, j]).max() < 1e-4
        assert np.degrees(geodesic_angle(m[:, :3, :3], glob_r[:, j])).max() < 0.01
    assert not (codes(seq) & SUSPECT)
    assert abs(seq.info["body_height_m"] - 1.75) < 0.1


def test_tracking_bvh_with_head_and_hands(tmp_path: Path) -> None:
    lines = ["HIERARCHY", "ROOT Origin", "{", "  OFFSET 0 0 0", "  CHANNELS 0"]
    for name in ("Head", "LeftHand", "RightHand"):
        lines += [
            f"  JOINT {name}",
            "  {",
            "    OFFSET 0 0 0",
            "    CHANNELS 6 Xposition Yposition Zposition Yrotation Xrotation Zrotation",
        ]
        lines += ["    End Site", "    {", "      OFFSET 0 0 1", "    }", "  }"]
    lines += ["}", "MOTION", "Frames: 120", "Frame Time: 0.0111111"]
    for f in range(120):
        yaw = 20 * np.sin(f / 20)
        head = f"{0.01 * f:.4f} 165 0 {yaw:.3f} -5 0"
        left = f"20 120 30 {yaw:.3f} 0 0"
        right = f"-20 {120 + 5 * np.sin(f / 10):.3f} 30 {yaw:.3f} 0 0"
        lines.append(f"{head} {left} {right}")
    p = tmp_path / "tracking.bvh"
    p.write_text("\n".join(lines) + "\n")
    seq = read_tracking(p)
    assert seq.info["bvh_kind"].startswith("tracking") and seq.info["units"] == "cm"
    assert seq.info["bvh_joints"] == {"head": "Head", "left": "LeftHand", "right": "RightHand"}
    assert not (codes(seq) & SUSPECT), [w.message for w in seq.warnings]
    assert abs(seq.info["original_rate_hz"] - 90.0) < 0.1


def test_inspect_report_is_json() -> None:
    seq = read_tracking(FIX / "km_liebers_labstudy21_bowling_negative_units.csv")
    rep = inspect_report(seq)
    text = json.dumps(rep)
    back = json.loads(text)
    for key in (
        "format",
        "devices",
        "frames",
        "original_rate_hz",
        "duration_s",
        "units",
        "convention",
        "handedness",
        "up_axis",
        "quat_order",
        "body_height_m",
        "warnings",
    ):
        assert key in back, key
    assert {"code": "UNITS_SUSPECT"}.items() <= back["warnings"][0].items()
    assert "original_times" not in back
