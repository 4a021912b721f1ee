"""Worker output without a stream, forwarded to circusd's own stdout (fd 1) and stderr (fd 2).

Upstream Circus lets such children inherit circusd's stdout/stderr; ours pipes them (for the
``logs`` ring and the ``output.*`` topics), so the :class:`~._output.OutputHub` hands every
complete line of a stream without a configured stream class to an :class:`OutputForwarder`,
which writes it there unchanged.

The event loop never writes to fd 1/2 itself: each distinct target (fd 1 and fd 2 on one
file or pipe share one) has a writer thread, started at its first line and fed through a
buffer bounded in bytes. A consumer that reads slowly or not at all (a paused terminal, a
pipe nobody drains) therefore costs circusd nothing but dropped lines: once the buffer is
full, new chunks (each one or more whole lines) are dropped, and a WARNING says how many
bytes, at most every :data:`WARN_INTERVAL` seconds. At stop, what is queued is written for
at most a second; a writer stuck on a consumer that does not read never holds the exit.
fds 1/2 keep their flags (no ``O_NONBLOCK``: they are often shared with the user's shell).
A target that is closed or ``/dev/null`` (``circusd --daemon``) is checked once, when the
forwarder is made, and never written to.
"""

from __future__ import annotations

import logging
import os
import select
import stat
import threading
import time
from collections import deque

__all__ = [
    "MAX_QUEUED",
    "WARN_INTERVAL",
    "FdWriter",
    "OutputForwarder",
    "forwardable",
    "shared_writer",
]

log = logging.getLogger("circus.arbiter")

#: Bytes queued per target before chunks are dropped.
MAX_QUEUED = 8 * 1024 * 1024
#: At most one drop warning per target this often (seconds).
WARN_INTERVAL = 5.0
#: One write takes up to this much: a writer thread that gets the GIL seldom (a busy loop
#: holds it up to the 5 ms switch interval) must still move a lot per turn.
_BATCH_BYTES = 4 * 1024 * 1024
#: Chunks for one ``os.writev``; more (many short lines) are joined into one buffer first.
_IOV_MAX = 1024


class FdWriter:
    """One writer thread for one file descriptor, fed by a byte-bounded queue.

    Args:
        fd: the descriptor written to (not owned: never closed).
        name: for messages (``stdout``, ``stderr``).
        limit: bytes queued before :meth:`put` drops.
    """

    def __init__(self, fd: int, name: str, limit: int = MAX_QUEUED) -> None:
        self.fd = fd
        self.name = name
        self.limit = limit
        self.dropped = 0  # bytes dropped in all
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._cond = threading.Condition(threading.Lock())
        self._idle = False  # the thread waits for work: put must notify
        self._closing = False
        self._dead = False  # the target failed (EPIPE, EBADF...): nothing more is queued
        self._thread: threading.Thread | None = None
        self._unreported = 0
        self._last_warn = 0.0

    @property
    def accepting(self) -> bool:
        """False once closed or failed: :meth:`put` then ignores everything."""
        return not (self._dead or self._closing)

    def put(self, data: bytes) -> bool:
        """Queue ``data`` (whole lines) for writing; drop it if the buffer is full.

        Returns False when the writer no longer accepts anything (closed or failed).
        """
        with self._cond:
            if self._dead or self._closing:
                return False
            if self._queued + len(data) <= self.limit:
                self._queue.append(data)
                self._queued += len(data)
                if self._thread is None:
                    self._start()
                elif self._idle:
                    self._cond.notify()
                return True
            self.dropped += len(data)
            self._unreported += len(data)
            count = self._due_report()
        # logged outside the lock: the log handler may write to the very same slow target
        if count:
            self._warn(count, f"circusd's {self.name} is not read fast enough")
        return True

    def close(self, timeout: float = 1.0) -> None:
        """Write what is queued for at most ``timeout`` seconds, then stop the thread.

        A thread still stuck in a write to a consumer that does not read is left behind
        (a daemon thread: it never holds the process's exit).
        """
        with self._cond:
            self._closing = True
            self._cond.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
        with self._cond:
            # the thread stops at its next chunk, even if the join timed out
            self._dead = True
            left = self._queued
            self._queue.clear()
            self._queued = 0
            self.dropped += left
            count, self._unreported = self._unreported, 0
        if count:
            self._warn(count, f"circusd's {self.name} is not read fast enough")
        if left:
            self._warn(left, f"circusd's {self.name} did not take them before exit")

    @property
    def queued(self) -> int:
        """Bytes not written yet (the batch being written included)."""
        return self._queued

    def _warn(self, count: int, why: str) -> None:
        log.warning("dropped %d bytes of worker output forwarded to %s: %s", count, self.name, why)

    def _start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"circus-forward-{self.name}", daemon=True
        )
        self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing and not self._dead:
                    self._idle = True
                    self._cond.wait()
                    self._idle = False
                if self._dead or not self._queue:
                    return
                chunks = [self._queue.popleft()]
                size = len(chunks[0])
                queue = self._queue
                while queue and size < _BATCH_BYTES:
                    chunk = queue.popleft()
                    chunks.append(chunk)
                    size += len(chunk)
            if len(chunks) > _IOV_MAX:
                chunks = [b"".join(chunks)]
            try:
                _write_all(self.fd, chunks)
            except OSError as exc:
                with self._cond:
                    self._dead = True
                    self._queue.clear()
                    self._queued = 0
                log.warning(
                    "worker output is no longer forwarded to circusd's %s: %s", self.name, exc
                )
                return
            with self._cond:
                # counted until written: the bound covers the batch being written too
                self._queued = max(0, self._queued - size)
            if self._unreported:
                self._report_late()

    def _report_late(self) -> None:
        # drops that came after the last warning, once the interval has passed
        with self._cond:
            count = self._due_report()
        if count:
            self._warn(count, f"circusd's {self.name} was not read fast enough")

    def _due_report(self) -> int:
        """Bytes dropped and not yet reported, if a warning is due now (else 0); under the
        lock. Taking them resets the count and the interval."""
        now = time.monotonic()
        if not self._unreported or now - self._last_warn < WARN_INTERVAL:
            return 0
        self._last_warn = now
        count, self._unreported = self._unreported, 0
        return count


