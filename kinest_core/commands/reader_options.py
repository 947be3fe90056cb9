# SPDX-License-Identifier: GPL-3.0-or-later
"""The reader options ``inspect``, ``reconstruct`` and ``evaluate --tracking`` share, defined once.

Each flag stands for one ``read_tracking`` keyword (``--height`` for ``reconstruct``'s
``body_height``), so a warning's :class:`~kinest_core.fixes.Fix` is spelled here as the flag
that acts on it (:func:`cli_spelling`): ``--convention unity`` where Python says
``convention='unity'``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from kinest_core.fixes import Fix
from kinest_core.io import FORMATS, QUAT_ORDERS, read_tracking
from kinest_core.io.calibration import DEVICE_FAMILIES, FAMILY_NAMES
from kinest_core.io.conventions import CONVENTION_PRESETS, PRESETS, UNIT_CHOICES
from kinest_core.types import TrackingSequence

#: Accepted ``--height`` range (m): children to the tallest adults.
HEIGHT_RANGE_M = (0.5, 2.5)
#: Largest ``--columns`` JSON file read (a mapping is a few hundred bytes).
MAX_COLUMNS_FILE_BYTES = 1 << 20


def _float_in(lo: float, hi: float, what: str) -> Any:
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number ({what})") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v:g} is outside {lo:g}-{hi:g} ({what})")
        return v

    return parse


def parse_floor(text: str) -> str | float:
    """``auto``, ``estimate`` or a height in metres."""
    if text in ("auto", "estimate"):
        return text
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give auto, estimate or a height in metres") from None
    if not -100.0 <= v <= 100.0:
        raise argparse.ArgumentTypeError(f"{v:g} m is not a floor height (metres, within 100 m of the origin)")
    return v


def parse_columns(text: str) -> dict[str, str]:
    """``name=column,name=column`` inline, or a JSON file holding ``{"name": "column"}``."""
    if "=" not in text:
        if not os.path.isfile(text):
            raise argparse.ArgumentTypeError(
                f"{text!r} is neither name=column pairs (time=t,head_pos_x=hx) nor an existing JSON file"
            )
        if os.path.getsize(text) > MAX_COLUMNS_FILE_BYTES:
            raise argparse.ArgumentTypeError(f"{text}: too large for a column mapping")
        try:
            with open(text, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise argparse.ArgumentTypeError(f"{text}: not a readable JSON column mapping ({exc})") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise argparse.ArgumentTypeError(f'{text}: must be one JSON object of names to columns, {{"time": "t"}}')
        return dict(data)
    out: dict[str, str] = {}
    for part in text.split(","):
        name, sep, column = part.partition("=")
        if not sep or not name.strip() or not column.strip():
            raise argparse.ArgumentTypeError(f"{part!r}: write name=column, e.g. time=t,head_pos_x=hx")
        out[name.strip()] = column.strip()
    return out


@dataclass(frozen=True)
class ReaderOption:
    """One flag: the keyword it feeds (``option``), how it is written and parsed, and its help."""

    option: str
    flag: str
    metavar: str
    help: str
    type: Any = str
    choices: tuple[str, ...] | None = None

    def spell(self, value: Any) -> str:
        if value is None:
            return f"{self.flag} {self.metavar}"
        if isinstance(value, Mapping):
            return f"{self.flag} " + ",".join(f"{k}={v}" for k, v in value.items())
        return f"{self.flag} {value:g}" if isinstance(value, float) else f"{self.flag} {value}"


def _conventions() -> str:
    return "; ".join(f"{name}: {PRESETS[name].description}" for name in CONVENTION_PRESETS if name in PRESETS)


#: The shared flags, in the order ``--help`` lists them.
READER_OPTIONS: tuple[ReaderOption, ...] = (
    ReaderOption(
        "format",
        "--format",
        "FORMAT",
        f"file format: {', '.join(FORMATS)} (default auto: from the extension and first bytes)",
        choices=FORMATS,
    ),
    ReaderOption(
        "convention",
        "--convention",
        "NAME",
        f"axes and handedness of the recording: "
        f"{', '.join(CONVENTION_PRESETS)} (default auto: from the format, else OpenXR). {_conventions()}",
        choices=CONVENTION_PRESETS,
    ),
    ReaderOption(
        "units",
        "--units",
        "UNIT",
        f"position units: {', '.join(UNIT_CHOICES)} (default auto: from body proportions and the format)",
        choices=UNIT_CHOICES,
    ),
    ReaderOption(
        "time_units",
        "--time-units",
        "UNIT",
        "unit of a CSV time column: auto, s, ms, us, ns (default auto: from the column name, then the sample spacing)",
        choices=("auto", "s", "ms", "us", "ns"),
    ),
    ReaderOption(
        "input_fps",
        "--input-fps",
        "HZ",
        "samples per second of a CSV without a time column (1-1000; default: assumed, with a TIME_ASSUMED warning)",
        type=_float_in(1.0, 1000.0, "Hz"),
    ),
    ReaderOption(
        "quat_order",
        "--quat-order",
        "ORDER",
        f"quaternion component order: {', '.join(QUAT_ORDERS)} "
        "(default auto: by CSV column names; xyzw/wxyz read each device's four columns in file order)",
        choices=QUAT_ORDERS,
    ),
    ReaderOption(
        "euler_order",
        "--euler-order",
        "ORDER",
        "axis order of CSV Euler-angle columns in SciPy's "
        "spelling: lower case extrinsic (xyz, zyx...), upper case intrinsic (XYZ, ZYX...) (default xyz)",
    ),
    ReaderOption(
        "columns",
        "--columns",
        "MAP|FILE",
        "CSV columns by canonical name, inline "
        '(time=t,head_pos_x=hx,left_rot_w=lqw) or a JSON file ({"time": "t"}); names: time, '
        "<dev>_pos_<x|y|z>, <dev>_rot_<w|x|y|z> with dev head, left, right",
        type=parse_columns,
    ),
    ReaderOption(
        "calibration",
        "--family",
        "FAMILY",
        "headset and controllers, for the device-to-joint offsets: "
        + ", ".join(f"{k} ({v})" for k, v in FAMILY_NAMES.items() if k in DEVICE_FAMILIES),
        choices=DEVICE_FAMILIES,
    ),
    ReaderOption(
        "floor",
        "--floor",
        "METRES",
        "floor height in metres above the file's origin, or auto (the "
        "origin if the head is at a standing height, else estimated) or estimate (default auto)",
        type=parse_floor,
    ),
    ReaderOption(
        "max_gap_s",
        "--max-gap",
        "SECONDS",
        "tracking gaps up to this long are interpolated and stay valid (0-10 s; default 0.25)",
        type=_float_in(0.0, 10.0, "seconds"),
    ),
    ReaderOption(
        "body_height",
        "--height",
        "METRES",
        "performer height in metres (default: estimated from the head height)",
        type=_float_in(*HEIGHT_RANGE_M, "metres"),
    ),
)
_BY_OPTION: dict[str, ReaderOption] = {o.option: o for o in READER_OPTIONS}


def add_reader_options(parser: argparse.ArgumentParser) -> None:
    """Add the shared reader flags to a subcommand, in their own help section."""
    group = parser.add_argument_group("reading the tracking file", "how the recording is read (default: detect)")
    for o in READER_OPTIONS:
        group.add_argument(
            o.flag,
            dest=f"read_{o.option}",
            metavar=o.metavar,
            type=o.type,
            choices=o.choices,
            default=None,
            help=o.help,
        )
    group.add_argument(
        "--no-recenter",
        dest="read_recenter",
        action="store_false",
        help="keep the file's horizontal origin (default: the head's median position goes to the origin)",
    )


def reader_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """``read_tracking`` keywords from the flags the user gave (``--height`` is not one: see :func:`body_height`)."""
    out: dict[str, Any] = {}
    for o in READER_OPTIONS:
        value = getattr(args, f"read_{o.option}", None)
        if value is not None and o.option != "body_height":
            out[o.option] = value
    if getattr(args, "read_recenter", True) is False:
        out["recenter"] = False
    return out


def body_height(args: argparse.Namespace) -> float | None:
    """``--height`` in metres, or None to estimate it."""
    value = getattr(args, "read_body_height", None)
    return float(value) if value is not None else None


def cli_spelling(fix: Fix) -> str:
    """A fix as the flag that applies it: ``--convention unity``, ``--floor METRES``, ``--columns time=COLUMN``."""
    return _BY_OPTION[fix.option].spell(fix.value)  # every FIX_OPTIONS name has a flag (tested)


def read_for_command(path: str, args: argparse.Namespace) -> TrackingSequence:
    """``read_tracking`` with the user's flags; with ``--height`` the body height is theirs, not estimated."""
    seq = read_tracking(path, **reader_kwargs(args))
    height = body_height(args)
    if height is None:
        return seq
    info = dict(seq.info, body_height_m=height, body_height_from="option")
    warnings = [w for w in seq.warnings if w.code != "HEIGHT_SUSPECT"]
    return replace(seq, info=info, warnings=warnings)


def warning_lines(seq: TrackingSequence) -> list[str]:
    """Each warning as one line with its hint in flags: ``warning [CODE]: ...; try ... --convention unity``."""
    return [f"warning [{w.code}]: {w.text(cli_spelling)}" for w in seq.warnings]
