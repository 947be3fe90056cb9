# SPDX-License-Identifier: GPL-3.0-or-later
"""CSV tracking files: columns found by name, whatever their order, delimiter or time base.

Handles the Kinematic-Maze "fixed" layout (``delta_time_ms``, ``head_pos_x``, ``left_hand_rot_w``...
in cm), the Motion-Learning-Toolbox layout (``timestamp``, ``hmd_*``, ``left_controller_*``),
extra index or time columns, quaternion components in any column order (``w`` last in the row
included), Euler angles where a device has no ``w`` column, and blank cells as gaps.
"""

from __future__ import annotations

import csv
import functools
import re
from typing import Any

import numpy as np
from numpy.typing import NDArray

from kinest_core.fixes import Fix
from kinest_core.io.errors import TrackingFileError
from kinest_core.io.files import read_text_bytes
from kinest_core.io.raw import DEVICE_KEYS, MAX_ABS_COORD, MAX_SAMPLES, RawTracking
from kinest_core.rotations import euler_to_matrix, matrix_to_quat

#: Accepted spellings of each device in column names (after lower-casing and ``_`` separators).
DEVICE_ALIASES: dict[str, tuple[str, ...]] = {
    "head": ("head", "hmd", "headset", "camera", "eye", "eyes"),
    "left": (
        "left_hand",
        "left_controller",
        "lefthand",
        "leftcontroller",
        "left",
        "l_hand",
        "lhand",
        "hand_left",
        "controller_left",
        "left_wrist",
        "l",
    ),
    "right": (
        "right_hand",
        "right_controller",
        "righthand",
        "rightcontroller",
        "right",
        "r_hand",
        "rhand",
        "hand_right",
        "controller_right",
        "right_wrist",
        "r",
    ),
}
_POS_WORDS = ("pos", "position", "loc", "location", "translation", "p", "t")
_ROT_WORDS = ("rot", "rotation", "quat", "quaternion", "q", "ori", "orientation")
_EULER_WORDS = ("euler", "eul", "angles", "angle")
#: Time column names in order of preference, with the unit their name states (None = detect).
TIME_COLUMNS: tuple[tuple[str, str | None], ...] = (
    ("delta_time_ms", "ms"),
    ("time_ms", "ms"),
    ("timestamp_ms", "ms"),
    ("t_ms", "ms"),
    ("time_s", "s"),
    ("delta_time_s", "s"),
    ("timestamp_s", "s"),
    ("t_s", "s"),
    ("time_us", "us"),
    ("timestamp_us", "us"),
    ("time_ns", "ns"),
    ("timestamp_ns", "ns"),
    ("timestamp", None),
    ("time", None),
    ("delta_time", None),
    ("t", None),
    ("seconds", "s"),
    ("secs", "s"),
    ("milliseconds", "ms"),
)
TIME_UNITS: dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
#: Most columns a header may have (head + hands need 22; exports with eye, finger or body data a few hundred).
MAX_COLUMNS = 1024
_MISSING = {"", "nan", "na", "n/a", "null", "none", "-"}


def _normalise(name: str) -> str:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name.strip().strip('"').strip())
    s = re.sub(r"[^0-9a-zA-Z]+", "_", s).strip("_").lower()
    return s


def _build_patterns() -> list[tuple[re.Pattern[str], str, str]]:
    pats: list[tuple[re.Pattern[str], str, str]] = []
    kinds = (("pos", _POS_WORDS), ("rot", _ROT_WORDS), ("euler", _EULER_WORDS))
    for dev, aliases in DEVICE_ALIASES.items():
        dev_re = "|".join(sorted((re.escape(a) for a in aliases), key=len, reverse=True))
        for kind, words in kinds:
            kind_re = "|".join(sorted(words, key=len, reverse=True))
            pats.append((re.compile(rf"^(?:{dev_re})_?(?:{kind_re})_?([xyzw])$"), dev, kind))
    return pats


_PATTERNS = _build_patterns()


