"""Flapping detection, built in (upstream ships it as a plugin; same option names).

A watcher is *flapping* when ``attempts`` process exits not asked for by the user happen
within ``window`` seconds. It is then stopped and started again after ``retry_in`` seconds,
at most ``max_retry`` times (-1 = forever); after that it stays stopped. Exits caused by
the user (stop, decr, reload, kill) are never recorded, so a user stop never counts as
flapping (upstream issues #809 and #965). Pure logic: the watcher owns the timers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._values import FlappingOptions


class Verdict(Enum):
    """What the watcher must do after an exit was recorded."""

    OK = "ok"
    RETRY_LATER = "retry_later"  # stop now, start again after retry_in
    GIVE_UP = "give_up"  # stop now and stay stopped


@dataclass
class FlappingDetector:
    """Sliding record of the last ``attempts`` unrequested exit times."""

    active: bool = False
    attempts: int = 2
    window: float = 1.0
    retry_in: float = 7.0
    max_retry: int = 5
    tries: int = 0
    _times: deque[float] = field(default_factory=deque)

    def configure(self, options: FlappingOptions) -> None:
        """Take the ``flapping.*`` values (the recorded exits and retries are kept)."""
        self.active = options.active
        self.attempts = options.attempts
        self.window = options.window
        self.retry_in = options.retry_in
        self.max_retry = options.max_retry

    def record(self, now: float) -> Verdict:
        """Record an unrequested exit at monotonic time ``now``; return the verdict."""
        if not self.active:
            return Verdict.OK
        self._times.append(now)
        while len(self._times) > self.attempts:
            self._times.popleft()
        if len(self._times) < self.attempts:
            return Verdict.OK
        if self._times[-1] - self._times[0] > self.window:
            self.tries = 0
            return Verdict.OK
        self._times.clear()
        if self.max_retry != -1 and self.tries >= self.max_retry:
            self.tries = 0
            return Verdict.GIVE_UP
        self.tries += 1
        return Verdict.RETRY_LATER

    def clear(self, *, tries: bool = True) -> None:
        """Forget recorded exits (and, by default, the retry count)."""
        self._times.clear()
        if tries:
            self.tries = 0
