"""Restart policy: whether a dead process is replaced, and after how long.

Pure logic, no I/O, so it is tested without processes. Rules (README "Restart policy"):

* ``respawn='always'`` replaces every process that dies on its own; ``'on-failure'`` only
  those whose exit code is not in ``success_exit_codes``; ``'never'`` none.
* A *failure* (exit code not in ``success_exit_codes``, or killed by a signal) extends a
  streak; the first failure of a streak is replaced at once, the n-th after
  ``min(backoff_max, backoff_initial * backoff_factor ** (n - 2))`` seconds.
* A success, or a process that ran at least ``backoff_reset`` seconds, ends the streak.
* ``give_up_after`` > 0: a streak that long means giving up (the watcher stops for good).
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._values import WatcherOptions


@dataclass
class RestartPolicy:
    """Decides respawn and delay for each process exit; holds the failure streak."""

    respawn: str = "always"
    success_exit_codes: Container[int] = frozenset({0})
    backoff_initial: float = 0.1
    backoff_factor: float = 2.0
    backoff_max: float = 30.0
    backoff_reset: float = 10.0
    give_up_after: int = 0
    streak: int = 0

    def configure(self, options: WatcherOptions) -> None:
        """Take ``respawn``, ``success_exit_codes`` and ``backoff_*`` (the streak is kept)."""
        self.respawn = options.respawn
        self.success_exit_codes = options.success_exit_codes
        self.backoff_initial = options.backoff_initial
        self.backoff_factor = options.backoff_factor
        self.backoff_max = options.backoff_max
        self.backoff_reset = options.backoff_reset
        self.give_up_after = options.give_up_after

    def is_failure(self, exit_code: int | None) -> bool:
        """True when ``exit_code`` (negative = killed by that signal) is not a success."""
        return exit_code is None or exit_code < 0 or exit_code not in self.success_exit_codes

    def wants_respawn(self, exit_code: int | None) -> bool:
        """Whether a process that exited with ``exit_code`` on its own is to be replaced."""
        if self.respawn == "never":
            return False
        if self.respawn == "on-failure":
            return self.is_failure(exit_code)
        return True

    def record_exit(self, exit_code: int | None, lifetime: float) -> float:
        """Record an exit; return the delay in seconds before its replacement may start."""
        if not self.is_failure(exit_code) or lifetime >= self.backoff_reset:
            self.streak = 0
            if not self.is_failure(exit_code):
                return 0.0
        self.streak += 1
        return self.delay_for(self.streak)

    def exhausted(self) -> bool:
        """Whether the failure streak reached ``give_up_after`` (never when it is 0)."""
        return 0 < self.give_up_after <= self.streak

    def delay_for(self, streak: int) -> float:
        """The backoff delay for the ``streak``-th consecutive failure."""
        if streak <= 1 or self.backoff_initial <= 0:
            return 0.0
        try:
            delay = self.backoff_initial * self.backoff_factor ** (streak - 2)
        except OverflowError:
            return self.backoff_max
        return min(self.backoff_max, delay)

    def reset(self) -> None:
        """Forget the failure streak (user start/stop)."""
        self.streak = 0