_UNIT_SUFFIX = re.compile(
    r"_(m|cm|mm|meters?|metres?|centimeters?|centimetres?|millimeters?|millimetres?|deg|degrees?|rad)$"
)
_UNIT_WORDS = {"m": "m", "cm": "cm", "mm": "mm"}


def column_unit(name: str) -> str | None:
    """A unit written into a column name (``head_pos_x (cm)`` -> ``cm``), if any."""
    m = _UNIT_SUFFIX.search(_normalise(name))
    if not m:
        return None
    word = m.group(1)
    if word.startswith(("meter", "metre")):
        return "m"
    if word.startswith("centi"):
        return "cm"
    if word.startswith("milli"):
        return "mm"
    return _UNIT_WORDS.get(word)


@functools.lru_cache(maxsize=4096)
def classify_column(name: str) -> tuple[str, str, str] | None:
    """``'left_controller_rot_w'`` -> ``('left', 'rot', 'w')``; None for columns we do not use."""
    norm = _UNIT_SUFFIX.sub("", _normalise(name))
    for pat, dev, kind in _PATTERNS:
        m = pat.match(norm)
        if m:
            return dev, kind, m.group(1)
    return None


def _sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda k: counts[k])
    if counts[best] == 0:
        return " "
    return best


def _decode(path: str, raw: bytes) -> str:
    if b"\x00" in raw[:65536]:
        raise TrackingFileError(
            path, "holds binary data (NUL bytes), not CSV text", hint="pass a CSV, BVH, .bsor or .npz tracking file"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise TrackingFileError(
            path,
            f"byte {exc.start} is not UTF-8 text",
            where=f"line {line}",
            hint="save the CSV as UTF-8 (plain ASCII numbers and names)",
        ) from exc


def read_csv_tracking(
    path: str,
    *,
    columns: dict[str, str] | None = None,
    quat_order: str = "auto",
    time_units: str = "auto",
    euler_order: str = "xyz",
    euler_degrees: bool | None = None,
    input_fps: float | None = None,
) -> RawTracking:
    """Read a CSV into :class:`RawTracking` (source axes and units; see the module doc).

    ``columns`` maps canonical names (``time``, ``head_pos_x``, ``left_rot_w``... with devices
    ``head``/``left``/``right``) to the file's column names, for headers detection cannot read.
    ``quat_order`` "xyzw"/"wxyz" reads each device's four rotation columns in file order in
    that order, ignoring their labels (for files whose labels are wrong).
    """
    text = _decode(path, read_text_bytes(path))
    lines = text.splitlines()
    # Header: the first line naming head columns (tools write preambles), else the first non-comment line.
    candidates = [k for k in range(min(len(lines), 200)) if lines[k].strip() and not lines[k].lstrip().startswith("#")][
        :50
    ]
    if not candidates:
        raise TrackingFileError(path, "holds no header and no data", hint="re-export the recording")
    hdr_idx = candidates[0]
    for k in candidates:
        if len(lines[k]) > 64 * MAX_COLUMNS:  # longer than any header we could read
            continue
        dl = _sniff_delimiter(lines[k])
        cells = lines[k].split() if dl == " " else next(csv.reader([lines[k]], delimiter=dl), [])
        if len(cells) <= MAX_COLUMNS and sum(1 for c in cells if classify_column(c) is not None) >= 3:
            hdr_idx = k
            break
    delim = _sniff_delimiter(lines[hdr_idx])
    header_line = lines[hdr_idx]
    if delim == " ":
        header = header_line.split()
    else:
        header = next(csv.reader([header_line], delimiter=delim))
    header = [h.strip().strip('"') for h in header]
    ncols = len(header)
    if ncols > MAX_COLUMNS:
        raise TrackingFileError(
            path,
            f"the header has {ncols} columns, above the {MAX_COLUMNS} a tracking table can need",
            where=f"line {hdr_idx + 1}",
            hint="check the delimiter, or keep only the time, head and hand columns",
        )
    info: dict[str, Any] = {"delimiter": delim, "columns": header}

    # --- map columns ---
    slots: dict[tuple[str, str, str], int] = {}
    if columns:
        lookup = {h: i for i, h in enumerate(header)}
        for canon, filecol in columns.items():
            if filecol not in lookup:
                raise TrackingFileError(
                    path, f"column {filecol!r} (given for {canon!r}) is not in the header", where=f"line {hdr_idx + 1}"
                )
            if canon == "time":
                continue
            key = classify_column(canon)
            if key is None:
                raise ValueError(
                    f"columns: {canon!r} is not a canonical name; use time, <dev>_pos_<x|y|z>, <dev>_rot_<w|x|y|z> "
                    "with dev in head, left, right"
                )
            slots[key] = lookup[filecol]
    for i, h in enumerate(header):
        key = classify_column(h)
        if key is not None and key not in slots and i not in slots.values():
            slots[key] = i
    time_col: int | None = None
    time_unit: str | None = None
    norm_header = [_normalise(h) for h in header]
    if columns and "time" in columns:
        time_col = header.index(columns["time"])
        time_unit = dict(TIME_COLUMNS).get(_normalise(columns["time"]))
    else:
        for name, unit in TIME_COLUMNS:
            if name in norm_header:
                time_col = norm_header.index(name)
                time_unit = unit
                break
    if time_units != "auto":
        if time_units not in TIME_UNITS:
            raise ValueError(f"time_units {time_units!r}: choose auto, s, ms, us or ns")
        time_unit = time_units

    present = {dev for (dev, kind, _c) in slots if kind == "pos"}
    if "head" not in present:
        raise TrackingFileError(
            path,
            "no head position columns found (looked for head_pos_x, hmd_pos_x, ...)",
            where=f"line {hdr_idx + 1}",
            hint="name them with {columns}",
            fixes=(Fix("columns", {"head_pos_x": "COLUMN", "head_pos_y": "COLUMN", "head_pos_z": "COLUMN"}),),
        )
    for dev in present:
        miss = [c for c in "xyz" if (dev, "pos", c) not in slots]
        if miss:
            raise TrackingFileError(
                path, f"{dev} position lacks column(s) for {', '.join(miss)}", where=f"line {hdr_idx + 1}"
            )

    # --- parse rows ---
    data_lines = lines[hdr_idx + 1 :]
    if len(data_lines) > MAX_SAMPLES:
        raise TrackingFileError(path, f"{len(data_lines)} rows is above the {MAX_SAMPLES} limit", hint="split the take")
    used = sorted(set(slots.values()) | ({time_col} if time_col is not None else set()))
    rows: list[list[float]] = []
    line_nos: list[int] = []
    decimal_comma = delim == ";"
    reader = csv.reader(data_lines, delimiter=delim) if delim != " " else (ln.split() for ln in data_lines)
    for k, cells in enumerate(reader):
        line_no = hdr_idx + 2 + k
        if not cells or all(not c.strip() for c in cells):
            continue
        if cells[0].lstrip().startswith("#"):
            continue
        if len(cells) != ncols:
            if len(cells) < ncols and k == len(data_lines) - 1:
                raise TrackingFileError(
                    path,
                    f"the last row has {len(cells)} fields, the header {ncols}: the file looks truncated",
                    where=f"line {line_no}",
                    hint="re-export the recording or delete the broken last line",
                )
            raise TrackingFileError(
                path,
                f"row has {len(cells)} fields, the header has {ncols}",
                where=f"line {line_no}",
                hint="check the delimiter and that every row has all columns",
            )
        vals = []
        for ci in used:
            cell = cells[ci].strip()
            if cell.lower() in _MISSING:
                vals.append(np.nan)
                continue
            if decimal_comma:
                cell = cell.replace(",", ".")
            try:
                v = float(cell)
            except ValueError:
                raise TrackingFileError(
                    path,
                    f"column {header[ci]!r} holds {cell[:40]!r}, not a number",
                    where=f"line {line_no}",
                    hint="fix the cell; leave it blank to mark a gap",
                ) from None
            if not np.isfinite(v) or (abs(v) > MAX_ABS_COORD and ci != time_col) or abs(v) > 1e19:
                raise TrackingFileError(
                    path,
                    f"column {header[ci]!r} holds {cell[:40]!r}, not a value a tracker records",
                    where=f"line {line_no}",
                    hint="fix the cell; leave it blank (or NaN) to mark a gap",
                )
            vals.append(v)
        rows.append(vals)
        line_nos.append(line_no)
    if not rows:
        raise TrackingFileError(path, "has a header but no data rows", hint="re-export the recording")
    arr = np.asarray(rows, dtype=np.float64)
    col_of = {ci: j for j, ci in enumerate(used)}
    n = arr.shape[0]
    info["rows"] = n

    # --- time ---
    if time_col is not None:
        t = arr[:, col_of[time_col]]
        bad = np.flatnonzero(~np.isfinite(t))
        if bad.size:
            raise TrackingFileError(
                path,
                f"time column {header[time_col]!r} is blank",
                where=f"line {line_nos[int(bad[0])]}",
                hint="every row needs a time",
            )
        unit_from = "column name"
        steps = np.diff(t)
        per_row = "delta" in norm_header[time_col] and _looks_per_row(t, steps)
        if time_unit is None:
            time_unit = _detect_time_unit(np.cumsum(t) if per_row else t)
            unit_from = "sample spacing"
        scale = TIME_UNITS[time_unit]
        if per_row:
            times = np.concatenate([[0.0], np.cumsum(t[1:])]) * scale
            info["time_base"] = "per-row deltas (summed)"
        else:
            times = (t - t[0]) * scale
            if "delta" in norm_header[time_col]:
                info["time_base"] = "time since the first row (cumulative, despite the 'delta' name)"
            else:
                info["time_base"] = "absolute (shifted to start at 0)" if abs(t[0]) * scale > 1.0 else "relative"
        info["time_offset"] = float(t[0])
        info["time_column"] = header[time_col]
        info["time_units"] = time_unit
        info["time_units_from"] = unit_from
    else:
        rate = float(input_fps) if input_fps else 60.0
        times = np.arange(n, dtype=np.float64) / rate
        info["time_column"] = None
        info["time_units"] = None
        info["time_assumed_fps"] = rate

    # --- poses ---
    positions = np.full((n, 3, 3), np.nan)
    quats = np.full((n, 3, 4), np.nan)
    rot_info: dict[str, str] = {}
    for d, dev in enumerate(DEVICE_KEYS):
        if dev not in present:
            continue
        for a, c in enumerate("xyz"):
            positions[:, d, a] = arr[:, col_of[slots[(dev, "pos", c)]]]
        rcols = {c: slots[(dev, "rot", c)] for c in "wxyz" if (dev, "rot", c) in slots}
        ecols = {c: slots[(dev, "euler", c)] for c in "xyz" if (dev, "euler", c) in slots}
        if len(rcols) == 4:
            file_order = "".join(sorted(rcols, key=lambda c: rcols[c]))
            info.setdefault("rotation_file_order", {})[dev] = file_order
            if quat_order in ("xyzw", "wxyz"):
                ordered = sorted(rcols.values())
                comp = {quat_order[k]: ordered[k] for k in range(4)}
                rot_info[dev] = f"quaternion, read as {quat_order} in file column order"
            else:
                comp = rcols
                rot_info[dev] = "quaternion, components by column name"
            for k, c in enumerate("wxyz"):
                quats[:, d, k] = arr[:, col_of[comp[c]]]
        elif len(rcols) == 3 or len(ecols) == 3:
            src = rcols if len(rcols) == 3 else ecols
            if set(src) != {"x", "y", "z"}:
                raise TrackingFileError(path, f"{dev} rotation has columns {sorted(src)}: cannot tell the rotation")
            ang = np.stack([arr[:, col_of[src[c]]] for c in "xyz"], axis=-1)
            deg = euler_degrees
            if deg is None:
                deg = bool(np.nanmax(np.abs(ang), initial=0.0) > 2 * np.pi + 1e-6)
            ok = np.all(np.isfinite(ang), axis=-1)
            q = np.full((n, 4), np.nan)
            if ok.any():
                q[ok] = matrix_to_quat(euler_to_matrix(ang[ok], euler_order, degrees=deg))
            quats[:, d] = q
            rot_info[dev] = f"Euler angles '{euler_order}' in {'degrees' if deg else 'radians'}"
        elif rcols or ecols:
            raise TrackingFileError(
                path,
                f"{dev} rotation has {len(rcols) or len(ecols)} column(s); need 4 (quaternion) or 3 (Euler)",
                where=f"line {hdr_idx + 1}",
            )
        else:
            quats[:, d] = (1.0, 0.0, 0.0, 0.0)
            rot_info[dev] = "none in file (identity assumed)"
    info["rotations"] = rot_info
    valid = np.all(np.isfinite(positions), axis=-1) & np.all(np.isfinite(quats), axis=-1)
    for d, dev in enumerate(DEVICE_KEYS):
        if dev not in present:
            valid[:, d] = False
    info["device_columns"] = {
        dev: sorted(header[i] for (dv, _k, _c), i in slots.items() if dv == dev) for dev in DEVICE_KEYS
    }
    info["line_numbers"] = (line_nos[0], line_nos[-1])
    info["sample_lines"] = np.asarray(line_nos, dtype=np.int64)  # file line of each sample, for messages
    layout = "generic"
    if "delta_time_ms" in norm_header and any(h.startswith("head_pos") for h in norm_header):
        layout = "Kinematic Maze 'fixed' (cm)"
    elif any(h.startswith("hmd_") for h in norm_header) and any(h.startswith("left_controller") for h in norm_header):
        layout = "Motion Learning Toolbox (cm)"
    units_prior = "cm" if layout != "generic" else None
    named = {column_unit(header[i]) for (_d, kind, _c), i in slots.items() if kind == "pos"} - {None}
    if len(named) == 1:
        units_prior = named.pop()
        info["units_in_column_names"] = units_prior
    info["layout"] = layout
    return RawTracking(
        times=times,
        positions=positions,
        quats=quats,
        valid=valid,
        format="csv",
        convention=None,
        units=units_prior,
        info=info,
    )


def _looks_per_row(t: NDArray[np.float64], steps: NDArray[np.float64]) -> bool:
    """A 'delta' column holding per-row intervals, not the time since the first row.

    Intervals are positive and cluster around one value (most within a factor 2 of the median)
    while their order is random (a constant column is read as one time stamp, as the name cannot
    settle it); a cumulative column, even in reverse or shuffled, spreads from
    near 0 to the take's length, so a tenth of it lies below half its median and a tenth above
    1.5 times it. A column in order (rising or falling) is cumulative.
    """
    if t.shape[0] < 3 or not np.all(t >= 0):
        return False
    med = float(np.median(t))
    if med <= 0:
        return False
    moving = steps[steps != 0]
    if moving.size < 2 or not 0.1 <= float(np.mean(moving < 0)) <= 0.9:
        return False  # constant or ordered: a cumulative column, perhaps reversed (reported as NONMONOTONIC_TIME)
    lo, hi = np.percentile(t, [10, 90])
    return bool(lo >= 0.5 * med or hi <= 1.5 * med)


def _detect_time_unit(t: NDArray[np.float64]) -> str:
    """From the median spacing: VR trackers log at 10-1000 Hz, so dt of 1-100 ms in some unit."""
    d = np.diff(t)
    d = d[d > 0]
    if d.size == 0:
        return "s"
    med = float(np.median(d))
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if 0.0009 <= med * scale <= 0.2:
            return unit
    return "s"
