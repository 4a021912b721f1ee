"""Client connections under a cap, so that a flood of them cannot exhaust circusd's descriptors.

Every connection ZeroMQ accepts on the control, pub/sub or stats endpoint costs circusd one
file descriptor, and libzmq's ipc listener aborts the whole process when ``accept()`` fails
with EMFILE (``src/ipc_listener.cpp`` asserts; the tcp listener survives it, spinning).
libzmq cannot be told to refuse connections, so the guard counts them from socket-monitor
events, on a thread of its own (it reacts while the event loop is busy), and acts:

* **Shedding.** Above the cap, the excess is shed: ``shutdown(2)`` on the accepted
  descriptor, which libzmq takes for the peer going away (it closes the descriptor and
  reports the disconnection). A shed ZeroMQ client reconnects by itself after its
  ``reconnect_ivl``; a request it had in flight gets no answer. On the control endpoint,
  connections that never sent a request go first (oldest first), then the least recently
  active ones, so a client that has just asked something is answered while an idle flood is
  shed; on the pub/sub and stats endpoints the newest go first (subscribers already there
  keep their events).
* **Pausing.** Clients that reconnect as soon as they are shed keep libzmq accepting and
  closing, and a shed descriptor stays open until libzmq has closed it (its I/O thread and
  the socket's own thread both take part). When the guarded connections and the
  shed-but-open descriptors reach a third of the budget (or the latter a sixteenth of it),
  the flooded endpoint stops accepting for a while: 0.25 s, up to 1 s while floods go on
  (``_connpause``). circusd keeps the listening socket open meanwhile,
  so the ipc file and the tcp port stay its own and new connections wait in the kernel's
  backlog (:data:`BACKLOG` of them: what is accepted at once when accepting resumes, which it
  does once the ended connections' descriptors are closed). Stopping to accept ends every
  connection the endpoint had: its clients reconnect, a request in flight gets no answer.

The cap of each endpoint is ``[circus] max_connections`` (1,024 by default), lowered so
that the guarded endpoints together use at most a third of the budget (never below
:data:`MIN_CAP` that way): the soft limit minus the descriptors
open for anything else (counted every 0.25 s while connections come and go) minus a reserve
of :data:`RESERVE`. The rest absorbs what libzmq accepts before the guard catches up; the
guard's thread runs at a higher priority (nice -10) where circusd may set one, so that it
keeps up with libzmq's I/O thread on a crowded host.
"""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import resource
import struct
import threading
import time
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import zmq

from ._connpause import forget, pause
from ._connslot import checked, listening_address

__all__ = [
    "BACKLOG",
    "DEFAULT_MAX_CONNECTIONS",
    "MIN_CAP",
    "RESERVE",
    "ConnectionGuard",
    "configure",
    "guard",
]

log = logging.getLogger("circus.arbiter")

DEFAULT_MAX_CONNECTIONS = 1024
RESERVE = 64  # descriptors kept free for spawning, libzmq's own sockets, log files, /proc reads
MIN_CAP = 8  # an endpoint is never capped below this, however crowded the descriptor table
_RECOUNT = 0.25  # seconds between two counts of the descriptor table
_BATCH = 256  # monitor events read from one endpoint before looking at the others
_PAUSE_FIRST = 0.25
_PAUSE_MAX = 1.0
BACKLOG = 32  # ZMQ_BACKLOG of a guarded socket: what a pause lets wait, what a resume takes at once
_CALM = 30.0  # seconds without a pause after which the next one is short again
_PAUSE_WAIT = 0.1  # the longest the guard thread waits for the loop to pause an endpoint
_WARN_EVERY = 10.0
_NICE = -10
_EVENTS = (
    zmq.EVENT_LISTENING
    | zmq.EVENT_ACCEPTED
    | zmq.EVENT_ACCEPT_FAILED
    | zmq.EVENT_CLOSED
    | zmq.EVENT_DISCONNECTED
)
_EVENT = struct.Struct("=HI")  # monitor event v1: event id, value (a descriptor or an errno)


