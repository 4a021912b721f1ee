"""Subscribers for the pub/sub channels: events, our output topic, and stats."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import Any

import zmq
import zmq.asyncio

from . import _core, protocol
from ._closing import Closing
from .errors import DaemonUnreachable, ProtocolError
from .keys import ClientCurve

__all__ = ["AsyncCircusConsumer", "CircusConsumer"]

Message = tuple[str, dict[str, Any]]


def _topics(topics: Iterable[str | bytes] | str | bytes | None) -> list[bytes]:
    if topics is None:
        return [b""]
    if isinstance(topics, str | bytes):
        topics = [topics]
    result = [t.encode() if isinstance(t, str) else t for t in topics]
    return result or [b""]


def _not_connected(
    endpoint: str, timeout: float, state: _core.ConnectionState
) -> DaemonUnreachable:
    """The error of a subscriber that did not get a connection to ``endpoint`` in time."""
    if state.auth_failed:
        detail = (
            "circusd refused our CURVE key (is its public .key file in circusd's "
            "curve_authorized_keys directory?)"
        )
    elif state.rejected:
        detail = (
            "something listens there but refused our ZeroMQ handshake: it is not a pub/sub "
            "socket (the control endpoint?), or it requires CURVE keys"
        )
    elif state.transport:
        detail = "a connection was made but no ZeroMQ handshake came back (not a circusd?)"
    else:
        detail = _core.ipc_problem(endpoint) or (
            "connection refused: nothing listens on that address"
            if state.refused
            else "no connection could be made"
        )
    error = DaemonUnreachable(endpoint, timeout)
    error.args = (
        f"cannot connect to the pub/sub endpoint {endpoint} within {timeout:g}s: {detail}",
    )
    return error


def _decode(frames: list[bytes]) -> Message | None:
    try:
        return protocol.decode_pubsub(frames)
    except ProtocolError:
        return None  # a malformed message is dropped, not fatal to the subscriber


class _Base:
    def __init__(
        self, endpoint: str, topics: list[bytes], ssh_server: str | None, ssh_keyfile: str | None
    ) -> None:
        self.endpoint = endpoint
        self.topics = topics
        self._ssh = (ssh_server, ssh_keyfile)

    _curve: ClientCurve | None = None

    def _setup(self, socket: zmq.Socket[Any]) -> None:
        socket.setsockopt(zmq.LINGER, 0)
        if self._curve is not None:
            self._curve.apply(socket)
        for topic in self.topics:
            socket.setsockopt(zmq.SUBSCRIBE, topic)
        _core.connect(socket, self.endpoint, *self._ssh)

    def _setup_checked(self, socket: zmq.Socket[Any], timeout: float) -> None:
        """:meth:`_setup`, then wait until a ZeroMQ peer completed the handshake.

        A SUB socket's connect never fails by itself (ZeroMQ retries in the background), so
        the socket monitor tells whether anything answered. A peer that refuses the
        handshake ends the wait at once; a refused or missing endpoint is retried until
        ``timeout``, as a daemon may be starting.

        Raises:
            DaemonUnreachable: no handshake within ``timeout`` seconds (the message says
                what was seen: nothing listening, a wrong peer, a refused CURVE key).
        """
        from zmq.utils.monitor import recv_monitor_message

        monitor = socket.get_monitor_socket(_core.MONITOR_EVENTS)
        state = _core.ConnectionState()
        try:
            self._setup(socket)
            deadline = time.monotonic() + timeout
            while not state.connected and not state.wrong_peer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                if monitor.poll(max(1, int(remaining * 1000))):
                    state.update(recv_monitor_message(monitor))
        finally:
            try:
                socket.disable_monitor()
            except zmq.ZMQError:  # pragma: no cover - already closed
                pass
            monitor.close(linger=0)
        if not state.connected:
            raise _not_connected(self.endpoint, timeout, state)


class CircusConsumer(_Base, Closing):
    """Subscribe to a daemon's pub/sub channel and iterate over its messages (blocking).

    Iteration yields ``(topic, payload)`` pairs: the topic as text (e.g.
    ``watcher.web.spawn``, ``output.web.stdout``, ``stat.web.123``) and the decoded JSON
    payload; malformed messages are skipped. ``topics`` are prefixes (default: everything).
    Iteration ends after ``timeout`` seconds without a message (never, by default).
    ``ssh_server``/``ssh_keyfile`` tunnel the connection as for the clients;
    ``curve_key``/``curve_server_key`` speak CURVE, as for the clients.

    ``connect_timeout``: when set, the constructor waits until a publisher has accepted the
    connection (ZeroMQ handshake done) and raises
    :class:`~circus.ctl.errors.DaemonUnreachable` if none did within that many seconds
    (by default it returns at once and ZeroMQ keeps trying in the background).

    ZeroMQ subscriptions take a moment to reach the publisher, so messages published right
    after construction may be missed (the usual slow-joiner rule).
    """

    def __init__(
        self,
        topics: Iterable[str | bytes] | str | bytes | None = None,
        endpoint: str = protocol.DEFAULT_PUBSUB_ENDPOINT,
        context: zmq.Context[Any] | None = None,
        timeout: float | None = None,
        *,
        ssh_server: str | None = None,
        ssh_keyfile: str | None = None,
        curve_key: str | os.PathLike[str] | ClientCurve | None = None,
        curve_server_key: str | os.PathLike[str] | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        super().__init__(endpoint, _topics(topics), ssh_server, ssh_keyfile)
        self._curve = ClientCurve.from_args(curve_key, curve_server_key)
        self.timeout = timeout
        self._own_context = context is None
        self._context: zmq.Context[Any] = zmq.Context() if context is None else context
        self._socket: zmq.Socket[Any] | None = self._context.socket(zmq.SUB)
        try:
            if connect_timeout is None:
                self._setup(self._socket)
            else:
                self._setup_checked(self._socket, connect_timeout)
        except BaseException:
            self.close()
            raise

    def recv_frames(self, timeout: float | None = None) -> list[bytes] | None:
        """Return the next message's raw frames, or None after ``timeout`` seconds."""
        if self._socket is None:
            raise RuntimeError("consumer is closed")
        if timeout is not None and not self._socket.poll(int(max(0.0, timeout) * 1000)):
            return None
        return self._socket.recv_multipart()

    def recv(self, timeout: float | None = None) -> Message | None:
        """Return the next well-formed ``(topic, payload)``, or None after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            frames = self.recv_frames(remaining)
            if frames is None:
                return None
            message = _decode(frames)
            if message is not None:
                return message

    def __iter__(self) -> Iterator[Message]:
        while True:
            message = self.recv(self.timeout)
            if message is None:
                return
            yield message

    def close(self) -> None:
        """Close the socket (and the private context). Safe to call twice."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self._own_context and not self._context.closed:
            self._context.term()