def _write_all(fd: int, chunks: list[bytes]) -> None:
    while chunks:
        try:
            written = os.writev(fd, chunks)
        except BlockingIOError:
            # somebody else made the shared descriptor non-blocking: wait until it takes more
            poller = select.poll()
            poller.register(fd, select.POLLOUT)
            poller.poll(1000)
            continue
        # a partial write (a signal, a full non-blocking pipe): go on after what was taken
        done = 0
        while done < len(chunks) and written >= len(chunks[done]):
            written -= len(chunks[done])
            done += 1
        del chunks[:done]
        if written:
            chunks[0] = chunks[0][written:]


def forwardable(fd: int) -> tuple[int, int] | None:
    """The identity ``(st_dev, st_ino)`` of what ``fd`` writes to, or None when it is closed
    or ``/dev/null`` (nothing to forward there)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    if stat.S_ISCHR(st.st_mode):
        try:
            null = os.stat(os.devnull)
        except OSError:
            null = None
        if null is not None and (
            st.st_rdev == null.st_rdev or (st.st_dev, st.st_ino) == (null.st_dev, null.st_ino)
        ):
            return None
    return st.st_dev, st.st_ino


# One writer per target for the whole process: the forwarder and circusd's log handler share
# it, so log lines and forwarded worker lines keep their order and neither blocks the loop.
_writers: dict[tuple[int, int], FdWriter] = {}
_writers_lock = threading.Lock()


def shared_writer(fd: int, name: str, limit: int = MAX_QUEUED) -> FdWriter | None:
    """The process's live writer for what ``fd`` writes to (made on first use), or None
    when ``fd`` is closed or ``/dev/null``."""
    target = forwardable(fd)
    if target is None:
        return None
    with _writers_lock:
        writer = _writers.get(target)
        if writer is None or not writer.accepting:
            writer = _writers[target] = FdWriter(fd, name, limit)
        return writer


def _forget_writers() -> None:
    # A forked child has none of the parent's threads: its writers would never write.
    _writers.clear()


os.register_at_fork(after_in_child=_forget_writers)


class OutputForwarder:
    """The writers for circusd's stdout and stderr, decided once when made.

    Args:
        fds: ``{"stdout": 1, "stderr": 2}`` by default.
        limit: bytes queued per target before dropping.
    """

    def __init__(self, fds: dict[str, int] | None = None, limit: int = MAX_QUEUED) -> None:
        self._writers: dict[str, FdWriter] = {}
        for name, fd in (fds or {"stdout": 1, "stderr": 2}).items():
            # stdout and stderr on one file or pipe: one shared writer keeps their order
            writer = shared_writer(fd, name, limit)
            if writer is not None:
                self._writers[name] = writer

    def writer(self, stream: str) -> FdWriter | None:
        """The writer for ``stream`` (``stdout``/``stderr``), None when it is not forwarded."""
        return self._writers.get(stream)

    def close(self, timeout: float = 1.0) -> None:
        """Flush and stop every writer, ``timeout`` seconds at most in all."""
        deadline = time.monotonic() + timeout
        for writer in {id(w): w for w in self._writers.values()}.values():
            writer.close(max(0.0, deadline - time.monotonic()))
