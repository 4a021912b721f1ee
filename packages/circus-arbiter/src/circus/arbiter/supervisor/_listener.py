"""Supervisor's event-listener protocol, spoken to ``[eventlistener:x]`` processes.

Each listener process's stdin and stdout are one unix connection to circusd (made by
``_relay.py`` before it execs the listener); circusd knows which listener it is by the pid
the kernel gives for the connection, which must be a process of that listener's watcher
(anything else is closed at once). On it:

* the listener writes ``READY\\n``;
* circusd sends one event: a header line ``ver:3.0 server:ID serial:N pool:P poolserial:M
  eventname:NAME len:L`` and ``L`` bytes of payload;
* the listener answers ``RESULT n\\n`` and ``n`` bytes, ``OK`` or ``FAIL``; a FAIL (or a
  listener that dies or talks nonsense while it holds an event) puts the event back at the
  head of its pool's buffer, to be sent again.

Each pool (one ``[eventlistener:x]``) buffers at most ``buffer_size`` events for its
processes; when it is full the oldest event is dropped, with a warning. An event goes to the
pools whose ``events=`` names its type or a type it is a kind of.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

from ._events import TICKS, Event, is_kind_of, tick_payload

__all__ = ["ListenerHub", "ListenerPool", "MAX_RESULT", "MAX_LINE"]

log = logging.getLogger("circus.arbiter")

MAX_LINE = 1024  # a READY or RESULT line
MAX_RESULT = 64 * 1024  # a RESULT body
CONNECT_WAIT = 10.0  # how long a connection may wait for its pid to be known as spawned
DROP_LOG_INTERVAL = 60.0  # seconds between two warnings of dropped events
MAX_WAIT = 64  # connections open at once beyond which an unknown one is not waited for
_PEERCRED = struct.Struct("3i")


class ListenerPool:
    """The listeners of one ``[eventlistener:x]`` and the events waiting for them.

    Args:
        name: the section's name (``pool:`` of the header).
        watchers: names of the watchers running its processes.
        events: the subscribed event types.
        buffer_size: the most events waiting; beyond, the oldest is dropped.
        server: ``server:`` of the header (``[supervisord] identifier``).
    """

    def __init__(
        self,
        name: str,
        watchers: Iterable[str],
        events: Iterable[str],
        buffer_size: int = 10,
        server: str = "supervisor",
    ) -> None:
        self.name = name
        self.watchers = frozenset(watchers)
        self.events = frozenset(events)
        self.buffer_size = max(1, buffer_size)
        self.server = server
        self.buffer: deque[Event] = deque()
        self.poolserial = 0
        self.dropped = 0
        self._ready: deque[_Connection] = deque()
        self._warned = -DROP_LOG_INTERVAL
        self._unlogged = 0
        self._serials: dict[int, int] = {}  # event serial: its poolserial (kept on resend)

    def wants(self, name: str) -> bool:
        """Whether ``name`` is one of the subscribed types or a kind of one."""
        return is_kind_of(name, self.events)

    def push(self, event: Event, head: bool = False) -> None:
        """Buffer one event (at the head for a resend) and hand events to ready listeners."""
        if event.serial not in self._serials:
            self.poolserial += 1
            self._serials[event.serial] = self.poolserial
        if head:
            self.buffer.appendleft(event)
        else:
            self.buffer.append(event)
        while len(self.buffer) > self.buffer_size:
            lost = self.buffer.popleft()
            self._serials.pop(lost.serial, None)
            self.dropped += 1
            self._warn_dropped(lost)
        self.dispatch()

    def _warn_dropped(self, lost: Event) -> None:
        # a chatty program's PROCESS_LOG events can overflow a pool thousands of times a
        # second: one warning per minute, with the count of the others
        now = time.monotonic()
        if now - self._warned < DROP_LOG_INTERVAL:
            self._unlogged += 1
            return
        more = f" ({self._unlogged} more dropped since the last warning)" if self._unlogged else ""
        self._warned, self._unlogged = now, 0
        log.warning(
            "event listener pool %s: buffer of %d full, dropping event %d (%s)%s",
            self.name,
            self.buffer_size,
            lost.serial,
            lost.name,
            more,
        )

    def ready(self, conn: _Connection) -> None:
        """``conn`` said READY (a second READY before an event changes nothing)."""
        if conn not in self._ready:
            self._ready.append(conn)
        self.dispatch()

    def gone(self, conn: _Connection) -> None:
        """``conn`` closed."""
        with contextlib.suppress(ValueError):
            self._ready.remove(conn)

    def dispatch(self) -> None:
        """Send buffered events to listeners that are ready, oldest event first."""
        while self.buffer and self._ready:
            conn = self._ready.popleft()
            event = self.buffer.popleft()
            conn.send(event, self._serials.get(event.serial, 0))

    def done(self, event: Event) -> None:
        """A listener answered OK for ``event``."""
        self._serials.pop(event.serial, None)


class _Connection:
    """One listener process's stdin/stdout."""

    def __init__(
        self, pool: ListenerPool, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.pool = pool
        self.reader = reader
        self.writer = writer
        self.current: Event | None = None

    def send(self, event: Event, poolserial: int) -> None:
        pool = self.pool
        head = (
            f"ver:3.0 server:{pool.server} serial:{event.serial} pool:{pool.name} "
            f"poolserial:{poolserial} eventname:{event.name} len:{len(event.payload)}\n"
        )
        self.current = event
        self.writer.write(head.encode() + event.payload)

    async def run(self) -> None:
        pool = self.pool
        try:
            while True:
                line = await self.reader.readline()
                if not line:
                    return
                if not line.endswith(b"\n"):
                    raise ValueError("a line longer than the protocol allows")
                word = line.strip()
                if self.current is None:
                    if word == b"READY":
                        pool.ready(self)
                    else:
                        log.warning(
                            "event listener %s wrote %r while not holding an event; expected READY",
                            pool.name,
                            line[:80],
                        )
                    continue
                if not word.startswith(b"RESULT "):
                    raise ValueError(f"expected RESULT, got {line[:80]!r}")
                size = int(word[7:])
                if not 0 <= size <= MAX_RESULT:
                    raise ValueError(f"RESULT of {size} bytes")
                body = await self.reader.readexactly(size)
                event, self.current = self.current, None
                if body == b"OK":
                    pool.done(event)
                else:
                    if body != b"FAIL":
                        log.warning(
                            "event listener %s answered %r to event %d; sending it again",
                            pool.name,
                            body[:80],
                            event.serial,
                        )
                    pool.push(event, head=True)
        except (ValueError, asyncio.LimitOverrunError, asyncio.IncompleteReadError) as exc:
            log.warning("event listener %s broke the protocol: %s; disconnected", pool.name, exc)
        except OSError:
            pass
        finally:
            pool.gone(self)
            if self.current is not None:
                event, self.current = self.current, None
                pool.push(event, head=True)
            self.writer.transport.abort()


class ListenerHub:
    """The listener socket, the pools, the event serial and the tick timers.

    Args:
        address: the abstract unix socket name (without its leading NUL).
        pools: every ``[eventlistener:x]``.
        pids_of: ``pids_of(watcher_name)``: that watcher's current pids.
    """

    def __init__(
        self,
        address: str,
        pools: Iterable[ListenerPool],
        pids_of: Callable[[str], Iterable[int]],
    ) -> None:
        self.address = address
        self.pools = list(pools)
        self._pids_of = pids_of
        self.serial = 0
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._spawned = asyncio.Event()
        self._stranger_logged = -DROP_LOG_INTERVAL
        self._strangers = 0

    def wants(self, name: str) -> bool:
        """Whether any pool wants events of type ``name`` (skip building them otherwise)."""
        return any(p.wants(name) for p in self.pools)

    def publish(self, name: str, payload: bytes) -> None:
        """Give one event a serial and buffer it in every pool that wants it."""
        pools = [p for p in self.pools if p.wants(name)]
        if not pools:
            return
        self.serial += 1
        event = Event(self.serial, name, payload)
        for pool in pools:
            pool.push(event)

    def spawned(self) -> None:
        """A process was spawned somewhere: connections waiting to be recognized look again."""
        self._spawned.set()
        self._spawned = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Listen, and arm the tick timers some pool subscribes to."""
        self._server = await asyncio.start_unix_server(
            self._accept, "\0" + self.address, limit=MAX_LINE
        )
        loop = asyncio.get_running_loop()
        for name, period in TICKS.items():
            if self.wants(name):
                self._arm(loop, name, period)

    def _arm(self, loop: asyncio.AbstractEventLoop, name: str, period: int) -> None:
        now = time.time()
        due = (int(now) // period + 1) * period

        def fire() -> None:
            self._timers.remove(handle)
            self.publish(name, tick_payload(due))
            self._arm(loop, name, period)

        handle = loop.call_later(max(0.0, due - now), fire)
        self._timers.append(handle)

    async def close(self) -> None:
        """Stop the timers and the socket, close every listener connection."""
        for handle in self._timers:
            handle.cancel()
        self._timers = []
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)

    # ------------------------------------------------------------------ connections

    def _stranger(self, pid: int) -> None:
        # the socket is listed in /proc/net/unix for every user: one warning a minute, with
        # the count of the others, or any local user floods circusd's log
        now = time.monotonic()
        if now - self._stranger_logged < DROP_LOG_INTERVAL:
            self._strangers += 1
            return
        more = f" ({self._strangers} more since the last warning)" if self._strangers else ""
        self._stranger_logged, self._strangers = now, 0
        log.warning(
            "event-listener socket: pid %s is no event listener's process; closed%s", pid, more
        )

    def _pool_of(self, pid: int) -> ListenerPool | None:
        for pool in self.pools:
            for watcher in pool.watchers:
                if pid in set(self._pids_of(watcher)):
                    return pool
        return None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns.add(task)
        try:
            pid = _peer_pid(writer)
            pool = self._pool_of(pid) if pid else None
            deadline = time.monotonic() + CONNECT_WAIT
            # the relay may connect before circusd has registered the pid it spawned; only a
            # child of circusd's may wait for that, and only so many at once
            waits = pool is None and _parent(pid) == os.getpid() and len(self._conns) <= MAX_WAIT
            while waits and pool is None and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._spawned.wait(), deadline - time.monotonic())
                pool = self._pool_of(pid)
            if pool is None:
                self._stranger(pid)
                return
            await _Connection(pool, reader, writer).run()
        except asyncio.CancelledError:
            pass
        finally:
            self._conns.discard(task)
            writer.transport.abort()


def _parent(pid: int) -> int:
    """The parent pid of ``pid`` (0 when it cannot be read)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            stat = file.read()
    except OSError:
        return 0
    # the command name (2nd field) may hold spaces and parentheses: split after its end
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else 0


def _peer_pid(writer: asyncio.StreamWriter) -> int:
    sock: Any = writer.get_extra_info("socket")
    if sock is None:
        return 0
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    except OSError:
        return 0
    return int(_PEERCRED.unpack(raw)[0])
