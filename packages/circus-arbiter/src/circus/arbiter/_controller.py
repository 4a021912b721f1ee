"""The control channel: a ROUTER socket answering every request (spec/protocol.md §1).

Unlike upstream, nothing is dropped: invalid JSON, a non-object, a missing or non-string
``command``, an unknown command, wrongly typed properties and extra frames all get an error
answer; a REQ-style envelope (an empty delimiter frame) is answered with the same envelope, so
REQ clients work too. Only ``msg_type: "cast"`` requests get no answer, as the protocol says.
Each request runs in its own task, so a slow command never delays another one.

Bounds: a request is at most :data:`MAX_REQUEST_BYTES` (libzmq drops the connection of a
client that sends a bigger one, without an answer); at most :data:`QUEUE_DEPTH` requests and
as many answers wait in libzmq's queues per client (answers to a client that does not read
them are dropped beyond that); at most :data:`MAX_IN_FLIGHT` requests run at once (the next
ones wait, unread, in those queues); the connections are counted and capped by the connection
guard (``_connguard``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio
from circus.ctl.errors import ProtocolError
from circus.ctl.protocol import Errno, decode_request, error_answer, ok_answer

from ._commands import run_command
from ._connguard import guard
from ._endpoints import bind_again, bind_endpoint, release, remove_ipc
from ._errmap import answer_for
from ._peers import MessagePeer, PeerIdentity
from ._wire import encode

if TYPE_CHECKING:
    from ._context import CommandContext

__all__ = ["MAX_IN_FLIGHT", "MAX_REQUEST_BYTES", "QUEUE_DEPTH", "Controller"]

log = logging.getLogger("circus.arbiter")

MAX_REQUEST_BYTES = 1 << 20  # ZMQ_MAXMSGSIZE of the control socket
QUEUE_DEPTH = 32  # ZMQ_RCVHWM and ZMQ_SNDHWM: messages queued per client, each way
MAX_IN_FLIGHT = 128  # requests being run at once


class Controller:
    """Serves the control endpoint of one arbiter until :meth:`close`."""

    def __init__(
        self, commands: CommandContext, context: zmq.asyncio.Context, endpoint: str
    ) -> None:
        self.commands = commands
        self.endpoint = endpoint
        self._context = context
        self._socket: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._requests: set[asyncio.Task[None]] = set()
        self._peer_args: tuple[str, bool, int | None] = (endpoint.partition("://")[0], False, None)
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        self._guarded = False
        #: ``time.monotonic()`` of the last answer handed to libzmq (0: none yet)
        self.last_answer = 0.0
        self._held: list[Any] = []  # received as reading stopped, not run yet

    def bind(self, owner: str | None = None) -> None:
        """Bind the ROUTER socket (ipc files 0600, chowned to ``owner``) with the bounds of
        the module docstring, its connections counted by the connection guard."""
        sock = self._context.socket(zmq.ROUTER)
        # when the endpoint stops accepting (a flood, a reload), the connections it ends
        # still send the answers already queued for them, for this long
        sock.linger = 100
        sock.maxmsgsize = MAX_REQUEST_BYTES
        sock.rcvhwm = sock.sndhwm = QUEUE_DEPTH
        try:
            guard().watch(sock, self.endpoint, "control", idle_first=True, owner=owner)
            self._guarded = True
        except (OSError, zmq.ZMQError) as exc:  # pragma: no cover - out of descriptors
            log.error("control endpoint %s: connections not capped: %s", self.endpoint, exc)
        try:
            bind_endpoint(sock, self.endpoint, owner)
        except Exception:
            if self._guarded:
                guard().unwatch(sock)
                self._guarded = False
            sock.close()
            raise
        self._socket = sock

    @property
    def bound(self) -> bool:
        """The socket is open (it may have been :meth:`release` d)."""
        return self._socket is not None

    def release(self) -> None:
        """Stop listening on :attr:`endpoint` (the connections accepted there end too);
        :meth:`bind_again` undoes it.

        Raises:
            ArbiterError: the endpoint cannot be released.
        """
        assert self._socket is not None
        release(self._socket, self.endpoint)

    def bind_again(self, owner: str | None = None) -> None:
        """Listen on :attr:`endpoint` again with the socket's own options (its CURVE
        settings included).

        Raises:
            ArbiterError: the endpoint cannot be bound.
        """
        assert self._socket is not None
        bind_again(self._socket, self.endpoint, owner)

    def start(self) -> None:
        """Start receiving requests on the running loop (and run those received as
        :meth:`stop_reading` stopped it)."""
        loop = asyncio.get_running_loop()
        held, self._held = self._held, []
        for frames in held:
            task = loop.create_task(self._handle(frames))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)
        self._task = loop.create_task(self._serve())

    async def _serve(self) -> None:
        assert self._socket is not None
        self._peer_args = _peer_args(self._socket, self.endpoint)
        while True:
            # past MAX_IN_FLIGHT running requests, the next ones wait unread in libzmq's
            # bounded queues, not in ours
            await self._slots.acquire()
            receiving = asyncio.ensure_future(self._socket.recv_multipart(copy=False))
            try:
                frames = await receiving
            except asyncio.CancelledError:
                self._slots.release()
                # stopped (stop_reading) just as a message was received: keep it
                if receiving.done() and not receiving.cancelled() and not receiving.exception():
                    self._held.append(receiving.result())
                raise
            except zmq.ZMQError as exc:  # pragma: no cover - socket closed under us
                self._slots.release()
                log.debug("control socket: %s", exc)
                return
            self._seen(frames[0])
            task = asyncio.get_running_loop().create_task(self._handle(frames))
            self._requests.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._requests.discard(task)
        self._slots.release()

    def _seen(self, frame: Any) -> None:
        # The connection a request came by counts as active for the connection guard, which
        # sheds idle connections first. Only a zmq.Frame (copy=False) knows its connection.
        get = getattr(frame, "get", None)
        if self._guarded and get is not None:
            try:
                guard().seen(int(get(zmq.SRCFD)))
            except (zmq.ZMQError, TypeError, ValueError):
                pass

    async def _handle(self, frames: list[Any]) -> None:
        # zmq.Frame objects (copy=False): besides their bytes, they tell who sent them
        identity, body = frames[0].bytes, frames[1:]
        envelope: list[bytes] = []
        if len(body) == 2 and body[0].bytes == b"":
            envelope, body = [b""], body[1:]
        if len(body) != 1:
            log.warning("control message with %d frames answered with an error", len(frames))
            self._send(
                identity,
                envelope,
                error_answer(
                    None,
                    f"invalid message: expected one JSON frame, got {len(body)} frames",
                    Errno.MESSAGE_ERROR,
                ),
            )
            return
        peer = MessagePeer(body[0], *self._peer_args)
        answer = await self.dispatch(body[0].bytes, peer)
        if answer is not None:
            self._send(identity, envelope, answer)

    async def dispatch(
        self, payload: bytes, peer: MessagePeer | PeerIdentity | None = None
    ) -> dict[str, Any] | None:
        """Run one request payload; the answer dict, or ``None`` for a cast.

        ``peer``: who sent it (what it may do depends on that, see ``_authz``); ``None`` for
        a caller inside circusd, which may do anything.
        """
        try:
            request = decode_request(payload)
        except ProtocolError as exc:
            if getattr(exc, "cast", False):
                log.warning("cast rejected: %s", exc.reason)
                return None
            return error_answer(getattr(exc, "request_id", None), exc.reason, exc.errno)
        msg_id = request.id
        try:
            result = await run_command(
                self.commands, request.command, request.properties, peer=peer
            )
        except Exception as exc:
            answer = self._translate(msg_id, payload, exc)
        else:
            answer = ok_answer(msg_id, result)  # run_command always gives a dict
        if request.cast:
            if answer["status"] == "error":
                log.warning("cast %r failed: %s", request.command, answer["reason"])
            return None
        return answer

    @staticmethod
    def _translate(msg_id: object, payload: bytes, exc: Exception) -> dict[str, Any]:
        # The one seam where exceptions become answers, by class (the table in _errmap).
        (errno, reason, tb), unexpected = answer_for(exc, payload)
        if unexpected:
            log.error("command %r failed", payload[:200], exc_info=exc)
        return error_answer(msg_id, reason, errno, tb)

    def _send(self, identity: bytes, envelope: list[bytes], answer: dict[str, Any]) -> None:
        if self._socket is None:
            return
        try:
            self._socket.send_multipart([identity, *envelope, encode(answer)], flags=zmq.NOBLOCK)
            self.last_answer = time.monotonic()
        except zmq.ZMQError as exc:  # the client went away: nothing to answer to
            log.debug("cannot answer: %s", exc)

    def stop_reading(self) -> None:
        """Read no more requests (they wait in libzmq's queues; :meth:`start` reads on)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def idle(self) -> bool:
        """No request is being run (``daemon-reexec`` switches then)."""
        return not self._requests

    def cut(self) -> list[tuple[bytes, list[bytes], bytes, PeerIdentity]]:
        """Stop serving and listening (the connections end; answers already queued still
        leave) and return the requests received but not run: ``(routing id, envelope,
        payload, sender)``. A new image (``daemon-reexec``) answers them with
        :meth:`answer_later` once their clients, whose routing ids are stable, reconnect."""
        self.stop_reading()
        if self._socket is None:
            return []
        try:
            # at once: a connection kept open to send what is queued would take requests
            # that nobody reads
            self._socket.setsockopt(zmq.LINGER, 0)
            release(self._socket, self.endpoint)
        except Exception as exc:  # the endpoint is closed anyway right after
            log.debug("control endpoint: %s", exc)
        return self.unread()

    def unread(self) -> list[tuple[bytes, list[bytes], bytes, PeerIdentity]]:
        """The requests waiting unread (after :meth:`cut`); see there."""
        if self._socket is None:
            return []
        sync: zmq.Socket[Any] = zmq.Socket.shadow(self._socket.underlying)
        found = []
        held, self._held = self._held, []
        while True:
            if held:
                frames = held.pop(0)
            else:
                try:
                    frames = sync.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.ZMQError:
                    break
            identity, body = frames[0].bytes, frames[1:]
            envelope: list[bytes] = []
            if len(body) == 2 and body[0].bytes == b"":
                envelope, body = [b""], body[1:]
            if len(body) != 1:
                continue
            peer = MessagePeer(body[0], *self._peer_args).identity()
            found.append((identity, envelope, body[0].bytes, peer))
        return found

    def answer_later(
        self, identity: bytes, envelope: list[bytes], payload: bytes, peer: PeerIdentity,
        within: float = 10.0,
    ) -> None:  # fmt: skip
        """Run a request another image received and send the answer to ``identity`` once
        that client is connected again (for ``within`` seconds at most)."""
        loop = asyncio.get_running_loop()

        async def run() -> None:
            answer = await self.dispatch(payload, peer)
            if answer is None:
                return
            message = [identity, *envelope, encode(answer)]
            deadline = loop.time() + within
            while self._socket is not None and loop.time() < deadline:
                sync: zmq.Socket[Any] = zmq.Socket.shadow(self._socket.underlying)
                sync.setsockopt(zmq.ROUTER_MANDATORY, 1)
                try:
                    sync.send_multipart(message, flags=zmq.NOBLOCK)
                    return
                except zmq.ZMQError:
                    pass  # not connected again yet
                finally:
                    sync.setsockopt(zmq.ROUTER_MANDATORY, 0)
                await asyncio.sleep(0.01)
            log.warning("a request handed over by the previous image could not be answered")

        task = loop.create_task(run())
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)

    async def drain(self, timeout: float = 1.0) -> None:  # noqa: ASYNC109
        """Wait a little for in-flight requests (their answers) before closing."""
        current = asyncio.current_task()
        pending = [t for t in self._requests if t is not current]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def close(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._socket is not None:
            if self._guarded:
                guard().unwatch(self._socket)
                self._guarded = False
            # a short linger lets the answer to quit leave before the socket goes
            self._socket.close(linger=200)
            self._socket = None
            remove_ipc(self.endpoint)


def _peer_args(sock: zmq.Socket[Any], endpoint: str) -> tuple[str, bool, int | None]:
    """``(transport, CURVE server, tcp port)`` of our bound socket, for :class:`MessagePeer`."""
    transport = endpoint.partition("://")[0]
    try:
        curve = bool(sock.getsockopt(zmq.CURVE_SERVER))
        last = sock.getsockopt(zmq.LAST_ENDPOINT)
    except zmq.ZMQError:  # pragma: no cover - closed under us
        return transport, False, None
    port: int | None = None
    if transport == "tcp" and isinstance(last, bytes):
        tail = last.decode(errors="replace").rsplit(":", 1)[-1]
        port = int(tail) if tail.isdigit() else None
    return transport, curve, port
