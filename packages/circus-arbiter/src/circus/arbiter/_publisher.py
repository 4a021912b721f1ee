"""The pub/sub channel: ``[topic, json]`` frames on an XPUB socket (spec/protocol.md §2).

Subscribers see a plain PUB socket. XPUB lets us know which topic prefixes anybody subscribed
to, so a message nobody wants (most output lines, usually) is not even serialised. The
subscription notices are read without any reader task: :meth:`Publisher.publish` drains them
(non-blocking) before deciding nobody wants a topic, and once per loop pass after sending, so
nothing runs while nothing is published.

Messages published during one pass of the event loop are sent together at the start of the
next one (``loop.call_soon``), in the order they were published: ZeroMQ's I/O thread is
woken once per pass instead of once per message. A ``spawn`` event is sent at once, with
whatever is held before it: a respawn publishes ``reap`` and then ``spawn`` from one
callback, and sending the ``reap`` alone first would wake the I/O thread and every
subscriber's threads while the replacement is being forked (on a small box, the very CPUs
the fork and the ``spawn`` event wait for). Without a running loop, a message is sent at
once. :meth:`Publisher.close` and :meth:`Publisher.release` send what is held first.

A subscriber that does not keep up loses messages: past :data:`QUEUE_DEPTH` messages queued
for it (``ZMQ_SNDHWM``), XPUB drops what is published to it, and nothing waits. A subscription
message is at most :data:`MAX_SUBSCRIPTION_BYTES` (a bigger one ends that connection), and
the number of subscribers is capped by the connection guard (``_connguard``), newest shed
first.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import zmq

from ._connguard import guard
from ._endpoints import bind_again, bind_endpoint, release, remove_ipc
from ._subfilter import SubscriptionFilter

if TYPE_CHECKING:
    from ._peers import PeerIdentity

__all__ = ["MAX_SUBSCRIPTION_BYTES", "QUEUE_DEPTH", "Publisher"]

log = logging.getLogger("circus.arbiter")

MAX_SUBSCRIPTION_BYTES = 4096  # ZMQ_MAXMSGSIZE: a topic prefix is a few dozen bytes
# ZMQ_SNDHWM: messages queued per subscriber. libzmq's 1,000 overflowed a `logs -f` follower
# that kept up with a flood of 1,000 chatty children (~1,000 paced messages a second) when
# they exited together: their pipes' backlog goes out in one rush, and a follower off its
# CPU for that moment lost up to 14 % of the lines (6 runs of 6; none in 5 at 2,000). The
# price is memory for a subscriber that stops reading: up to QUEUE_DEPTH messages (output:
# at most MAX_PARTIAL, 64 KiB, each) held for it. Subscribers stuck at the same moment share
# the messages; stuck at different moments, each holds its own (no byte bound in libzmq).
QUEUE_DEPTH = 2_000
# Plain ints: pyzmq's enum members cost an enum construction per use (``EVENTS`` is read for
# every output chunk nobody may want: half of what circusd spent per chunk).
_EVENTS = int(zmq.EVENTS)
_POLLIN = int(zmq.POLLIN)
# Topics sent at once (with what is held before them): a new process is waited for.
_AT_ONCE = b".spawn"
_SNDMORE_NOBLOCK = int(zmq.SNDMORE | zmq.NOBLOCK)
_NOBLOCK = int(zmq.NOBLOCK)
# Keys of the process events a stop or a respawn publishes by the thousand: a payload of only
# these, with int / finite float / None values, is written without json.dumps (a third of
# its cost; the same text: ints and floats as repr, as json does).
_PLAIN_KEYS = frozenset({"process_pid", "process_id", "time", "exit_code"})


def encode(payload: Mapping[str, Any]) -> bytes:
    """``payload`` as JSON (``json.dumps``'s text, ``default=str``)."""
    parts = []
    for key, value in payload.items():
        kind = type(value)
        if key not in _PLAIN_KEYS:
            break
        if kind is int:
            parts.append(f'"{key}": {value}')
        elif kind is float and value - value == 0.0:  # finite: json writes NaN/Infinity
            parts.append(f'"{key}": {value!r}')
        elif value is None:
            parts.append(f'"{key}": null')
        else:
            break
    else:
        return ("{" + ", ".join(parts) + "}").encode()
    return json.dumps(payload, default=str).encode()


class Publisher:
    """Publishes events; :meth:`publish` never blocks (ZeroMQ drops for slow subscribers)."""

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoint: str,
        owner: str | None = None,
        may_read_output: Callable[[PeerIdentity], bool] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._prefixes: set[bytes] = set()
        # loopback tcp without CURVE: who gets output.* is decided per connection (_subfilter)
        self._filter: SubscriptionFilter | None = None
        self._fresh = False  # the notices were read in this pass of the event loop
        self._held: list[tuple[bytes, bytes]] | None = None  # to send at the next pass
        self._socket: zmq.Socket[Any] | None = context.socket(zmq.XPUB)
        self._socket.linger = 0
        self._socket.maxmsgsize = MAX_SUBSCRIPTION_BYTES
        self._socket.sndhwm = QUEUE_DEPTH  # taken by each connection as it is made
        filtered = may_read_output is not None and _needs_filter(endpoint)
        if filtered:
            self._socket.setsockopt(zmq.XPUB_MANUAL, 1)
        self._guarded = False
        try:
            guard().watch(self._socket, endpoint, "pub/sub", idle_first=False, owner=owner)
            self._guarded = True
        except (OSError, zmq.ZMQError) as exc:  # pragma: no cover - out of descriptors
            log.error("pub/sub endpoint %s: connections not capped: %s", endpoint, exc)
        try:
            bind_endpoint(self._socket, endpoint, owner)
        except Exception:
            if self._guarded:
                guard().unwatch(self._socket)
                self._guarded = False
            self._socket.close()
            self._socket = None
            raise
        if filtered:
            assert may_read_output is not None
            sock = self._socket
            self._filter = SubscriptionFilter(
                lambda: _bound_port(sock), may_read_output, self._prefixes
            )

    @property
    def bound(self) -> bool:
        """The socket is open (it may have been :meth:`release` d)."""
        return self._socket is not None

    def release(self) -> None:
        """Stop listening on :attr:`endpoint` (subscribers there are disconnected);
        :meth:`bind_again` undoes it.

        Raises:
            ArbiterError: the endpoint cannot be released.
        """
        assert self._socket is not None
        self.flush()
        release(self._socket, self.endpoint)

    def bind_again(self, owner: str | None = None) -> None:
        """Listen on :attr:`endpoint` again, with the socket's own options (its CURVE
        settings included): the undo of :meth:`release`, or of another socket taking the ipc
        path over.

        Raises:
            ArbiterError: the endpoint cannot be bound.
        """
        assert self._socket is not None
        bind_again(self._socket, self.endpoint, owner)

    def _drain_subscriptions(self) -> None:
        sock = self._socket
        assert sock is not None
        while int(sock.getsockopt(_EVENTS)) & _POLLIN:
            if self._filter is not None:
                try:
                    frame = sock.recv(zmq.NOBLOCK, copy=False)
                except zmq.Again:  # pragma: no cover - EVENTS said otherwise
                    return
                self._filter.notice(sock, frame)
                continue
            try:
                notice = sock.recv(zmq.NOBLOCK)
            except zmq.Again:  # pragma: no cover - EVENTS said otherwise
                return
            if not notice:
                continue
            # 1 = subscribe, 0 = unsubscribe (the last subscriber of that prefix left)
            if notice[0] == 1:
                self._prefixes.add(notice[1:])
            elif notice[0] == 0:
                self._prefixes.discard(notice[1:])
        if not self._fresh:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop (a test, a thread): every publish reads them
            self._fresh = True
            loop.call_soon(self._stale)

    def _stale(self) -> None:
        self._fresh = False

    def wanted(self, topic: bytes) -> bool:
        """Whether any subscriber's prefix matches ``topic``."""
        if self._socket is None:
            return False
        self._drain_subscriptions()
        return any(topic.startswith(prefix) for prefix in self._prefixes)

    def anyone_under(self, prefix: bytes) -> bool:
        """Whether any subscription could match a topic starting with ``prefix``."""
        if self._socket is None:
            return False
        self._drain_subscriptions()
        return any(prefix.startswith(p) or p.startswith(prefix) for p in self._prefixes)

    def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Send one message if anybody subscribed to it (at the next loop pass, or at once:
        see the module's docstring); silently nothing once closed."""
        raw_topic = topic.encode()
        # A topic a known prefix matches is sent without reading the notices first: XPUB
        # itself drops what nobody wants any more, so a stale yes costs a send; the notices
        # are read once the messages are sent (:meth:`flush`), off the path of a respawn's
        # ``spawn``. A no is always decided afresh.
        if not (
            self._socket is not None and raw_topic.startswith(tuple(self._prefixes))
        ) and not self.wanted(raw_topic):
            return
        data = encode(payload)
        if self._held is not None:
            self._held.append((raw_topic, data))
            if raw_topic.endswith(_AT_ONCE):
                self.flush()
            return
        if raw_topic.endswith(_AT_ONCE):
            self._send(raw_topic, data)
            self._catch_up()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._send(raw_topic, data)  # no loop (a test, a thread): at once
            self._catch_up()
            return
        self._held = [(raw_topic, data)]
        loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send the messages held since the last flush, in the order they were published."""
        held, self._held = self._held, None
        if held:
            for raw_topic, data in held:
                self._send(raw_topic, data)
            self._catch_up()

    def _catch_up(self) -> None:
        """Read the subscription notices, once per loop pass, after a send."""
        if self._socket is not None and not self._fresh:
            self._drain_subscriptions()

    def _send(self, raw_topic: bytes, data: bytes) -> None:
        if self._socket is None:
            return
        try:
            # two plain sends: send_multipart's own Python costs more than both (1.6 vs 0.6 us)
            self._socket.send(raw_topic, _SNDMORE_NOBLOCK)
            self._socket.send(data, _NOBLOCK)
        except zmq.Again:  # pragma: no cover - PUB-like sockets drop rather than block
            pass
        except zmq.ZMQError as exc:  # pragma: no cover
            log.warning("cannot publish %s: %s", raw_topic.decode(errors="replace"), exc)

    def close(self) -> None:
        """Close the socket (idempotent) and remove its ipc file."""
        if self._socket is not None:
            self.flush()
            if self._guarded:
                guard().unwatch(self._socket)
                self._guarded = False
            self._socket.close(linger=0)
            self._socket = None
            remove_ipc(self.endpoint)


def _needs_filter(endpoint: str) -> bool:
    """A tcp endpoint without CURVE (a CURVE peer holds an authorized key: an admin)."""
    from ._curve import client_curve_for

    return endpoint.startswith("tcp://") and client_curve_for(endpoint) is None


def _bound_port(sock: zmq.Socket[Any]) -> int | None:
    try:
        last = sock.getsockopt(zmq.LAST_ENDPOINT)
    except zmq.ZMQError:  # closed
        return None
    tail = last.decode(errors="replace").rsplit(":", 1)[-1] if isinstance(last, bytes) else ""
    return int(tail) if tail.isdigit() else None
