# SPDX-License-Identifier: GPL-3.0-or-later
"""``kinest inspect FILE [--json]``: what a tracking file holds and what looks wrong with it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from kinest_core.commands.reader_options import add_reader_options, cli_spelling, read_for_command


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "inspect",
        help="show what a tracking file holds (format, units, axes, rate, height) and its warnings",
        description="Read a tracking file (CSV, BVH, .bsor, .npz) as the reconstruction would and report "
        "what was detected or assumed, and every warning with its code.",
    )
    p.add_argument("file", help="tracking recording")
    p.add_argument("--json", action="store_true", help="print the report as JSON (keys: docs/inspect.md)")
    add_reader_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from kinest_core.io import TrackingFileError, inspect_report

    try:
        seq = read_for_command(args.file, args)
    except TrackingFileError as exc:
        if args.json:
            print(json.dumps({"file": args.file, "error": exc.text(cli_spelling)}, indent=2))
        else:
            print(f"kinest inspect: error: {exc.text(cli_spelling)}", file=sys.stderr)
        return 1
    rep = inspect_report(seq, cli_spelling)
    if args.json:
        print(json.dumps(rep, indent=2))
        return 0
    print(_text(rep))
    return 0


def _num(x: Any, spec: str) -> str:
    return format(x, spec) if isinstance(x, (int, float)) else "?"


def _text(r: dict[str, Any]) -> str:
    lines = [f"{r.get('file')}", f"  format       {r.get('format')}" + (f" ({r['layout']})" if r.get("layout") else "")]
    devs = ", ".join(f"{d['name']} {100 * d['valid_fraction']:.0f} %" for d in r.get("devices", []))
    lines.append(f"  devices      {devs}")
    lines.append(
        f"  frames       {r.get('frames')} at {_num(r.get('fps'), 'g')} fps (original {r.get('original_samples')} "
        f"samples, {_num(r.get('original_rate_hz'), '.1f')} Hz, {_num(r.get('duration_s'), '.2f')} s)"
    )
    lines.append(f"  units        {r.get('units')} ({r.get('units_from')})")
    lines.append(
        f"  axes         {r.get('convention')}: {r.get('handedness')}-handed, up {r.get('up_axis')}, "
        f"device forward {r.get('device_forward_axis')} ({r.get('convention_from')})"
    )
    lines.append(f"  rotations    {r.get('quat_order')}")
    if r.get("time_column"):
        lines.append(f"  time         {r['time_column']!r} in {r.get('time_units')}, {r.get('time_base')}")
    lines.append(f"  hardware     {r.get('device_family_name')} ({r.get('calibration_from')})")
    lines.append(
        f"  body height  {_num(r.get('body_height_m'), '.2f')} m ({r.get('body_height_from')}; floor: {r.get('floor_from')})"
    )
    if r.get("warnings"):
        lines.append("  warnings:")
        for w in r["warnings"]:
            lines.append(f"    {w['code']}: {w['message']}")
    else:
        lines.append("  warnings:    none")
    return "\n".join(lines)
