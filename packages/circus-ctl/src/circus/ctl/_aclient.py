"""AsyncCircusClient: the asyncio twin of CircusClient (same methods, awaited)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import zmq
import zmq.asyncio
from zmq.utils.monitor import parse_monitor_message

from . import _core, protocol
from .keys import ClientCurve

__all__ = ["AsyncCircusClient"]


class AsyncCircusClient:
    """Send commands to a circusd from asyncio code (``zmq.asyncio``).

    Same arguments, errors and behaviour as :class:`~circus.ctl.CircusClient`; ``call``,
    ``send_message`` and ``cast`` are coroutines, ``close`` is synchronous, and the client is
    an async context manager. Several calls may be in flight at once: each answer is routed
    to its caller by ``id``.
    """

    def __init__(
        self,
        endpoint: str = protocol.DEFAULT_ENDPOINT,
        timeout: float = protocol.DEFAULT_TIMEOUT,
        context: zmq.asyncio.Context | None = None,
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
        self._context = zmq.asyncio.Context() if context is None else context
        self._state = _core.ConnectionState()
        self._waiters: dict[Any, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._socket: zmq.asyncio.Socket | None = None
        self._monitor: zmq.asyncio.Socket | None = None
        try:
            socket = self._context.socket(zmq.DEALER)
            self._socket = socket
            _core.configure_dealer(socket)
            if curve is not None:
                curve.apply(socket)
            self._monitor = socket.get_monitor_socket(_core.MONITOR_EVENTS)
            _core.connect(socket, endpoint, ssh_server, ssh_keyfile)
        except BaseException:
            self.close()
            raise

    async def call(
        self,
        command: str | Mapping[str, Any],
        properties: Mapping[str, Any] | None = None,
        /,
        **props: Any,
    ) -> dict[str, Any]:
        """Send one command and return its answer (see :meth:`CircusClient.call`)."""
        message = _core.build_message(command, properties, props)
        request_id = message["id"]
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[request_id] = future
        sending: asyncio.Task[None] | None = None
        try:
            self._ensure_reader()
            # The send itself waits for a peer (a DEALER with none cannot queue), so it runs
            # under the same timeout, and a refused handshake (the reader fails the future)
            # ends it at once.
            sending = asyncio.get_running_loop().create_task(self._send(message))
            sending.add_done_callback(lambda task: _fail_with(future, task))
            try:
                answer = await asyncio.wait_for(asyncio.shield(future), self.timeout)
            except TimeoutError:
                raise self._state.error(
                    self.endpoint, self.timeout, str(message.get("command", ""))
                ) from None
        finally:
            self._waiters.pop(request_id, None)
            if not future.done():
                future.cancel()
            if sending is not None and not sending.done():
                sending.cancel()
        return _core.check_answer(answer, self.check)

    async def send_message(self, command: str, **props: Any) -> dict[str, Any]:
        """Send ``command`` with keyword properties and return the answer."""
        return await self.call(command, props)

    async def cast(
        self, command: str, properties: Mapping[str, Any] | None = None, /, **props: Any
    ) -> None:
        """Send a command the daemon executes without answering (``msg_type: cast``)."""
        merged = dict(properties or {})
        merged.update(props)
        try:
            await asyncio.wait_for(self._send(protocol.cast_request(command, merged)), self.timeout)
        except TimeoutError:
            raise self._state.error(self.endpoint, self.timeout, command) from None

    def close(self) -> None:
        """Stop the reader task, close the sockets (and the private context)."""
        if self._reader is not None:
            self._reader.cancel()
            self._reader = None
        for future in self._waiters.values():
            if not future.done():
                future.cancel()
        self._waiters.clear()
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

    async def __aenter__(self) -> AsyncCircusClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        reader = self._reader
        self.close()
        if reader is not None:
            try:
                await reader
            except asyncio.CancelledError:
                pass

    # ----------------------------------------------------------------- internals

    async def _send(self, message: Mapping[str, Any]) -> None:
        if self._socket is None:
            raise RuntimeError("client is closed")
        await self._socket.send(protocol.encode(message))

    def _ensure_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.get_running_loop().create_task(self._read_loop())

    async def _read_loop(self) -> None:
        """Route every incoming answer to the waiting call, and follow connection state."""
        assert self._socket is not None and self._monitor is not None
        socket, monitor = self._socket, self._monitor
        poller = zmq.asyncio.Poller()
        poller.register(socket, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        while True:
            ready = dict(await poller.poll())
            if monitor in ready:
                # every pending event: a queued refusal may be followed by the connection
                while _core.pending(monitor):
                    self._state.update(parse_monitor_message(await monitor.recv_multipart()))
                if self._state.give_up:  # waiting longer cannot help: fail every call now
                    for waiter in self._waiters.values():
                        if not waiter.done():
                            waiter.set_exception(self._state.error(self.endpoint, self.timeout, ""))
            if socket in ready:
                answer = _core.decode_any_answer(await socket.recv())
                if answer is None:
                    continue
                try:
                    future = self._waiters.get(answer.get("id"))
                except TypeError:  # an unhashable id cannot be one of ours
                    future = None
                if future is not None and not future.done():
                    future.set_result(answer)


def _fail_with(future: asyncio.Future[Any], task: asyncio.Task[None]) -> None:
    """Pass a failed send's exception on to the caller waiting for the answer."""
    if task.cancelled() or future.done():
        return
    exc = task.exception()
    if exc is not None:
        future.set_exception(exc)
