"""Process output as complete lines: published as ``output.<watcher>.<stream>`` and kept in a
per-watcher in-memory ring buffer answered by the ``logs`` command (``circusctl logs -f``).

Chunks arrive as the pipes deliver them; a line split across two chunks is buffered per
(pid, stream) until its newline arrives, or flushed as is when the process is reaped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from circus.ctl.protocol import output_payload, output_topic

__all__ = ["OutputHub"]

# A line longer than this is published in pieces rather than buffered without bound.
MAX_PARTIAL = 64 * 1024


class OutputHub:
    """Splits output chunks into lines, publishes them and keeps the last ``keep`` per watcher."""

    def __init__(self, publish: Callable[[str, dict[str, Any]], None], keep: int = 1000) -> None:
        self._publish = publish
        self.keep = keep
        self._rings: dict[str, deque[dict[str, Any]]] = {}
        self._partial: dict[tuple[str, int, str], bytes] = {}

    def observer(self, watcher: str) -> Callable[[int, str, bytes], None]:
        """The callback to attach to a watcher with ``add_output_observer``."""

        def observe(pid: int, stream: str, data: bytes) -> None:
            self.feed(watcher, pid, stream, data)

        return observe

    def feed(self, watcher: str, pid: int, stream: str, data: bytes) -> None:
        """Take one chunk; emit every line it completes."""
        key = (watcher, pid, stream)
        buf = self._partial.pop(key, b"") + data
        end = buf.rfind(b"\n") + 1
        if end:
            for line in buf[: end - 1].split(b"\n"):
                self._emit(watcher, pid, stream, line + b"\n")
        rest = buf[end:]
        if len(rest) > MAX_PARTIAL:
            self._emit(watcher, pid, stream, rest)
        elif rest:
            self._partial[key] = rest

    def flush_pid(self, watcher: str, pid: int) -> None:
        """Emit the unterminated last line of a finished process, if any."""
        for stream in ("stdout", "stderr"):
            rest = self._partial.pop((watcher, pid, stream), None)
            if rest:
                self._emit(watcher, pid, stream, rest)

    def forget(self, watcher: str) -> None:
        """Drop a removed watcher's buffer."""
        self._rings.pop(watcher, None)
        for key in [k for k in self._partial if k[0] == watcher]:
            del self._partial[key]

    def lines(self, watchers: Iterable[str], count: int) -> list[dict[str, Any]]:
        """The last ``count`` lines of each given watcher, merged oldest first."""
        merged: list[dict[str, Any]] = []
        for name in watchers:
            ring = self._rings.get(name)
            if ring:
                merged.extend(list(ring)[-count:] if count > 0 else [])
        merged.sort(key=lambda entry: entry["time"])
        return merged

    def _emit(self, watcher: str, pid: int, stream: str, line: bytes) -> None:
        entry = output_payload(watcher, pid, stream, line)
        ring = self._rings.get(watcher)
        if ring is None:
            ring = self._rings[watcher] = deque(maxlen=self.keep)
        ring.append(entry)
        self._publish(output_topic(watcher, stream), entry)
