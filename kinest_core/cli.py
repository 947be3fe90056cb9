# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``kinest`` command: one subcommand per module in :mod:`kinest_core.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from kinest_core import __version__

#: Subcommand modules, in the order ``kinest --help`` lists them.
COMMANDS: tuple[str, ...] = (
    "info",
    "inspect",
    "reconstruct",
    "bench",
    "jitter",
    "train",
    "evaluate",
    "prepare_amass",
    "retarget",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kinest", description="Full-body motion from VR tracking (KineST).")
    parser.add_argument("--version", action="version", version=f"kinest {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"kinest_core.commands.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("kinest: interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, OSError) as exc:
        print(f"kinest {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
