"""Forking from a thread whose descriptor table is its own and nearly empty.

A fork copies the parent's descriptor table, and the child then closes every copy before
exec: both cost time in proportion to the descriptors open. A supervisor holds a pidfd and
two pipe ends per child, so at 1,000 children each spawn pays for ~3,000 descriptors, at
10,000 for ~30,000 (a spawn then takes twice as long as from a small program).

Here one dedicated thread unshares its descriptor table (``unshare(CLONE_FILES)``), closes
its copies of ours, and forks on request. A child forked by that thread is still our child
(same process, same pid, reaped as any other), but its fork copies a table of a few
descriptors. The three descriptors the child gets as 0/1/2 are handed to the thread over a
socket pair (``SCM_RIGHTS``), those of a whole batch of spawns in one message
(:meth:`SmallTable.run_many`: one hand-over and one answer for up to ~80 children); the pipe
read ends and the pidfd stay in ours.

Rules that keep it sound:
- The requesting thread waits while the spawn thread works, with the garbage collector
  off: a collection in the spawn thread could run the finaliser of an object of ours and
  close a descriptor number that means something else in its table.
- The spawn thread blocks every signal except for the fork itself, where it takes the
  requester's mask (which the child inherits); it keeps its copy of the signal wake-up
  descriptor so that a signal landing there still wakes the event loop.
- Only plain spawns come here: no descriptors to pass by number (sockets, stdin socket), no
  working directory held by descriptor, no cgroup leaf (that is entered by the requesting
  thread). Anything else forks from the requesting thread as before.

The price: ``PR_SET_PDEATHSIG`` fires when the *thread* that forked a child ends, and this
thread ends with the process or at an ``execve`` of it (circusd's ``daemon-reexec``), or when
an exception (a signal handler's) interrupts a request before it was surely handed over (see
:meth:`SmallTable.run_many`): a child forked here that asked for a parent-death signal gets it
then, where one forked by the main thread would not. Hence only past a threshold of open
descriptors (``_spawn``).
"""

from __future__ import annotations

import contextlib
import errno
import gc
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

__all__ = ["HandOffError", "SmallTable", "kill_all", "spawner", "shutdown"]

_CLONE_FILES = 0x400
#: Most descriptors handed to the thread in one message (the kernel's SCM_MAX_FD is 253).
MAX_HANDED_FDS = 250
# (fork, [((stdin, stdout, stderr) as places in the message, kwargs)], signal mask)
_Request = tuple[
    Callable[..., int], list[tuple[tuple[int, int, int], dict[str, Any]]], frozenset[int]
]
_ALL_SIGNALS = frozenset(signal.valid_signals())


def _unshare_files() -> None:
    import _ctypes

    class _Unshare(_ctypes.CFuncPtr):
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = None

    call = _Unshare(_ctypes.dlsym(_ctypes.dlopen(None, os.RTLD_NOW), "unshare"))  # type: ignore[arg-type]
    # restype None: the int result is lost, so errno is checked (cleared first).
    _ctypes.set_errno(0)
    call(_CLONE_FILES)
    err = _ctypes.get_errno()
    if err:
        raise OSError(err, os.strerror(err))


class HandOffError(OSError):
    """The request could not be handed to the spawn thread (nothing was started)."""


