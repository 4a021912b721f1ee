"""The processes of one watcher: the counted ones, the ones being ended, and their bookkeeping.

A process is *counted* from its spawn until it dies on its own or the watcher starts ending
it (stop, decr, reload, kill, max_age): then it moves to *retiring*, so its exit is never
taken for a crash (no respawn, no backoff step, no flapping verdict). The set also owns what
hangs off each process: its worker id, its ``max_age`` timer, and, while it is being ended,
the future its exit resolves. Pure bookkeeping: it never spawns, signals or emits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

from ._errors import ProcessNotFoundError
from ._procs import ProcessLike
from ._wids import WidPool

__all__ = ["ExitGroup", "ProcessSet"]


class ExitGroup:
    """The exits one ending operation waits for: a future per process and one for them all.

    A stop of 1,000 processes awaits :attr:`all_exited` alone, resolved by a countdown,
    rather than ``asyncio.wait`` over 1,000 futures (a done-callback, a loop callback and
    its removal per process, all on the daemon's one CPU-bound thread).
    """

    __slots__ = ("waits", "all_exited", "left")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.waits: dict[int, asyncio.Future[int | None]] = {}
        self.all_exited: asyncio.Future[None] = loop.create_future()
        self.left = 0

    def one_exited(self) -> None:
        """Count one exit; resolve :attr:`all_exited` at the last."""
        self.left -= 1
        if self.left <= 0 and not self.all_exited.done():
            self.all_exited.set_result(None)


class ProcessSet:
    """Counted and retiring processes, worker ids, ``max_age`` timers and exit futures."""

    def __init__(self) -> None:
        self.counted: dict[int, ProcessLike] = {}  # oldest first
        self.retiring: dict[int, ProcessLike] = {}
        self.exits: dict[int, asyncio.Future[int | None]] = {}
        self.age_timers: dict[int, asyncio.TimerHandle] = {}
        self.wids = WidPool()
        self._groups: dict[int, ExitGroup] = {}  # retiring pid -> the group awaiting it

    def __len__(self) -> int:
        return len(self.counted)

    def __contains__(self, pid: object) -> bool:
        return pid in self.counted

    def __iter__(self) -> Iterator[ProcessLike]:
        return iter(list(self.counted.values()))

    @property
    def pids(self) -> list[int]:
        """Pids of the counted processes, oldest first."""
        return list(self.counted)

    @property
    def idle(self) -> bool:
        """Nothing is being ended and no timer is armed (true once a stop has finished)."""
        return not (self.retiring or self.exits or self.age_timers)

    def get(self, pid: int) -> ProcessLike | None:
        """The counted process ``pid``, or None."""
        return self.counted.get(pid)

    def find(self, pid: Any, watcher: str) -> ProcessLike:
        """The counted process ``pid`` (an int, or its text).

        Raises:
            ProcessNotFoundError: no such process in the watcher called ``watcher``.
        """
        try:
            proc = self.counted.get(int(pid))
        except (TypeError, ValueError):
            proc = None
        if proc is None:
            raise ProcessNotFoundError(watcher, pid)
        return proc

    def oldest(self, count: int) -> list[ProcessLike]:
        """The ``count`` counted processes spawned first."""
        return sorted(self.counted.values(), key=lambda p: p.started)[:count]

    def add(self, proc: ProcessLike) -> None:
        """Count a newly spawned process (its wid was taken from :attr:`wids`)."""
        self.counted[proc.pid] = proc

    def arm_max_age(
        self, proc: ProcessLike, delay: float, due: Callable[[ProcessLike], None]
    ) -> None:
        """Call ``due(proc)`` in ``delay`` seconds unless the process ends first."""
        loop = asyncio.get_running_loop()
        self.age_timers[proc.pid] = loop.call_later(delay, due, proc)

    def disarm_max_age(self, pid: int) -> None:
        """Cancel the ``max_age`` timer of ``pid``, if any."""
        timer = self.age_timers.pop(pid, None)
        if timer is not None:
            timer.cancel()

    def retire(self, procs: list[ProcessLike]) -> ExitGroup:
        """Move ``procs`` from counted to retiring; return their :class:`ExitGroup`: a
        future per process still alive, resolved with its return code by :meth:`exited`,
        and one future resolved when the last of them has exited."""
        loop = asyncio.get_running_loop()
        for proc in procs:
            self.counted.pop(proc.pid, None)
            self.retiring[proc.pid] = proc
            self.disarm_max_age(proc.pid)
        group = ExitGroup(loop)
        waits = group.waits
        for proc in procs:
            if proc.returncode is None:  # one already reaped has nothing to wait for
                waits[proc.pid] = self.exits[proc.pid] = loop.create_future()
                self._groups[proc.pid] = group
        group.left = len(waits)
        if not waits:
            group.all_exited.set_result(None)
        return group

    def abandon(self, group: ExitGroup) -> None:
        """Forget the exit futures and countdown entries of ``group``, whose ending was
        given up (cancelled): its processes stay :attr:`retiring` (a later stop ends them)."""
        for pid, future in group.waits.items():
            if self._groups.get(pid) is group:
                del self._groups[pid]
            if self.exits.get(pid) is future:
                del self.exits[pid]
            future.cancel()
        group.all_exited.cancel()

    def exited(self, proc: ProcessLike) -> bool:
        """Record the exit of ``proc``; True when it was counted (it died on its own: its
        wid is free again), False when it was being ended (:meth:`retired` frees it)."""
        pid = proc.pid
        future = self.exits.pop(pid, None)
        if future is not None and not future.done():
            future.set_result(proc.returncode)
        group = self._groups.pop(pid, None)
        if group is not None:
            group.one_exited()
        self.disarm_max_age(pid)
        if self.counted.pop(pid, None) is None:
            return False
        self.wids.release(proc.wid)
        return True

    def retired(self, proc: ProcessLike) -> bool:
        """Forget a process the watcher ended, whose reap is being reported; False when it
        was forgotten already (its reap was reported when it exited)."""
        if self.retiring.pop(proc.pid, None) is None:
            return False
        self.exits.pop(proc.pid, None)
        group = self._groups.pop(proc.pid, None)
        if group is not None:
            group.one_exited()
        self.wids.release(proc.wid)
        return True
