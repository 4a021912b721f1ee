"""Reading ``output.*`` messages: one message holds one or more lines, numbered per topic.

circusd publishes the output of one process's stream as it reads it: one message per read
chunk (at most 64 KiB of it: a bigger chunk goes in several, cut at line ends), its ``data``
holding one or more complete lines (or one unterminated piece, when a line is cut at 64 KiB
or the process ends without a newline); lines end at "\n" only. Each message carries ``seq``:
how many lines circusd had published on that topic before this message's first line. A
subscriber that falls behind loses messages (ZeroMQ drops them for it once its queue is
full); the gap in ``seq`` says how many lines it missed, so a follower can say so instead
of going silent about it. A message without ``seq`` (a daemon without it) is taken as is.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["OutputGaps", "output_line_count", "split_output"]


def output_line_count(text: str) -> int:
    """How many lines an output message's ``data`` holds (an unterminated piece counts 1)."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def split_output(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The message as one payload per line (each keeps its newline), other keys copied."""
    text = str(payload.get("data", ""))
    if "\n" in text:
        # At "\n" only, as circusd cut them (str.splitlines also cuts at \r, \f, NEL, U+2028)
        lines = text.split("\n")
        tail = lines.pop()  # after the last newline: "" when the text ends with one
        lines = [line + "\n" for line in lines]
        if tail:
            lines.append(tail)
    else:
        lines = [text]
    if len(lines) == 1:
        return [dict(payload)]
    base = {k: v for k, v in payload.items() if k != "data"}
    return [{**base, "data": line} for line in lines]


class OutputGaps:
    """Counts the lines a subscriber missed, per topic, from the messages' ``seq``.

    :meth:`feed` each received output message; it returns how many lines were published on
    that topic between the previous message and this one and never received. A ``seq`` lower
    than expected (circusd restarted, or the watcher was removed and added again) starts
    the count afresh without reporting anything.
    """

    def __init__(self) -> None:
        self._next: dict[str, int] = {}
        self.missed = 0
        """Lines missed in all."""

    def feed(self, topic: str, payload: Mapping[str, Any]) -> int:
        """Take one message; return the lines missed just before it (0 when none)."""
        seq = payload.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            return 0
        expected = self._next.get(topic)
        self._next[topic] = seq + output_line_count(str(payload.get("data", "")))
        if expected is None or seq <= expected:
            return 0
        gap = seq - expected
        self.missed += gap
        return gap
