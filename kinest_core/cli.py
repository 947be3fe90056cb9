# SPDX-License-Identifier: GPL-3.0-or-later
"""The ``kinest`` command: one subcommand per module in :mod:`kinest_core.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from kinest_core import __version__
from kinest_core.commands.reader_options import cli_spelling
from kinest_core.errors import KinestError, debug_enabled, unexpected_message

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3

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
    """Run one command; every failure ends as one line on stderr and an exit code, never a traceback.

    Exit codes: 0 done, 1 an error the message explains (bad input, checkpoint or output),
    2 wrong command line, 3 an internal error (a bug: the line says how to report it),
    130 interrupted. ``KINEST_DEBUG=1`` re-raises internal errors with their traceback.
    """
    command = "kinest"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command", None):
            parser.print_help()
            return EXIT_USAGE
        command = f"kinest {args.command}"
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    except KinestError as exc:
        print(f"{command}: error: {exc.text(cli_spelling)}", file=sys.stderr)
        return EXIT_ERROR
    except (ValueError, OSError) as exc:
        print(f"{command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:
        if debug_enabled():
            raise
        print(f"{command}: {unexpected_message(exc, f'running {command}')}", file=sys.stderr)
        return EXIT_INTERNAL


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