@dataclass(eq=False)
class _Endpoint:
    """One guarded socket. The loop thread owns ``sock``; the guard thread the counters."""

    name: str
    endpoint: str
    owner: str | None
    sock: zmq.Socket[Any]
    reader: zmq.Socket[Any]
    idle_first: bool
    loop: asyncio.AbstractEventLoop | None
    listener: int | None = None  # libzmq's listening descriptor (EVENT_LISTENING)
    listeners: set[int] = field(default_factory=set)  # every one not closed yet
    listens: int = 0  # EVENT_LISTENING seen
    listens_at_pause: int = 0
    local: Any = None  # what getsockname() answers for its sockets
    conns: dict[int, float] = field(default_factory=dict)  # fd -> accepted at, accept order
    closing: dict[int, float] = field(default_factory=dict)  # shed, libzmq has not closed yet
    shed: int = 0
    peak: int = 0
    pauses: int = 0
    pause_level: int = 0
    pause_asked: bool = False
    paused_until: float = 0.0
    held: int | None = None  # our duplicate of the listening socket while paused (loop thread)
    resume: asyncio.TimerHandle | None = None
    fds_target: int = 0  # descriptors open once a pause's connections are closed
    resume_by: float = 0.0  # resume then at the latest
    paused: threading.Event = field(default_factory=threading.Event)  # the loop has acted
    closed: bool = False
    warned_at: float = 0.0
    shed_since_warning: int = 0


