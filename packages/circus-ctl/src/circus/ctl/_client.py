"""CircusClient: a blocking client for the control channel."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from . import _core, protocol
from ._closing import Closing
from .keys import ClientCurve

__all__ = ["CircusClient"]


class CircusClient(Closing):
    """Send commands to a circusd over ZeroMQ and wait for the answers (blocking).

    One DEALER socket is connected to ``endpoint`` for the client's lifetime; close it with
    :meth:`close` or use the client as a context manager. Not thread-safe (one ZeroMQ socket).

    Args:
        endpoint: the daemon's control endpoint.
        timeout: seconds to wait for each answer.
        context: a ZeroMQ context to use; by default the client owns a private one.
        ssh_server: ``user@host:port`` to tunnel through (needs paramiko or pexpect).
        ssh_keyfile: private key for the SSH tunnel.
        check: raise :class:`~circus.ctl.errors.CallError` on error answers (default). With
            ``check=False`` error answers are returned like any other, as 0.19's client does.
        curve_key: this client's ``NAME.key_secret`` file (see :mod:`circus.ctl.keys`), or a
            :class:`~circus.ctl.keys.ClientCurve`: talk CURVE to a daemon that requires it.
        curve_server_key: the daemon's public ``.key`` file (with a ``curve_key`` file).

    Raises (from every call):
        DaemonUnreachable: nothing accepted a connection on the endpoint within the timeout.
        CallTimeout: a daemon is connected but did not answer within the timeout.
        CallError: the daemon answered ``status: error`` (when ``check``).
    """

    def __init__(
        self,
        endpoint: str = protocol.DEFAULT_ENDPOINT,
        timeout: float = protocol.DEFAULT_TIMEOUT,
        context: zmq.Context[Any] | None = None,
        ssh_server: str | None = None,
        ssh_keyfile: str | None = None,
        *,
        check: bool = True,
        curve_key: str | os.PathLike[str] | ClientCurve | None = None,
        curve_server_key: str | os.PathLike[str] | None = None,
    ) -> None:
        curve = ClientCurve.from_args(curve_key, curve_server_key)
        self.endpoint = endpoint
        self.timeout = float(timeout)
        self.check = check
        self._own_context = context is None
        self._context: zmq.Context[Any] = zmq.Context() if context is None else context
        self._state = _core.ConnectionState()
        self._socket: zmq.Socket[Any] | None = None
        self._monitor: zmq.Socket[Any] | None = None
        try:
            socket = self._context.socket(zmq.DEALER)
            self._socket = socket
            _core.configure_dealer(socket)
            if curve is not None:
                curve.apply(socket)
            self._monitor = socket.get_monitor_socket(_core.MONITOR_EVENTS)
            _core.connect(socket, endpoint, ssh_server, ssh_keyfile)
            self._poller = zmq.Poller()
            self._poller.register(socket, zmq.POLLIN)
            self._poller.register(self._monitor, zmq.POLLIN)
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- public API

    def call(
        self,
        command: str | Mapping[str, Any],
        properties: Mapping[str, Any] | None = None,
        /,
        **props: Any,
    ) -> dict[str, Any]:
        """Send one command and return its answer.

        ``command`` is a command name (properties given as a mapping and/or keywords), or a
        whole message object / JSON text as 0.19's ``CircusClient.call`` accepts.
        """
        message = _core.build_message(command, properties, props)
        answer = self._round_trip(message)
        return _core.check_answer(answer, self.check)

    def send_message(self, command: str, **props: Any) -> dict[str, Any]:
        """Send ``command`` with keyword properties and return the answer (0.19's spelling)."""
        return self.call(command, props)

    def cast(
        self, command: str, properties: Mapping[str, Any] | None = None, /, **props: Any
    ) -> None:
        """Send a command the daemon executes without answering (``msg_type: cast``)."""
        merged = dict(properties or {})
        merged.update(props)
        self._send(protocol.cast_request(command, merged))

    def close(self) -> None:
        """Close the socket (and the private context). Safe to call twice."""
        if self._socket is not None:
            if self._monitor is not None:
                try:
                    self._socket.disable_monitor()
                except zmq.ZMQError:
                    pass
                self._monitor.close(linger=0)
                self._monitor = None
            self._socket.close(linger=0)
            self._socket = None
        if self._own_context and not self._context.closed:
            self._context.term()

    # ----------------------------------------------------------------- internals

    def _send(self, message: Mapping[str, Any], deadline: float | None = None) -> None:
        if self._socket is None or self._monitor is None:
            raise RuntimeError("client is closed")
        data = protocol.encode(message)
        if deadline is None:
            deadline = time.monotonic() + self.timeout
        command = str(message.get("command", ""))
        poller: zmq.Poller | None = None
        while True:
            try:
                self._socket.send(data, zmq.NOBLOCK)
                return
            except zmq.Again:
                pass
            # No peer to queue the message for (a DEALER's send would block forever): the
            # connection is still being made, or the peer refused our handshake.
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._state.error(self.endpoint, self.timeout, command)
            if poller is None:
                poller = zmq.Poller()
                poller.register(self._socket, zmq.POLLOUT)
                poller.register(self._monitor, zmq.POLLIN)
            ready = dict(poller.poll(max(1, int(remaining * 1000))))
            if self._monitor in ready:
                self._read_monitor()
                if self._state.give_up:
                    raise self._state.error(self.endpoint, self.timeout, command)

    def _read_monitor(self) -> None:
        """Fold every pending monitor event into the connection state."""
        assert self._monitor is not None
        while _core.pending(self._monitor):
            self._state.update(recv_monitor_message(self._monitor))

    def _round_trip(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self._socket is not None and self._monitor is not None
        deadline = time.monotonic() + self.timeout
        self._send(message, deadline)
        request_id = message["id"]
        poller = self._poller
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._state.error(
                    self.endpoint, self.timeout, str(message.get("command", ""))
                )
            ready = dict(poller.poll(max(1, int(remaining * 1000))))
            if self._monitor in ready:
                self._read_monitor()
                if self._state.give_up:  # waiting longer cannot help
                    raise self._state.error(self.endpoint, self.timeout, str(message["command"]))
            if self._socket in ready:
                answer = _core.match_answer(self._socket.recv(), request_id)
                if answer is not None:
                    return answer
