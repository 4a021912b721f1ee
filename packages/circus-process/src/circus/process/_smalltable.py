"""Forking from a thread whose descriptor table is its own and nearly empty.

A fork copies the parent's descriptor table, and the child then closes every copy before
exec: both cost time in proportion to the descriptors open. A supervisor holds a pidfd and
two pipe ends per child, so at 1,000 children each spawn pays for ~3,000 descriptors, at
10,000 for ~30,000 (a spawn then takes twice as long as from a small program).

Here one dedicated thread unshares its descriptor table (``unshare(CLONE_FILES)``), closes
its copies of ours, and forks on request. A child forked by that thread is still our child
(same process, same pid, reaped as any other), but its fork copies a table of a few
descriptors. The three descriptors the child gets as 0/1/2 are handed to the thread per
spawn over a socket pair (``SCM_RIGHTS``); the pipe read ends and the pidfd stay in ours.

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
thread ends with the process or at an ``execve`` of it (circusd's ``daemon-reexec``): a child
forked here that asked for a parent-death signal gets it then, where one forked by the main
thread would not. Hence only past a threshold of open descriptors (``_spawn``).
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
from collections.abc import Callable
from typing import Any

__all__ = ["HandOffError", "SmallTable", "spawner", "shutdown"]

_CLONE_FILES = 0x400
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
        self._done = threading.Lock()
        self._done.acquire()
        self._busy = threading.Lock()  # one request at a time (one slot, one answer)
        self._request: tuple[Callable[..., int], dict[str, Any], frozenset[int]] | None = None
        self._result: tuple[int, BaseException | None] = (0, None)
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
        if not self._busy.acquire(blocking=False):
            raise HandOffError("the spawn thread serves another request")
        try:
            return self._run(fork, stdio, kwargs)
        finally:
            self._busy.release()

    def _run(
        self, fork: Callable[..., int], stdio: tuple[int, int, int], kwargs: dict[str, Any]
    ) -> int:
        mask = frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, ()))
        collecting = gc.isenabled()
        gc.disable()
        try:
            self._request = (fork, kwargs, mask)
            try:
                socket.send_fds(self._sock, [b"s"], list(stdio))
            except OSError as exc:  # nothing reached the thread: the caller forks itself
                self._request = None
                raise HandOffError(str(exc)) from exc
            interrupted = self._wait()
            pid, error = self._result
            self._request = None
            self._result = (0, None)
        finally:
            if collecting:
                gc.enable()
        if interrupted is not None:
            if error is None:  # nobody will own this child: leave nothing behind
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
            raise interrupted
        if error is not None:
            raise error
        return pid

    def _wait(self) -> BaseException | None:
        """Wait for the thread's answer, even through an exception a signal handler raised
        meanwhile (returned, to be raised once the answer is in)."""
        interrupted: BaseException | None = None
        while True:
            try:
                self._done.acquire()
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
                self._result = (0, OSError(0, "the spawn thread ended"))
                self._done.release()

    def _serve(self, sock: socket.socket) -> None:
        anc_size = socket.CMSG_SPACE(3 * 4)
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
            pid, error, fds = 0, None, []
            try:
                fds = _received(ancdata)
                request = self._request
                if request is None or len(fds) != 3:
                    raise OSError(0, "spawn thread: malformed request")
                fork, kwargs, mask = request
                signal.pthread_sigmask(signal.SIG_SETMASK, mask)
                try:
                    pid = fork(stdin=fds[0], stdout=fds[1], stderr=fds[2], **kwargs)
                finally:
                    signal.pthread_sigmask(signal.SIG_BLOCK, _ALL_SIGNALS)
            except BaseException as exc:  # handed to the requester
                error = exc
            finally:
                for fd in fds:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self._result = (pid, error)
            self._done.release()


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