class ConnectionGuard:
    """Counts the connections of the sockets it watches, sheds those above the cap and pauses
    an endpoint that keeps being flooded.

    :meth:`watch`, :meth:`unwatch` and :meth:`seen` are called from the thread that owns the
    watched sockets (the arbiter's loop), pauses run there too; counting and shedding happen
    on the guard's thread, which runs while at least one socket is watched.

    Args:
        max_connections: the cap of one endpoint before the descriptor budget lowers it.
        reserve: descriptors the budget keeps free for everything but these connections.
    """

    def __init__(
        self, max_connections: int = DEFAULT_MAX_CONNECTIONS, reserve: int = RESERVE
    ) -> None:
        self.max_connections = max_connections
        self.reserve = reserve
        self._watched: dict[int, _Endpoint] = {}  # id(socket) -> endpoint; guard thread only
        self._mine: dict[int, _Endpoint] = {}  # the same, the loop thread's copy
        self._commands: queue.SimpleQueue[tuple[str, Any, threading.Event | None]] = (
            queue.SimpleQueue()
        )
        self._active: dict[int, float] = {}  # fd -> last request (monotonic); loop thread writes
        self._lock = threading.Lock()  # thread start and stop, _count
        self._thread: threading.Thread | None = None
        self._wake: int | None = None
        self._count = 0  # sockets watched, as the loop thread sees it
        self._cap = max_connections
        self._budget = 0  # descriptors the guarded connections may use in all
        self._cap_at = 0.0
        self._slot: int | None = None  # see _connslot.checked
        self._null: int | None = None

    # ------------------------------------------------------------------ loop-thread API

    def watch(
        self,
        sock: zmq.Socket[Any],
        endpoint: str,
        name: str,
        *,
        idle_first: bool,
        owner: str | None = None,
    ) -> None:
        """Count the connections ``sock`` will accept on ``endpoint``; call before binding it
        (libzmq tells which descriptor it listens on only at the bind).

        Raises:
            zmq.ZMQError: the monitor cannot be attached (the socket is left unmonitored).
        """
        address = f"inproc://circus-guard-{id(self):x}-{id(sock):x}"
        sock.setsockopt(zmq.BACKLOG, BACKLOG)
        sock.monitor(address, _EVENTS)
        reader: zmq.Socket[Any] = zmq.Context.shadow(sock.context.underlying).socket(zmq.PAIR)
        reader.linger = 0
        # No high-water mark on the monitor pipe: libzmq's I/O thread blocks, holding the
        # socket's monitor mutex, once a bounded one is full; a bind() on the loop thread
        # (which takes that mutex, GIL held) would then wait for this thread, which waits for
        # the GIL: a deadlock. Unread events cost a few bytes each.
        reader.rcvhwm = 0
        try:
            reader.connect(address)
        except Exception:
            reader.close()
            sock.disable_monitor()
            raise
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None  # no loop to pause on: shedding only
        watched = _Endpoint(name, endpoint, owner, sock, reader, idle_first, loop)
        self._mine[id(sock)] = watched
        with self._lock:
            self._count += 1
            self._ensure_thread()
        self._post("watch", (id(sock), watched))

    def unwatch(self, sock: zmq.Socket[Any]) -> None:
        """Stop counting ``sock``'s connections; call before closing it."""
        watched = self._mine.pop(id(sock), None)
        if watched is None:
            return
        forget(watched)
        try:
            sock.disable_monitor()
        except zmq.ZMQError:
            pass
        with self._lock:
            self._count = max(0, self._count - 1)
        done = threading.Event()
        self._post("unwatch", id(sock), done)
        # The guard thread closes the monitor reader; the socket's context cannot be
        # terminated while it is open, so wait for it (microseconds, normally).
        done.wait(5.0)

    def seen(self, fd: int) -> None:
        """Connection ``fd`` (a control connection) has just sent a request."""
        self._active[fd] = time.monotonic()

    def stats(self) -> dict[str, dict[str, int]]:
        """``{endpoint: {"connections", "cap", "shed", "peak", "pauses"}}`` (approximate)."""
        try:
            watched = list(self._watched.values())
        except RuntimeError:  # resized by the guard thread meanwhile
            return {}
        return {
            w.endpoint: {
                "connections": len(w.conns),
                "cap": self._cap,
                "shed": w.shed,
                "peak": w.peak,
                "pauses": w.pauses,
            }
            for w in watched
        }

    # ------------------------------------------------------------------ plumbing

    def _post(self, verb: str, arg: Any, done: threading.Event | None = None) -> None:
        self._commands.put((verb, arg, done))
        with self._lock:  # an exiting thread closes the eventfd under this lock
            if self._wake is not None:
                os.eventfd_write(self._wake, 1)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        if self._wake is None:
            self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        if self._slot is None:
            self._null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            self._slot = os.dup(self._null)
        self._thread = threading.Thread(target=self._run, name="circus-connguard", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Under CPU contention this thread must keep up with libzmq's I/O thread, which
        # accepts at C speed: run it ahead of circusd's other threads when allowed to (the
        # priority is this thread's own; children, spawned by the loop thread, keep theirs).
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _NICE)
        except OSError:
            pass
        wake = self._wake
        assert wake is not None
        poller = zmq.Poller()
        poller.register(wake, zmq.POLLIN)
        while self._apply_commands(poller):
            # Nothing to do between events, unless some excess could not be shed yet.
            over = any(len(w.conns) > self._cap for w in self._watched.values())
            try:
                ready = dict(poller.poll(int(1000 * _RECOUNT) if over else None))
            except zmq.ZMQError as exc:  # pragma: no cover - a reader closed under us
                log.debug("connection guard: %s", exc)
                ready = {}
            try:
                if wake in ready:
                    try:
                        os.eventfd_read(wake)
                    except BlockingIOError:
                        pass
                for watched in list(self._watched.values()):
                    if watched.reader in ready:
                        self._drain(watched)
                self._enforce()
            except Exception:  # pragma: no cover - a bug here must not end the protection
                log.exception("connection guard")

    def _apply_commands(self, poller: zmq.Poller) -> bool:
        """Apply queued commands; False once nothing is watched any more: the thread ends,
        its descriptors closed before the last ``unwatch`` returns."""
        finished: list[threading.Event] = []
        try:
            return self._apply(poller, finished)
        finally:
            for done in finished:
                done.set()

    def _apply(self, poller: zmq.Poller, finished: list[threading.Event]) -> bool:
        while True:
            try:
                verb, arg, done = self._commands.get_nowait()
            except queue.Empty:
                break
            if verb == "watch":
                key, watched = arg
                self._watched[key] = watched
                poller.register(watched.reader, zmq.POLLIN)
                self._recount(force=True)  # a new endpoint takes its share of the budget
            elif verb == "unwatch":
                watched = self._watched.pop(arg, None)
                if watched is not None:
                    self._drain(watched)
                    poller.unregister(watched.reader)
                    watched.reader.close(linger=0)
                    for fd in watched.conns:
                        self._active.pop(fd, None)
                    watched.conns.clear()
                    watched.closing.clear()
            if done is not None:
                finished.append(done)
        with self._lock:
            if self._watched or self._count or not self._commands.empty():
                return True
            self._thread = None
            for fd in (self._wake, self._slot, self._null):
                if fd is not None:
                    os.close(fd)
            self._wake = self._slot = self._null = None
            return False

    def _drain(self, watched: _Endpoint) -> None:
        for _ in range(_BATCH):
            try:
                frames = watched.reader.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:  # Again: drained (or closed meanwhile)
                return
            if not frames or len(frames[0]) < _EVENT.size:
                continue
            event, value = _EVENT.unpack_from(frames[0])
            if event == zmq.EVENT_ACCEPTED:
                # a number seen before was closed without an event: it goes to the end
                watched.conns.pop(value, None)
                watched.conns[value] = time.monotonic()
                watched.closing.pop(value, None)
                # no _active.pop here: the loop may have seen this connection's first
                # request before this thread got to its event
                watched.peak = max(watched.peak, len(watched.conns))
                if len(watched.conns) > self._cap:
                    # at once, not after the drain: libzmq keeps accepting meanwhile
                    self._recount()
                    self._enforce_one(watched)
            elif event == zmq.EVENT_DISCONNECTED:
                watched.conns.pop(value, None)
                watched.closing.pop(value, None)
                self._active.pop(value, None)
            elif event == zmq.EVENT_LISTENING:
                watched.listener = value
                watched.listeners.add(value)
                watched.listens += 1
                watched.local = listening_address(value, *self._slots())
            elif event == zmq.EVENT_CLOSED and value in watched.listeners:
                # a listener went (a pause, an unbind): libzmq ends every connection it
                # accepted, without an event each
                watched.listeners.discard(value)
                if value == watched.listener:
                    watched.listener = None
                for fd in watched.conns:
                    self._active.pop(fd, None)
                watched.conns.clear()
                watched.closing.clear()
            elif event == zmq.EVENT_ACCEPT_FAILED:
                self._warn(watched, f"accepting failed: {os.strerror(value)}")
                self._ask_pause(watched)

    # ------------------------------------------------------------------ policy

    def _enforce(self) -> None:
        if not self._watched:
            return
        self._recount()
        for watched in self._watched.values():
            self._enforce_one(watched)

    def _recount(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._cap_at >= _RECOUNT:
            self._compute_cap()
            self._cap_at = now

    def _enforce_one(self, watched: _Endpoint) -> None:
        cap = self._cap
        excess = len(watched.conns) - cap
        if excess > 0:
            shed = 0
            now = time.monotonic()
            for fd in self._victims(watched, excess):
                del watched.conns[fd]
                self._active.pop(fd, None)
                if checked(fd, watched.local, *self._slots(), shut=True):
                    shed += 1
                    watched.closing[fd] = now
            watched.shed += shed
            watched.shed_since_warning += shed
            if shed:
                self._warn(watched, _cap_reached(watched, cap, self.max_connections), reset=True)
        if watched.closing or excess > 0:
            closing = sum(len(w.closing) for w in self._watched.values())
            used = closing + sum(len(w.conns) for w in self._watched.values())
            if used * 3 >= self._budget or closing * 16 >= self._budget:
                self._ask_pause(watched)

    def _victims(self, watched: _Endpoint, count: int) -> list[int]:
        conns = watched.conns
        if not watched.idle_first:
            return list(islice(reversed(conns), count))
        active = self._active
        idle: list[int] = []
        busy: list[int] = []
        for fd in conns:
            if fd not in active:  # never asked anything
                idle.append(fd)
                if len(idle) == count:
                    return idle
            else:
                busy.append(fd)
        busy.sort(key=active.__getitem__)
        return idle + busy[: count - len(idle)]

    def _compute_cap(self) -> None:
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if soft == resource.RLIM_INFINITY:  # pragma: no cover - not on Linux
            self._cap = self.max_connections
            self._budget = 4 * self.max_connections * max(1, len(self._watched))
            return
        try:
            in_use = len(os.listdir("/proc/self/fd")) - 1  # minus the listing's own
        except OSError:  # EMFILE at this very moment: no room at all
            in_use = soft
        ours = sum(len(w.conns) + len(w.closing) for w in self._watched.values())
        budget = max(0, soft - self.reserve - max(0, in_use - ours))
        share = budget // (3 * max(1, len(self._watched)))
        self._budget = budget
        # the budget never lowers a cap below MIN_CAP; a max_connections set lower holds
        self._cap = min(self.max_connections, max(MIN_CAP, share))

    def _ask_pause(self, watched: _Endpoint) -> None:
        if watched.pause_asked or watched.loop is None or watched.closed:
            return
        now = time.monotonic()
        if now - watched.paused_until > _CALM:
            watched.pause_level = 0
        seconds = min(_PAUSE_MAX, _PAUSE_FIRST * 2**watched.pause_level)
        watched.pause_level += 1
        watched.pause_asked = True
        watched.paused_until = now + seconds
        watched.paused.clear()
        try:
            watched.loop.call_soon_threadsafe(pause, watched, seconds, self._cap)
        except RuntimeError:  # the loop is closed: nothing left to protect
            watched.pause_asked = False
            return
        # Step aside until the loop has stopped the listener: this thread would otherwise
        # hold the GIL the loop needs, while libzmq goes on accepting.
        watched.paused.wait(_PAUSE_WAIT)

    def _slots(self) -> tuple[int, int]:
        slot, null = self._slot, self._null
        assert slot is not None and null is not None
        return slot, null

    def _warn(self, watched: _Endpoint, what: str, reset: bool = False) -> None:
        now = time.monotonic()
        if now - watched.warned_at < _WARN_EVERY:
            return
        watched.warned_at = now
        if reset:
            watched.shed_since_warning = 0
        log.warning("%s endpoint %s: %s", watched.name, watched.endpoint, what)


_GUARD: ConnectionGuard | None = None


def guard() -> ConnectionGuard:
    """The process-wide guard (one descriptor table, one budget)."""
    global _GUARD
    if _GUARD is None:
        _GUARD = ConnectionGuard()
    return _GUARD


def configure(max_connections: int | None = None) -> None:
    """Set the per-endpoint cap (``[circus] max_connections``; ``None``: the default), in
    force from the next connection."""
    watcher = guard()
    watcher.max_connections = max_connections or DEFAULT_MAX_CONNECTIONS
    watcher._cap_at = 0.0  # recount at the next event


def _cap_reached(watched: _Endpoint, cap: int, option: int) -> str:
    why = (
        f"[circus] max_connections = {option}"
        if cap >= option
        else f"[circus] max_connections = {option}, lowered by the descriptor budget "
        "(raise the nofile limit)"
    )
    return (
        f"connection cap of {cap} reached ({why}): {watched.shed_since_warning} newer or idle "
        f"connections shed, {len(watched.conns)} kept"
    )
