"""Test helpers shared by every Circus package: deadline waits and a leak check.

What this module promises (it needs only the standard library and psutil; pytest is imported
only by :func:`leak_check_fixture`, which makes a pytest fixture):

- :func:`wait_until` (``predicate, timeout, message``, keyword ``interval``) calls the
  predicate until it returns something truthy and returns that value; once ``timeout``
  seconds have passed it raises :class:`AssertionError` naming what was waited for and the
  last value seen. The predicate is always tried once more after the last
  sleep, so a condition met just before the deadline is never reported as missed. Exceptions
  raised by the predicate propagate at once (a predicate may abort the wait that way).
- :func:`async_wait_until` does the same on the running event loop; the predicate may return
  an awaitable, which is awaited.
- :func:`leak_check` checks that a block of code leaves nothing behind: every process it
  started (a descendant of this process that did not exist before) is gone and reaped within
  ``grace`` seconds, and every descriptor it opened is closed (exactly, except a small
  allowance for event machinery a library keeps for the life of the process: see
  :class:`LeakCheck`). Leftover processes are killed and reaped before the
  :class:`LeakError` is raised, and a leaked descriptor is reported once, so one leak never
  fails the next test.
- :func:`leak_check_fixture` wraps :class:`LeakCheck` into an autouse pytest fixture: each
  package's ``conftest.py`` makes it active with one line.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import os
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import psutil

__all__ = [
    "FD_ALLOWANCE",
    "MACHINERY",
    "FdLeak",
    "LeakCheck",
    "LeakError",
    "async_wait_until",
    "leak_check",
    "leak_check_fixture",
    "wait_until",
]

T = TypeVar("T")

DEFAULT_TIMEOUT = 20.0  # generous: the machine running the tests may be busy
DEFAULT_INTERVAL = 0.02


def _describe(predicate: Callable[..., object], message: str) -> str:
    if message:
        return message
    name = getattr(predicate, "__qualname__", repr(predicate))
    if name.endswith("<lambda>"):
        try:
            return inspect.getsource(predicate).strip()
        except (OSError, TypeError):
            pass
    return name


def _timed_out(predicate: Callable[..., object], timeout: float, message: str, last: object) -> str:
    return (
        f"timed out after {timeout:g} s waiting for {_describe(predicate, message)} "
        f"(last value: {last!r})"
    )


def wait_until(
    predicate: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT,
    message: str = "",
    *,
    interval: float = DEFAULT_INTERVAL,
) -> T:
    """Call ``predicate`` every ``interval`` s until it returns a truthy value; return it.

    Raises :class:`AssertionError` saying what was waited for (``message``, else the
    predicate's name or source) after ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(_timed_out(predicate, timeout, message, value))
        time.sleep(min(interval, left))


@overload
async def async_wait_until(
    predicate: Callable[[], Awaitable[T]],
    timeout: float = ...,  # noqa: ASYNC109 (a deadline is what this helper is for)
    message: str = ...,
    *,
    interval: float = ...,
) -> T: ...


@overload
async def async_wait_until(
    predicate: Callable[[], T],
    timeout: float = ...,  # noqa: ASYNC109 (a deadline is what this helper is for)
    message: str = ...,
    *,
    interval: float = ...,
) -> T: ...


async def async_wait_until(
    predicate: Callable[[], Any],
    timeout: float = DEFAULT_TIMEOUT,  # noqa: ASYNC109
    message: str = "",
    *,
    interval: float = DEFAULT_INTERVAL,
) -> Any:
    """:func:`wait_until` on the running loop: sleeps with ``asyncio.sleep``, and awaits the
    predicate's result when it is awaitable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        left = deadline - loop.time()
        if left <= 0:
            raise AssertionError(_timed_out(predicate, timeout, message, value))
        await asyncio.sleep(min(interval, left))


# -- the leak check ---------------------------------------------------------------------------

# Descriptors a library may keep for the life of the process once it is first used: the
# event machinery of a global ZeroMQ context (one eventfd for the context, an eventfd and an
# epoll fd for its reaper and for each I/O thread: 5 fds). Up to FD_ALLOWANCE of them may
# appear over a process's life (two such contexts); every other descriptor -- socket, pipe,
# file, pidfd -- that a test leaves open is its leak, from the first one.
MACHINERY = ("anon_inode:[eventfd]", "anon_inode:[eventpoll]")
FD_ALLOWANCE = 10


class LeakError(AssertionError):
    """A block left processes running or unreaped, or descriptors open (all listed)."""


@dataclass(frozen=True)
class FdLeak:
    """One descriptor left open: its number and what it points to (``socket:[…]``, a path…)."""

    fd: int
    target: str

    def __str__(self) -> str:
        return f"fd {self.fd} -> {self.target}"


_Identity = tuple[int, int]  # (pid, start time in clock ticks): a recycled pid is another


def _process_table() -> dict[_Identity, int]:
    """Every process on the host: identity -> parent pid (one pass over /proc)."""
    table: dict[_Identity, int] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:  # exited meanwhile
            continue
        # the command name (field 2) may hold spaces and parentheses: split after the last ")"
        fields = stat[stat.rindex(b")") + 2 :].split()
        table[(int(name), int(fields[19]))] = int(fields[1])
    return table


def _descendants(table: dict[_Identity, int], root: int) -> list[_Identity]:
    """Every process under ``root`` in ``table``, parents before their children."""
    children: dict[int, list[_Identity]] = {}
    for identity, ppid in table.items():
        children.setdefault(ppid, []).append(identity)
    found: list[_Identity] = []
    todo = [root]
    while todo:
        for identity in children.get(todo.pop(), []):
            found.append(identity)
            todo.append(identity[0])
    return found


def _open_fds() -> dict[int, str]:
    fds: dict[int, str] = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            fds[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:  # the descriptor listdir itself used, or one closed meanwhile
            continue
    return fds


def _describe_process(pid: int) -> str:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            head = f"pid {pid} ({proc.status()}, ppid {proc.ppid()})"
            try:
                return f"{head}: {' '.join(proc.cmdline())}"
            except psutil.Error:  # a zombie has no command line left, only its name
                return f"{head}: [{proc.name()}]"
    except psutil.Error:
        return f"pid {pid} (gone while described)"


@dataclass
class LeakCheck:
    """Checks that what runs between :meth:`start` and :meth:`finish` leaves nothing behind.

    Processes: every child of this process that did not exist at :meth:`start`, and every
    process under it, must be gone and reaped within ``grace`` seconds of :meth:`finish` (a
    zombie child is a leak: its owner never waited for it). What a child older than the block
    starts meanwhile (a module-scoped daemon respawning a worker) is that child's business.

    Descriptors: every descriptor opened after :meth:`start` and still open at :meth:`finish`
    (after a garbage collection) is a leak, except event machinery (eventfd, epoll: see
    :data:`MACHINERY`), of which up to ``fd_allowance`` may stay over the instance's life (a
    global ZeroMQ context created lazily keeps 5); beyond that, they are leaks too. One
    instance may be reused for many blocks in a row (the allowance is spent across them; a
    descriptor is reported once).
    """

    grace: float = 5.0
    fd_allowance: int = FD_ALLOWANCE
    _children: set[_Identity] = field(default_factory=set, repr=False)
    _fds: dict[int, str] = field(default_factory=dict, repr=False)
    _kept: dict[int, str] = field(default_factory=dict, repr=False)  # under the allowance
    _reported: dict[int, str] = field(default_factory=dict, repr=False)  # failed a block once

    def start(self) -> None:
        """Remember this process's descendants and open descriptors."""
        me = os.getpid()
        self._children = {key for key, ppid in _process_table().items() if ppid == me}
        self._fds = _open_fds()

    def leftover_processes(self) -> list[int]:
        """Pids of the children started since :meth:`start` and of every process under them
        that still exist (running or zombie)."""
        table = _process_table()
        me = os.getpid()
        new = [key for key, ppid in table.items() if ppid == me and key not in self._children]
        left = [pid for pid, _ in new]
        for pid, _ in new:
            left += [grandchild for grandchild, _ in _descendants(table, pid)]
        return left

    def finish(self, *, check: bool = True) -> None:
        """Wait up to ``grace`` s for new descendants to go, kill and reap those left; with
        ``check``, raise :class:`LeakError` listing them and the descriptors left open.

        Leaked descriptors are not closed (a library may still use them: closing a ZeroMQ
        context's eventfd under it aborts the process); they are reported once.
        """
        deadline = time.monotonic() + self.grace
        left = self.leftover_processes()
        while left and time.monotonic() < deadline:
            time.sleep(0.02)  # a zombie's parent gets no event we could wait on
            left = self.leftover_processes()
        processes = [_describe_process(proc) for proc in left]
        _kill_and_reap(left)
        fds = self._new_fds()
        if check and (processes or fds):
            lines = ["left behind:"]
            lines += [f"  process {line}" for line in processes]
            lines += [f"  {leak}" for leak in fds]
            raise LeakError("\n".join(lines))

    def _new_fds(self) -> list[FdLeak]:
        opened = self._opened_since_start()
        if opened:
            gc.collect()  # objects in reference cycles close their descriptors only now
            opened = self._opened_since_start()
        machinery = [leak for leak in opened if leak.target in MACHINERY]
        if len(self._kept) + len(machinery) <= self.fd_allowance:
            self._kept.update((leak.fd, leak.target) for leak in machinery)
            opened = [leak for leak in opened if leak.target not in MACHINERY]
        self._reported.update((leak.fd, leak.target) for leak in opened)
        return opened

    def _opened_since_start(self) -> list[FdLeak]:
        return [
            FdLeak(fd, target)
            for fd, target in sorted(_open_fds().items())
            if target not in (self._fds.get(fd), self._kept.get(fd), self._reported.get(fd))
        ]


