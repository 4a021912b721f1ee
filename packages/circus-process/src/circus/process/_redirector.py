"""OutputRedirector: pumps children's stdout/stderr pipes into streams on an asyncio loop.

Fast path: when a stream can take bytes verbatim (``can_splice``) and nobody observes the
output, bytes go from the pipe to the file with ``os.splice`` and never enter Python. Otherwise
large non-blocking reads are handed to the stream and to every observer. Nothing blocks the
loop: pipes are non-blocking and each readiness callback moves a bounded amount.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _mux
from ._process import Process

__all__ = ["OutputRedirector", "Observer"]

log = logging.getLogger("circus.process")

Observer = Callable[[int, str, bytes], None]

PIPE_SIZE = 1 << 20
# A pipe is grown to PIPE_SIZE only once one read finds this much waiting (a busy writer: the
# pipe was half full before the loop got to it). Growing every pipe up front would cost
# ~10 KiB of kernel memory per pipe, and an unprivileged user's pipes share a budget
# (/proc/sys/fs/pipe-user-pages-soft, 64 MiB by default): past it, Linux gives every new pipe
# of that user a single page. Not the default capacity (64 KiB): a full pipe holds less than
# that when writes do not end on page boundaries, so a writer of 65,500-byte blocks (whole
# 100-byte lines) never got a bigger pipe, and paid a wake-up and a read per 64 KiB
# (the bigger pipe bought 1.07-1.2x on the read path, 1.45-1.7x on the splice path:
# bench/README.md, "stdout to a file, session 3").
BUSY_READ = 32 * 1024
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


@dataclass(eq=False, slots=True)
class _Pipe:
    process: Process
    fd: int
    name: str
    stream: Any
    splice_ok: bool = True
    grown: bool = False


class OutputRedirector:
    """Read the pipes of many processes and feed them to stream objects.

    Args:
        loop: the event loop (default: the running loop at the first :meth:`add`).
        read_size: bytes per ``os.read`` on the non-splice path.
        budget: most bytes moved per pipe per readiness callback (fairness between pipes).

    Each pipe stays registered until EOF; when a process exits its pipes are drained at once,
    and :meth:`remove` drains before letting go, so output is not lost (upstream issue #557).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        read_size: int = 256 * 1024,
        budget: int = 8 * 1024 * 1024,
    ) -> None:
        self._loop = loop
        self.read_size = read_size
        self.budget = budget
        self._pipes: dict[int, _Pipe] = {}
        self._by_process: dict[Process, list[_Pipe]] = {}
        self._observers: list[Observer] = []
        # Bound once: one shared method object instead of one per pipe and per process.
        self._readable_cb = self._on_readable
        self._close_cb = self._on_process_close
        self._exit_cb = self._on_exit

    # -- observers ---------------------------------------------------------------------------

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(pid, stream_name, data)`` for every chunk (disables splicing)."""
        self._observers.append(observer)

    def remove_observer(self, observer: Observer) -> None:
        """Stop calling ``observer``."""
        with contextlib.suppress(ValueError):
            self._observers.remove(observer)

    # -- registration ------------------------------------------------------------------------

    @property
    def processes(self) -> list[Process]:
        """Processes whose pipes are currently pumped."""
        return list(self._by_process)

    def add(self, process: Process, stdout_stream: Any = None, stderr_stream: Any = None) -> None:
        """Pump ``process.stdout`` into ``stdout_stream`` and ``process.stderr`` into
        ``stderr_stream`` (a pipe without a stream is still drained, for observers)."""
        loop = self._loop or asyncio.get_running_loop()
        self._loop = loop
        pipes = []
        for name, fd, stream in (
            ("stdout", process.stdout, stdout_stream),
            ("stderr", process.stderr, stderr_stream),
        ):
            if fd is None or fd in self._pipes:
                continue
            os.set_blocking(fd, False)
            pipe = _Pipe(process, fd, name, stream)
            self._pipes[fd] = pipe
            pipes.append(pipe)
            _mux.mux_for(loop).add(fd, self._readable_cb, pipe)
            attach = getattr(stream, "attach", None)
            if attach is not None:
                try:
                    attach(process.pid or 0, name)
                except Exception:
                    log.exception("stream %r failed to attach pid %s", stream, process.pid)
        if not pipes:
            return
        self._by_process.setdefault(process, []).extend(pipes)
        process._add_close_hook(self._close_cb)
        if process.returncode is None:
            process.add_exit_callback(self._exit_cb)

    def remove(self, process: Process, *, drain: bool = True) -> None:
        """Stop pumping ``process``'s pipes, first draining what they hold (unless told not)."""
        pipes = self._by_process.pop(process, [])
        process._remove_close_hook(self._close_cb)
        for pipe in pipes:
            if drain and pipe.fd in self._pipes:
                self._pump(pipe, limit=None)
            self._detach(pipe, eof=False)

    def close(self) -> None:
        """Drain and remove every process."""
        for process in list(self._by_process):
            self.remove(process)

    # -- pumping -----------------------------------------------------------------------------

    def _on_process_close(self, process: Process) -> None:
        self.remove(process)

    def _on_exit(self, process: Process) -> None:
        for pipe in list(self._by_process.get(process, ())):
            if pipe.fd in self._pipes:
                self._pump(pipe, limit=None)

    def _on_readable(self, pipe: _Pipe) -> bool:
        # True (output moved, the pipe still open) counts towards the mux's flood pause
        return self._pump(pipe, limit=self.budget) > 0 and pipe.fd in self._pipes

    def _pump(self, pipe: _Pipe, limit: int | None) -> int:
        """Move output from ``pipe`` (at most ``limit`` bytes); the bytes moved."""
        moved = 0
        stream = pipe.stream
        try:
            while limit is None or moved < limit:
                if pipe.splice_ok and not self._observers and getattr(stream, "can_splice", False):
                    try:
                        n = stream.splice_from(pipe.fd)
                    except BlockingIOError:
                        return moved
                    except OSError as exc:
                        # EINVAL & co: the target refuses splice; use reads from now on.
                        log.debug("splice refused for %s: %s", pipe.name, exc)
                        pipe.splice_ok = False
                        continue
                else:
                    try:
                        data = os.read(pipe.fd, self.read_size)
                    except BlockingIOError:
                        return moved
                    n = len(data)
                    if n:
                        self._dispatch(pipe, data)
                if n == 0:
                    self._end(pipe)
                    return moved
                if n >= BUSY_READ and not pipe.grown:
                    pipe.grown = True
                    with contextlib.suppress(OSError):  # over the user's budget: keep it
                        fcntl.fcntl(pipe.fd, _F_SETPIPE_SZ, PIPE_SIZE)
                moved += n
        except OSError:
            log.exception("reading %s of pid %s failed", pipe.name, pipe.process.pid)
            self._end(pipe)
        return moved

    def _dispatch(self, pipe: _Pipe, data: bytes) -> None:
        pid = pipe.process.pid or 0
        if pipe.stream is not None:
            try:
                pipe.stream({"data": data, "pid": pid, "name": pipe.name})
            except Exception:
                log.exception("stream %r failed on output of pid %s", pipe.stream, pid)
        for observer in list(self._observers):
            try:
                observer(pid, pipe.name, data)
            except Exception:
                log.exception("output observer %r failed", observer)

    def _end(self, pipe: _Pipe) -> None:
        self._detach(pipe, eof=True)
        pipes = self._by_process.get(pipe.process)
        if pipes is not None:
            try:  # no context manager: two per exiting child
                pipes.remove(pipe)
            except ValueError:
                pass
            if not pipes:
                del self._by_process[pipe.process]
                pipe.process._remove_close_hook(self._close_cb)

    def _detach(self, pipe: _Pipe, *, eof: bool) -> None:
        if self._pipes.pop(pipe.fd, None) is None:
            return
        if self._loop is not None:
            _mux.release(self._loop, pipe.fd)
        end = getattr(pipe.stream, "end", None)
        if end is not None:
            try:
                end(pipe.process.pid or 0, pipe.name)
            except Exception:
                log.exception("stream %r failed at end of output", pipe.stream)
