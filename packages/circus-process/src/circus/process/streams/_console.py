"""StdoutStream and FancyStdoutStream: output copied to this process's stdout."""

from __future__ import annotations

import random
import sys
from typing import Any

from ._base import Chunk, LineFramer, prefix_line, to_str_or_none

__all__ = ["StdoutStream", "FancyStdoutStream"]

COLORS = {
    "red": 31,
    "green": 32,
    "yellow": 33,
    "blue": 34,
    "magenta": 35,
    "cyan": 36,
    "white": 37,
}


class StdoutStream:
    """Write each chunk, decoded as UTF-8 with replacement, to ``sys.stdout``."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def __call__(self, data: Chunk) -> None:
        """Copy one chunk to stdout and flush."""
        sys.stdout.write(data["data"].decode("utf-8", "replace"))
        sys.stdout.flush()

    def open(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Nothing to close."""


class FancyStdoutStream:
    """Coloured, timestamped, pid-tagged lines on ``sys.stdout``.

    Each line becomes ``ESC[<color>m<time> [<pid>] | <line>ESC[0m``. ``color`` is one of red,
    green, yellow, blue, magenta, cyan, white (random when absent or unknown);
    ``time_format`` defaults to ``%Y-%m-%d %H:%M:%S``. Lines split across reads are
    re-assembled.
    """

    def __init__(
        self, color: str | None = None, time_format: str | None = None, **options: Any
    ) -> None:
        name = (to_str_or_none(color) or "").lower()
        if name not in COLORS:
            name = random.choice(sorted(COLORS))
        self.color = name
        self.time_format = to_str_or_none(time_format) or "%Y-%m-%d %H:%M:%S"
        self.options = options
        self._framer = LineFramer()

    def _emit(self, pid: int, lines: list[bytes]) -> None:
        if not lines:
            return
        code = COLORS[self.color]
        out = []
        for line in lines:
            text = prefix_line(self.time_format, pid, line).rstrip("\n")
            out.append(f"\033[0;{code}m{text}\033[0m\n")
        sys.stdout.write("".join(out))
        sys.stdout.flush()

    def __call__(self, data: Chunk) -> None:
        """Write the complete lines of one chunk."""
        self._emit(data["pid"], self._framer.feed(data["pid"], data["name"], data["data"]))

    def partial(self, pid: int, name: str) -> bytes:
        """The unterminated line held back for ``pid``'s pipe ``name`` (kept)."""
        return self._framer.partial(pid, name)

    def end(self, pid: int, name: str) -> None:
        """EOF on ``pid``'s pipe: write its partial line."""
        self._emit(pid, self._framer.flush(pid, name))

    def open(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Write every pending partial line."""
        for pid, line in self._framer.flush_all():
            self._emit(pid, [line])