class SmallTable:
    """The spawn thread and its socket pair; :meth:`run` forks one child through it."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._sock = ours
        self._theirs = theirs.detach()  # a number in both tables until the thread is ready
        self._wakeup = _wakeup_fd()
        self._done = threading.Event()  # set while no request is outstanding
        self._done.set()
        self._busy = threading.Lock()  # one request at a time (one slot, one answer)
        self._request: _Request | None = None
        self._results: list[tuple[int, BaseException | None]] = []
        self._ready = threading.Event()
        self._failed: list[BaseException] = []  # what stopped the thread from starting
        self._thread = threading.Thread(target=self._main, name="circus-spawn", daemon=True)
        try:
            self._thread.start()
        except RuntimeError as exc:  # no thread to be had (RLIMIT_NPROC, pids.max)
            self._sock.close()
            os.close(self._theirs)
            raise HandOffError(errno.EAGAIN, f"spawn thread: {exc}") from None
        self._ready.wait()
        os.close(self._theirs)  # ours: the thread has its own copy now
        if self._failed:
            self._sock.close()
            raise self._failed[0]

    def alive(self) -> bool:
        """Whether the thread still takes requests."""
        return self._sock.fileno() >= 0 and self._thread.is_alive()

    def run(
        self, fork: Callable[..., int], stdio: tuple[int, int, int], kwargs: dict[str, Any]
    ) -> int:
        """``fork(stdin=, stdout=, stderr=, **kwargs)`` in the spawn thread, with ``stdio``
        (descriptors of ours) as the child's 0/1/2; returns what it returns, raises what it
        raises. Raises HandOffError, having started nothing, while another thread's
        request is under way (that caller then forks itself)."""
        ((pid, error),) = self.run_many(fork, [(stdio, kwargs)])
        if error is not None:
            raise error
        return pid

    def run_many(
        self,
        fork: Callable[..., int],
        jobs: Sequence[tuple[tuple[int, int, int], dict[str, Any]]],
    ) -> list[tuple[int, BaseException | None]]:
        """:meth:`run` for each ``(stdio, kwargs)`` of ``jobs``, in order, with one
        hand-over per :data:`MAX_HANDED_FDS` distinct descriptors instead of one per child.

        Returns ``(pid, None)`` for each child started and ``(0, exception)`` for each that
        could not be (the others are still started). Raises HandOffError, having started
        nothing, while another thread's request is under way or when nothing reached the
        thread; an exception raised meanwhile in the calling thread (a signal handler's) is
        raised once every child of the batch started so far has been killed and reaped.
        """
        if not self._busy.acquire(blocking=False):
            raise HandOffError("the spawn thread serves another request")
        done: list[tuple[int, BaseException | None]] = []  # the thread appends here
        try:
            for chunk in _chunks(jobs):
                try:
                    self._run(fork, chunk, done)
                except HandOffError:
                    if not done:
                        raise
                    # part of the batch started: the rest fails as a spawn that cannot fork
                    done.extend((0, OSError(errno.EAGAIN, "spawn thread unavailable"))
                                for _ in range(len(jobs) - len(done)))  # fmt: skip
                    break
        except BaseException:
            # Nobody will own these children: leave nothing behind. A signal handler's
            # exception can land anywhere, even between two steps of the wait: the thread
            # is waited for again (at once when it answered) before anything is killed.
            if not self._done.is_set():
                # Landed between the answer's clear and the send: the request may never
                # have reached the thread, whose answer would then never come. Our end
                # closed, the thread serves what reached it, sees the end and answers.
                self._sock.close()
            self._wait()
            kill_all(pid for pid, error in done if error is None)
            raise
        finally:
            self._busy.release()
        return done

    def _run(
        self,
        fork: Callable[..., int],
        jobs: Sequence[tuple[tuple[int, int, int], dict[str, Any]]],
        out: list[tuple[int, BaseException | None]],
    ) -> None:
        handed: dict[int, int] = {}  # our descriptor -> its place in the message
        indexed: list[tuple[tuple[int, int, int], dict[str, Any]]] = []
        for (i, o, e), kwargs in jobs:
            places = (handed.setdefault(i, len(handed)), handed.setdefault(o, len(handed)),
                      handed.setdefault(e, len(handed)))  # fmt: skip
            indexed.append((places, kwargs))
        mask = frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, ()))
        before = len(out)
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._request = (fork, indexed, mask)
            self._results = out
            self._done.clear()
            try:
                socket.send_fds(self._sock, [b"s"], list(handed))
            except OSError as exc:  # nothing reached the thread: the caller forks itself
                self._request = None
                self._done.set()
                raise HandOffError(str(exc)) from exc
            try:
                interrupted = self._wait()
            finally:
                self._request = None
        finally:
            if collecting:
                gc.enable()
        if interrupted is not None:
            raise interrupted  # the batch's children are killed by run_many
        missing = len(jobs) - (len(out) - before)
        if missing:
            out.extend((0, OSError(0, "the spawn thread ended")) for _ in range(missing))

    def _wait(self) -> BaseException | None:
        """Wait for the thread's answer, even through an exception a signal handler raised
        meanwhile (returned, to be raised once the answer is in). Returns at once when the
        thread has answered already: waiting twice is safe."""
        interrupted: BaseException | None = None
        while True:
            try:
                while not self._done.wait():
                    pass
                return interrupted
            except BaseException as exc:  # e.g. KeyboardInterrupt: the thread still works
                interrupted = exc

    def close(self) -> None:
        """End the thread (it closes its table) and release the socket pair."""
        if self._sock.fileno() >= 0:
            self._sock.close()  # the thread sees the end of the pair
            self._thread.join(5.0)

    # -- the spawn thread ---------------------------------------------------------------

    def _main(self) -> None:
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
            _unshare_files()
            keep = {self._theirs, self._wakeup}
            _close_all_but(keep)
            sock = socket.socket(fileno=self._theirs)
        except BaseException as exc:  # reported to the constructor
            self._failed.append(exc)
            self._ready.set()
            return
        self._ready.set()
        try:
            self._serve(sock)
        finally:
            sock.close()
            if self._request is not None:  # a requester waits: never leave it hanging
                self._done.set()  # what was not done is reported missing

    def _serve(self, sock: socket.socket) -> None:
        anc_size = socket.CMSG_SPACE(MAX_HANDED_FDS * 4)
        flags = socket.MSG_CMSG_CLOEXEC
        while True:
            # Straight to the blocking call: nothing the collector tracks is allocated
            # between the previous answer and this wait (the requester may have turned
            # the collector back on meanwhile).
            try:
                msg, ancdata, _flags, _addr = sock.recvmsg(16, anc_size, flags)
            except OSError:
                return
            if not msg:
                for fd in _received(ancdata):
                    os.close(fd)
                return  # the requester closed its end
            fds: list[int] = []
            results = self._results
            try:
                fds = _received(ancdata)
                request = self._request
                if request is None or len(fds) > MAX_HANDED_FDS:
                    raise OSError(0, "spawn thread: malformed request")
                fork, jobs, mask = request
                if any(place >= len(fds) for places, _ in jobs for place in places):
                    raise OSError(0, "spawn thread: malformed request")
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                try:
                    for (i, o, e), kwargs in jobs:
                        try:
                            pid = fork(stdin=fds[i], stdout=fds[o], stderr=fds[e], **kwargs)
                        except BaseException as exc:  # handed to the requester
                            results.append((0, exc))
                        else:
                            results.append((pid, None))
                finally:
                    signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
            except BaseException as exc:  # the whole request (nothing started by it)
                if not results:
                    results.append((0, exc))
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._done.set()


def _chunks(
    jobs: Sequence[tuple[tuple[int, int, int], dict[str, Any]]],
) -> Iterator[list[tuple[tuple[int, int, int], dict[str, Any]]]]:
    """``jobs`` cut so that no chunk hands over more than MAX_HANDED_FDS descriptors."""
    chunk: list[tuple[tuple[int, int, int], dict[str, Any]]] = []
    seen: set[int] = set()
    for job in jobs:
        new = seen.union(job[0])
        if len(new) > MAX_HANDED_FDS:
            yield chunk
            chunk, new = [], set(job[0])
        chunk.append(job)
        seen = new
    if chunk:
        yield chunk


def kill_all(pids: Iterable[int]) -> None:
    """SIGKILL and reap each of ``pids`` (children nobody will own)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def _received(ancdata: list[tuple[int, int, bytes]]) -> list[int]:
    fds: list[int] = []
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            usable = len(data) - len(data) % 4
            fds.extend(int.from_bytes(data[i : i + 4], sys.byteorder) for i in range(0, usable, 4))
    return fds


def _close_all_but(keep: set[int]) -> None:
    """Close every descriptor of this thread's (unshared) table but ``keep``; 0/1/2 become
    /dev/null, so that descriptors received later never take those numbers."""
    start = 0
    for fd in sorted(k for k in keep if k >= 0):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 2**31 - 1)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        if fd != null and fd not in keep:
            os.dup2(null, fd, inheritable=False)
    if null > 2:
        os.close(null)
    else:
        os.set_inheritable(null, False)


