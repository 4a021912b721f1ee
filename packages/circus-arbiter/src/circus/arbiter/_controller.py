"""The control channel: a ROUTER socket answering every request (spec/protocol.md §1).

Unlike upstream, nothing is dropped: invalid JSON, a non-object, a missing or non-string
``command``, an unknown command, wrongly typed properties and extra frames all get an error
answer; a REQ-style envelope (an empty delimiter frame) is answered with the same envelope, so
REQ clients work too. Only ``msg_type: "cast"`` requests get no answer, as the protocol says.
Each request runs in its own task, so a slow command never delays another one.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio
from circus.ctl.errors import ProtocolError
from circus.ctl.protocol import Errno, decode_request, error_answer, ok_answer

from ._commands import run_command
from ._endpoints import bind_endpoint, remove_ipc
from ._errors import CommandError
from ._peers import MessagePeer
from ._wire import encode

if TYPE_CHECKING:
    from ._arbiter import Arbiter

__all__ = ["Controller"]

log = logging.getLogger("circus.arbiter")


class Controller:
    """Serves the control endpoint of one arbiter until :meth:`close`."""

    def __init__(self, arbiter: Arbiter, context: zmq.asyncio.Context, endpoint: str) -> None:
        self.arbiter = arbiter
        self.endpoint = endpoint
        self._context = context
        self._socket: zmq.asyncio.Socket | None = None
        self._task: asyncio.Task[None] | None = None
        self._requests: set[asyncio.Task[None]] = set()
        self._peer_args: tuple[str, bool, int | None] = (endpoint.partition("://")[0], False, None)

    def bind(self, owner: str | None = None) -> None:
        """Bind the ROUTER socket (ipc files 0600, chowned to ``owner``)."""
        sock = self._context.socket(zmq.ROUTER)
        sock.linger = 0
        try:
            bind_endpoint(sock, self.endpoint, owner)
        except Exception:
            sock.close()
            raise
        self._socket = sock

    def start(self) -> None:
        """Start receiving requests on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _serve(self) -> None:
        assert self._socket is not None
        self._peer_args = _peer_args(self._socket, self.endpoint)
        while True:
            try:
                frames = await self._socket.recv_multipart(copy=False)
            except asyncio.CancelledError:
                raise
            except zmq.ZMQError as exc:  # pragma: no cover - socket closed under us
                log.debug("control socket: %s", exc)
                return
            task = asyncio.get_running_loop().create_task(self._handle(frames))
            self._requests.add(task)
            task.add_done_callback(self._requests.discard)

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
        self, payload: bytes, peer: MessagePeer | None = None
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
            result = await run_command(self.arbiter, request.command, request.properties, peer=peer)
        except CommandError as exc:
            answer = error_answer(msg_id, exc.reason, exc.errno)
        except Exception as exc:
            answer = self._translate(msg_id, payload, exc)
        else:
            if not isinstance(result, dict):
                answer = error_answer(msg_id, "server error", Errno.BAD_MSG_DATA_ERROR)
            else:
                answer = ok_answer(msg_id, result)
        if request.cast:
            if answer["status"] == "error":
                log.warning("cast %r failed: %s", request.command, answer["reason"])
            return None
        return answer

    @staticmethod
    def _translate(msg_id: object, payload: bytes, exc: Exception) -> dict[str, Any]:
        # The one seam where lower layers' exceptions become answers: their messages already
        # name the option/process/socket, so no traceback is sent for them.
        module = type(exc).__module__
        if module.startswith(("circus.watcher", "circus.process", "circus.sockets")):
            bad_input = isinstance(exc, ValueError | LookupError)
            errno = Errno.MESSAGE_ERROR if bad_input else Errno.COMMAND_ERROR
            return error_answer(msg_id, str(exc) or type(exc).__name__, errno)
        if isinstance(exc, OSError):
            return error_answer(msg_id, str(exc), Errno.OS_ERROR)
        log.error("command %r failed", payload[:200], exc_info=exc)
        return error_answer(
            msg_id,
            f"command {payload!r}: {exc}",
            Errno.COMMAND_ERROR,
            "".join(traceback.format_exception(exc)),
        )

    def _send(self, identity: bytes, envelope: list[bytes], answer: dict[str, Any]) -> None:
        if self._socket is None:
            return
        try:
            self._socket.send_multipart([identity, *envelope, encode(answer)], flags=zmq.NOBLOCK)
        except zmq.ZMQError as exc:  # the client went away: nothing to answer to
            log.debug("cannot answer: %s", exc)

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
