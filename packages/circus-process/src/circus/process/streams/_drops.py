"""Output a file stream could not write: counted, and reported at most once per interval.

A full disk (or a quota, a read-only remount, an I/O error) must not turn every chunk of a
busy worker's output into a logged traceback: that floods circusd's own log, often on the
same full disk. The stream drops what it cannot write, counts it, and says so here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["DropReport"]

log = logging.getLogger("circus.process")


class DropReport:
    """Counts output dropped because ``target`` cannot be written, and reports it in one
    WARNING per ``interval`` seconds at most, never with a traceback.

    The first drop of an outage is reported at once. Later drops are summed and reported at
    the first drop after ``interval`` seconds, when writing works again (:meth:`ok`, which
    also says the outage is over), or when the stream closes (:meth:`flush`).
    """

    interval = 5.0

    def __init__(
        self,
        target: str,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        if interval is not None:
            self.interval = interval
        self._clock = clock
        self.failing = False
        self.bytes_dropped = 0  # in all, since the stream was made
        self.lines_dropped = 0
        self._unreported = (0, 0)
        self._outage = (0, 0)  # dropped since the outage began
        self._last_warn = 0.0
        self._error = ""

    def drop(self, data: bytes | memoryview, error: Exception) -> None:
        """``data`` could not be written because of ``error``: count it, warn if due."""
        size, lines = len(data), bytes(data).count(b"\n")
        self.bytes_dropped += size
        self.lines_dropped += lines
        self._outage = (self._outage[0] + size, self._outage[1] + lines)
        self._unreported = (self._unreported[0] + size, self._unreported[1] + lines)
        self._error = getattr(error, "strerror", None) or str(error)
        now = self._clock()
        if not self.failing:
            self.failing = True
            self._last_warn = now
            log.warning(
                "cannot write output to %s: %s; dropping output until it can be written "
                "(%d bytes, %d lines so far; next report in %g s at the earliest)",
                self.target,
                self._error,
                *self._take(),
                self.interval,
            )
        elif now - self._last_warn >= self.interval:
            self._last_warn = now
            log.warning(
                "still cannot write output to %s: %s; dropped %d bytes (%d lines) since the "
                "last report",
                self.target,
                self._error,
                *self._take(),
            )

    def ok(self) -> None:
        """A write worked: if output was being dropped, say that the outage is over."""
        if not self.failing:
            return
        self.failing = False
        unreported = self._take()
        outage, self._outage = self._outage, (0, 0)
        log.warning(
            "writing output to %s again; %d bytes (%d lines) were dropped meanwhile "
            "(%d bytes, %d lines since the last report)",
            self.target,
            *outage,
            *unreported,
        )

    def flush(self) -> None:
        """The stream closes: report drops not reported yet."""
        size, lines = self._take()
        if size:
            log.warning(
                "closing %s: %d more bytes (%d lines) of output were dropped: %s",
                self.target,
                size,
                lines,
                self._error,
            )

    def _take(self) -> tuple[int, int]:
        taken, self._unreported = self._unreported, (0, 0)
        return taken
