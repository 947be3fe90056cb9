# SPDX-License-Identifier: GPL-3.0-or-later
"""CLI subcommands: each module has ``add_parser(subparsers)`` (setting ``run``) and ``run(args) -> int``."""
