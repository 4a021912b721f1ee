"""Terminal colour: on only when writing to a terminal, never when piped, --json or NO_COLOR."""

from __future__ import annotations

import os
from typing import TextIO

__all__ = ["Palette", "use_color"]

_RESET = "\033[0m"
_CODES = {
    "red": "\033[31m",
    "green": "\033[32m",
    "yellow": "\033[33m",
    "blue": "\033[34m",
    "magenta": "\033[35m",
    "cyan": "\033[36m",
    "bold": "\033[1m",
    "dim": "\033[2m",
}
_STATE_COLORS = {
    "active": "green",
    "stopped": "red",
    "stopping": "yellow",
    "starting": "yellow",
    "crash-looping": "red",
}
_NAME_COLORS = ("cyan", "magenta", "blue", "yellow", "green")


def use_color(stream: TextIO, json_mode: bool = False) -> bool:
    """Decide whether to colour output written to ``stream``.

    Never with ``--json``, never when ``NO_COLOR`` is set (https://no-color.org, any
    non-empty value), never when ``TERM=dumb``, and only if ``stream`` is a terminal.
    """
    if json_mode or os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Palette:
    """Wraps text in ANSI colours when enabled; returns it unchanged otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def paint(self, text: str, color: str) -> str:
        """Return ``text`` in ``color`` (a name from the table above) if colour is on."""
        if not self.enabled or color not in _CODES:
            return text
        return f"{_CODES[color]}{text}{_RESET}"

    def state(self, state: str) -> str:
        """Colour a watcher state: active green, stopped red, transitions yellow."""
        return self.paint(state, _STATE_COLORS.get(state, ""))

    def ok(self, text: str = "ok") -> str:
        """Colour a success word."""
        return self.paint(text, "green")

    def error(self, text: str) -> str:
        """Colour an error message."""
        return self.paint(text, "red")

    def name(self, text: str, index: int) -> str:
        """Colour a watcher name with the ``index``-th of a rotating set of colours."""
        return self.paint(text, _NAME_COLORS[index % len(_NAME_COLORS)])