class AsyncCircusConsumer(_Base):
    """The asyncio twin of :class:`CircusConsumer`: ``async for topic, payload in consumer``."""

    def __init__(
        self,
        topics: Iterable[str | bytes] | str | bytes | None = None,
        endpoint: str = protocol.DEFAULT_PUBSUB_ENDPOINT,
        context: zmq.asyncio.Context | None = None,
        timeout: float | None = None,
        *,
        ssh_server: str | None = None,
        ssh_keyfile: str | None = None,
        curve_key: str | os.PathLike[str] | ClientCurve | None = None,
        curve_server_key: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__(endpoint, _topics(topics), ssh_server, ssh_keyfile)
        self._curve = ClientCurve.from_args(curve_key, curve_server_key)
        self.timeout = timeout
        self._own_context = context is None
        self._context = zmq.asyncio.Context() if context is None else context
        self._socket: zmq.asyncio.Socket | None = self._context.socket(zmq.SUB)
        try:
            self._setup(self._socket)
        except BaseException:
            self.close()
            raise

    async def recv_frames(self, timeout: float | None = None) -> list[bytes] | None:  # noqa: ASYNC109
        """Return the next message's raw frames, or None after ``timeout`` seconds."""
        if self._socket is None:
            raise RuntimeError("consumer is closed")
        if timeout is not None and not await self._socket.poll(int(max(0.0, timeout) * 1000)):
            return None
        return await self._socket.recv_multipart()

    async def recv(self, timeout: float | None = None) -> Message | None:  # noqa: ASYNC109
        """Return the next well-formed ``(topic, payload)``, or None after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            frames = await self.recv_frames(remaining)
            if frames is None:
                return None
            message = _decode(frames)
            if message is not None:
                return message

    async def __aiter__(self) -> AsyncIterator[Message]:
        while True:
            message = await self.recv(self.timeout)
            if message is None:
                return
            yield message

    def close(self) -> None:
        """Close the socket (and the private context). Safe to call twice."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        if self._own_context and not self._context.closed:
            self._context.term()

    async def __aenter__(self) -> AsyncCircusConsumer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