def _kill_and_reap(pids: list[int]) -> None:
    """SIGKILL ``pids``; reap those that are our children, wait a while for the others."""
    procs: list[psutil.Process] = []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            proc.send_signal(signal.SIGKILL)
            procs.append(proc)
        except psutil.Error:
            pass
    me = os.getpid()
    for proc in procs:
        try:
            if proc.ppid() == me:
                os.waitpid(proc.pid, 0)
            else:
                proc.wait(5)
        except (OSError, psutil.Error):
            pass


@contextmanager
def leak_check(*, grace: float = 5.0, fd_allowance: int = 0) -> Iterator[LeakCheck]:
    """Fail with :class:`LeakError` if the block leaves a process or a descriptor behind.

    Without an allowance (the default here) every descriptor the block opened must be closed
    at its end. If the block raises, leftovers are still cleaned up but not reported (the
    block's own exception is the one that matters).
    """
    check = LeakCheck(grace=grace, fd_allowance=fd_allowance)
    check.start()
    try:
        yield check
    except BaseException:
        check.finish(check=False)
        raise
    check.finish()


_process_check: LeakCheck | None = None


def leak_check_fixture(*, grace: float = 5.0) -> Any:
    """An autouse pytest fixture: every test runs inside this process's :class:`LeakCheck`.

    In a ``conftest.py``: ``no_leaks = leak_check_fixture()``. All such fixtures of one
    process share one check (the first one made sets ``grace``), so the descriptor allowance
    is per process (per xdist worker), not per package. Being autouse and function scoped,
    the fixture is set up before the test's other function-scoped fixtures and torn down
    after them: it judges the test with its fixtures' teardown, and a leak is reported as an
    error at teardown.
    """
    import pytest

    @pytest.fixture(autouse=True)
    def no_leaks(tmp_path_factory: Any) -> Iterator[None]:
        global _process_check
        if _process_check is None:
            _process_check = LeakCheck(grace=grace)
            # Daemons started by tests keep their crash state files (circus.arbiter) in a
            # directory of the run, never in the host's /run/circus.
            if not os.environ.get("CIRCUS_RUNTIME_DIR"):
                os.environ["CIRCUS_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("circus-run"))
        _process_check.start()
        yield
        _process_check.finish()

    return no_leaks
