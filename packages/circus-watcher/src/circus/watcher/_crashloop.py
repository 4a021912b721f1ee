"""Crash loops: seeing, saying and logging that a watcher's processes keep dying.

Definition. A watcher is *crash-looping* while it is active and:

* its last :data:`CRASH_LOOP_EXITS` (3) or more exits in a row were *failures* (an exit code
  not in ``success_exit_codes``, or a signal) of processes nobody asked to end, each of which
  lived less than ``backoff_reset`` seconds (the restart policy's failure streak), and
* a replacement is due, or was due less than ``backoff_reset`` seconds ago.

So it ends when a process exits successfully, when a replacement stays up ``backoff_reset``
seconds (10 s by default), and at every start and stop (a user's, or a flapping stop). A
watcher whose processes are not respawned (``respawn = never``, or ``on-failure`` after a
success) is never crash-looping: it stops instead.

What it shows: ``crash_loop()`` on the watcher (the details), a ``crash_loop`` event when a
watcher enters one and a ``crash_loop_end`` event (with the reason, also logged) when it
ends (a timer armed at each exit of the loop sees the quiet end), and one log line per
unrequested exit, with the exit code and when the
replacement is due. The exit lines are rate-limited per watcher (a burst of
:data:`LOG_BURST`, then :data:`LOG_RATE` a second); the next line logged says how many were
left out. The start, stop and reload of the watcher are logged too (``<name> started``,
``<name> stopped``, ``<name> reloaded``: Circus 0.19's lines).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable
from typing import Any

__all__ = ["CRASH_LOOP_EXITS", "LOG_BURST", "LOG_RATE", "CrashWatch"]

logger = logging.getLogger("circus.watcher")

#: Failed exits in a row (of short-lived processes) that make a crash loop.
CRASH_LOOP_EXITS = 3
#: Exit lines a watcher may log at once, then :data:`LOG_RATE` a second.
LOG_BURST = 5
LOG_RATE = 1.0


def _describe(exit_code: int | None) -> str:
    if exit_code is None:
        return "exited (status unknown)"
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"was killed by {name}"
    return f"exited with code {exit_code}"


def _clock(epoch: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(epoch)) + f".{int(epoch % 1 * 10)}"


class CrashWatch:
    """The crash-loop state and the exit log of one watcher (see the module docstring).

    Args:
        name: the watcher's name, for the log.
        emit: ``emit(event, payload)``: the watcher's event path.
    """

    def __init__(self, name: str, emit: Callable[[str, dict[str, Any]], None]) -> None:
        self.name = name
        self._emit = emit
        self.exits = 0  # failures in a row, as the restart policy counts them
        self.exit_code: int | None = None
        self.since = 0.0  # epoch of the first failure of the loop
        self.last_exit = 0.0
        self.next_retry: float | None = None  # epoch the replacement is due
        self.reset_after = 10.0
        self._looping = False  # a crash_loop event was sent, its end not yet
        self._timer: asyncio.TimerHandle | None = None
        self._tokens = float(LOG_BURST)
        self._refilled = time.monotonic()
        self._left_out = 0

    # ------------------------------------------------------------------ events

    def on_event(self, event: str, payload: dict[str, Any]) -> None:
        """Listener of the watcher's events: a start or a stop ends a crash loop; both are
        logged, and a reload."""
        if event == "start":
            self.clear("started")
            logger.info("%s started", self.name)
        elif event == "stop":
            self.clear("stopped")
            logger.info("%s stopped", self.name)
        elif event == "reload":
            logger.info("%s reloaded", self.name)

    def clear(self, reason: str = "cleared") -> None:
        """Forget the loop (the exit log's rate limit is kept); a loop that was announced
        ends with a ``crash_loop_end`` event saying ``reason``."""
        self.exits = 0
        self.next_retry = None
        self._end(reason)

    def _end(self, reason: str) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._looping:
            return
        self._looping = False
        logger.info("%s: crash loop over (%s)", self.name, reason)
        self._emit("crash_loop_end", {"time": time.time(), "reason": reason})

    def _arm(self) -> None:
        """Check again when the loop would end if no process fails meanwhile."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.next_retry is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on a loop: the state is still read correctly
            return
        delay = max(0.0, self.next_retry + self.reset_after - time.time()) + 0.05
        self._timer = loop.call_later(delay, self._check)

    def _check(self) -> None:
        self._timer = None
        if self.active():
            self._arm()
        else:
            self._end(f"no failure for {self.reset_after:g}s")

    # ------------------------------------------------------------------ exits

    def exited(
        self,
        pid: int,
        exit_code: int | None,
        lifetime: float,
        *,
        failed: bool,
        failures: int,
        delay: float | None,
        reset_after: float,
    ) -> None:
        """Record one unrequested exit and log it.

        Args:
            failed: the exit is a failure (not in ``success_exit_codes``, or a signal).
            failures: the restart policy's failure streak after this exit.
            delay: seconds until the replacement is spawned; None: no replacement.
            reset_after: ``backoff_reset``: how long a replacement must stay up to end it.
        """
        now = time.time()
        self.reset_after = reset_after
        self.exit_code = exit_code
        self.last_exit = now
        self.next_retry = None if delay is None else now + delay
        if not failed:
            self.clear("a process exited successfully")
        elif delay is None:
            self.clear("not respawned")
        else:
            if failures == 1 or self.exits == 0:
                self.since = now
            self.exits = failures
        if self._looping and not self.active(now):  # the streak began again
            self._end(f"a process lived {lifetime:.1f}s")
        entering = self.active(now) and not self._looping
        self._log_exit(pid, exit_code, lifetime, delay, now, failed)
        if entering:
            self._looping = True
            self._emit("crash_loop", {"time": now, **self._details()})
        if self._looping:
            self._arm()

    def active(self, now: float | None = None) -> bool:
        """Whether the watcher is crash-looping (given it is active)."""
        if self.exits < CRASH_LOOP_EXITS or self.next_retry is None:
            return False
        return (time.time() if now is None else now) < self.next_retry + self.reset_after

    def details(self) -> dict[str, Any] | None:
        """``{"exits", "exit_code", "since", "last_exit", "next_retry"}`` of the crash loop
        (epoch seconds), or None when there is none."""
        return self._details() if self.active() else None

    def _details(self) -> dict[str, Any]:
        return {
            "exits": self.exits,
            "exit_code": self.exit_code,
            "since": self.since,
            "last_exit": self.last_exit,
            "next_retry": self.next_retry,
        }

    # ------------------------------------------------------------------ the log

    def _may_log(self) -> bool:
        clock = time.monotonic()
        self._tokens = min(LOG_BURST, self._tokens + (clock - self._refilled) * LOG_RATE)
        self._refilled = clock
        if self._tokens < 1.0:
            self._left_out += 1
            return False
        self._tokens -= 1.0
        return True

    def _log_exit(
        self,
        pid: int,
        exit_code: int | None,
        lifetime: float,
        delay: float | None,
        now: float,
        failed: bool,
    ) -> None:
        if not self._may_log():
            return
        if delay is None:
            then = "not respawned"
        elif delay <= 0:
            then = "respawning now"
        else:
            then = f"next retry at {_clock(now + delay)} (in {delay:.1f}s)"
        line = f"{self.name}: process {pid} {_describe(exit_code)} after {lifetime:.1f}s; {then}"
        if self.active(now):
            line += f"; crash-looping ({self.exits} failed exits in a row)"
        if self._left_out:
            line += f" [{self._left_out} more exits not logged]"
            self._left_out = 0
        logger.log(logging.WARNING if failed else logging.INFO, "%s", line)