def _wakeup_fd() -> int:
    """The signal wake-up descriptor (-1: none, or not known from this thread)."""
    if threading.current_thread() is not threading.main_thread():
        return -1
    fd = signal.set_wakeup_fd(-1)
    if fd != -1:
        signal.set_wakeup_fd(fd)
    return fd


_spawner: SmallTable | None = None
_owner = 0
_starting = threading.Lock()


def spawner() -> SmallTable | None:
    """The process's spawn thread, started on first use; None when it cannot run here."""
    global _spawner, _owner, _broken
    if _broken:
        return None
    current = _spawner
    if current is not None and _owner == os.getpid() and current.alive():
        return current
    with _starting:  # two threads' first spawns start one thread, not two
        current = _spawner
        if current is not None and _owner == os.getpid() and current.alive():
            return current
        if current is not None and _owner == os.getpid():
            current.close()  # its thread ended: its end of the pair goes too
        try:
            current = SmallTable()
        except HandOffError:
            return None  # for now (out of threads): the caller forks itself
        except OSError:
            _broken = True  # e.g. unshare refused by a seccomp filter: never try again
            return None
        _spawner, _owner = current, os.getpid()
        return current


def shutdown() -> None:
    """Stop the spawn thread, if any (the next spawn through it starts a new one)."""
    global _spawner
    current, _spawner = _spawner, None
    if current is not None and _owner == os.getpid():
        current.close()


def _forget_in_child() -> None:
    global _spawner, _starting
    _spawner = None  # the thread does not exist in a forked copy
    _starting = threading.Lock()  # nor the thread that may have held it


_broken = False
os.register_at_fork(after_in_child=_forget_in_child)
