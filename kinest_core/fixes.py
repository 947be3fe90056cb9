# SPDX-License-Identifier: GPL-3.0-or-later
"""A warning's fix as data, so that each interface can name it in its own spelling.

A reader warning says what is wrong (``message``) and, where an option acts on it, a ``hint``
template whose ``{option}`` fields are filled from its :class:`Fix` list. The same fix reads
``convention='unity'`` in Python, ``--convention unity`` on the command line
(:mod:`kinest_core.commands.reader_options`) and ``Convention: unity`` in Blender's import dialog
(:mod:`kinest_blender.import_op`). The option names are ``read_tracking``'s keywords, plus
``body_height`` (``reconstruct``'s).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: Options a fix may name: ``read_tracking`` keywords and ``reconstruct``'s ``body_height``.
FIX_OPTIONS: tuple[str, ...] = (
    "format",
    "convention",
    "units",
    "quat_order",
    "columns",
    "calibration",
    "time_units",
    "euler_order",
    "input_fps",
    "max_gap_s",
    "floor",
    "body_height",
)


@dataclass(frozen=True)
class Fix:
    """An option that acts on a warning: ``option`` (a :data:`FIX_OPTIONS` name) and the value to try.

    ``value`` is None where the user must choose (the hint then lists the choices), and a dict of
    canonical name -> file column for ``columns`` (``"COLUMN"`` marks a name the user fills in).
    """

    option: str
    value: str | float | Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        if self.option not in FIX_OPTIONS:
            raise ValueError(f"Fix: unknown option {self.option!r}; choose one of {', '.join(FIX_OPTIONS)}")


#: Turns a fix into the words of one interface.
Spelling = Callable[[Fix], str]


def python_spelling(fix: Fix) -> str:
    """Keyword-argument spelling: ``convention='unity'``, ``floor=...``, ``columns={'time': 'COLUMN'}``."""
    if fix.value is None:
        return f"{fix.option}=..."
    if isinstance(fix.value, Mapping):
        return f"{fix.option}={dict(fix.value)!r}"
    return f"{fix.option}={fix.value!r}"


def render_hint(hint: str, fixes: tuple[Fix, ...], spell: Spelling = python_spelling) -> str:
    """``hint`` with every ``{option}`` field replaced by that fix in ``spell``'s words."""
    if not hint:
        return ""
    fields: dict[str, Any] = {f.option: spell(f) for f in fixes}
    return hint.format_map(fields)
