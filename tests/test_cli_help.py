# SPDX-License-Identifier: GPL-3.0-or-later
"""Every ``kinest`` subcommand has a description and every option a help text; the reading options are shared."""

from __future__ import annotations

import argparse

from kinest_core.cli import build_parser


def _subcommands(
    parser: argparse.ArgumentParser,
) -> tuple[argparse._SubParsersAction, dict[str, argparse.ArgumentParser]]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sub, dict(sub.choices)


def test_every_subcommand_and_option_has_help() -> None:
    parser = build_parser()
    sub, commands = _subcommands(parser)
    listed = {a.dest: a.help for a in sub._choices_actions}
    missing: list[str] = []
    for name, p in commands.items():
        if not listed.get(name):
            missing.append(f"{name}: no one-line help in 'kinest --help'")
        if not (p.description or "").strip():
            missing.append(f"{name}: no description")
        for action in p._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            if not (action.help or "").strip() or action.help == argparse.SUPPRESS:
                missing.append(f"{name} {'/'.join(action.option_strings) or action.dest}: no help")
    assert not missing, missing


def test_reading_options_are_the_same_everywhere() -> None:
    _, commands = _subcommands(build_parser())

    def reading(name: str) -> dict[str, tuple[str | None, str | None]]:
        return {a.option_strings[0]: (a.help, a.dest) for a in commands[name]._actions if a.dest.startswith("read_")}

    inspect = reading("inspect")
    assert {"--units", "--convention", "--time-units", "--floor", "--height", "--columns", "--family"} <= set(inspect)
    assert reading("reconstruct") == inspect
    assert reading("evaluate") == inspect
    assert "unity" in inspect["--convention"][0] and "Valve Index" in inspect["--family"][0]
