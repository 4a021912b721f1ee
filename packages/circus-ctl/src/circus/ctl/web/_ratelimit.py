"""Failed-login limits (per client address and overall) and a throttle for their log lines.

Pure bookkeeping over a sliding window, no tornado. Memory is bounded by construction:
once a limit is reached no more attempts are checked, so no more failures are recorded;
at most ``overall`` failures (and as many client entries) are remembered.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

__all__ = ["FailureLimiter", "LogThrottle"]


class FailureLimiter:
    """Counts failed logins in the last ``window`` seconds, per client and overall.

    Call :meth:`retry_after` before checking a credential and do not check it when the
    answer is not None; call :meth:`failed` after a wrong one.
    """

    def __init__(
        self,
        per_client: int = 5,
        overall: int = 50,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_client = per_client
        self.overall = overall
        self.window = window
        self._clock = clock
        self._all: deque[tuple[float, str]] = deque()
        self._by_client: dict[str, deque[float]] = {}

    def _expire(self, now: float) -> None:
        # Failures expire in the order they happened, so a client's oldest failure is the
        # one leaving the overall queue.
        horizon = now - self.window
        while self._all and self._all[0][0] <= horizon:
            _, client = self._all.popleft()
            mine = self._by_client[client]
            mine.popleft()
            if not mine:
                del self._by_client[client]

    def retry_after(self, client: str) -> float | None:
        """Seconds until ``client`` may try again, or None when it may try now."""
        now = self._clock()
        self._expire(now)
        waits = []
        mine = self._by_client.get(client)
        if mine is not None and len(mine) >= self.per_client:
            waits.append(mine[-self.per_client] + self.window - now)
        if len(self._all) >= self.overall:
            waits.append(self._all[-self.overall][0] + self.window - now)
        return max(waits) if waits else None

    def failed(self, client: str) -> None:
        """Record one failed attempt by ``client``."""
        now = self._clock()
        self._expire(now)
        self._all.append((now, client))
        self._by_client.setdefault(client, deque()).append(now)

    def tracked(self) -> int:
        """How many failures are remembered (for tests and the curious)."""
        self._expire(self._clock())
        return len(self._all)


class LogThrottle:
    """Lets one log line through per ``interval`` seconds and counts the ones it held back."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self._clock = clock
        self._next = float("-inf")
        self._held = 0

    def allow(self) -> int | None:
        """None: do not log now. Else log, and the returned count of lines held back since
        the last one that went through can be mentioned."""
        now = self._clock()
        if now < self._next:
            self._held += 1
            return None
        held, self._held = self._held, 0
        self._next = now + self.interval
        return held
