"""Worker ids (``wid``): the smallest unused positive integer, reused after a process dies.

Upstream picks the smallest unused id in ``1 .. 2*numprocesses``; with at most
``2*numprocesses`` processes alive (a graceful reload's peak) the smallest unused positive
integer is always in that range, so this is the same rule, in O(log n) per id.
"""

from __future__ import annotations

import heapq


class WidPool:
    """Hands out the smallest free positive integer; ``release`` makes one free again."""

    def __init__(self) -> None:
        self._free: list[int] = []
        self._next = 1

    def acquire(self) -> int:
        """Return the smallest wid not currently in use."""
        if self._free:
            return heapq.heappop(self._free)
        wid = self._next
        self._next += 1
        return wid

    def claim(self, wid: int) -> None:
        """Mark ``wid`` as in use (a process adopted with its worker id); it must be free."""
        if wid >= self._next:
            for free in range(self._next, wid):
                heapq.heappush(self._free, free)
            self._next = wid + 1
        else:
            self._free.remove(wid)
            heapq.heapify(self._free)

    def release(self, wid: int) -> None:
        """Make ``wid`` available again."""
        if wid == self._next - 1:
            self._next -= 1  # the common case (decr, crash of the newest): keep ids dense
        else:
            heapq.heappush(self._free, wid)
