"""A fake daemon (a real ROUTER socket answering canned replies) and a real PUB publisher."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

import zmq
from circus.ctl import protocol
from circus.ctl._closing import Closing

__all__ = ["FakeDaemon", "Publisher", "Handler"]

Handler = Callable[[dict[str, Any]], "dict[str, Any] | None"]
"""Turns a request object into an answer's fields (or a full answer), or None for silence."""


class FakeDaemon(Closing):
    """A ROUTER socket in a thread that answers control requests like circusd would.

    ``replies`` maps a command name to the fields of its ok answer, to a full answer (a
    mapping with ``status``), or to a callable ``request -> fields | answer | None`` (None:
    send nothing, to test timeouts). Unknown commands get errno 2 as 0.19 answers. Every
    request received is appended to :attr:`requests`. Use as a context manager; on exit the
    thread stops and every socket is closed.
    """

    def __init__(
        self,
        endpoint: str,
        replies: Mapping[str, Any] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.replies: dict[str, Any] = dict(replies or {})
        self.requests: list[dict[str, Any]] = []
        self._context = zmq.Context()
        self._router = self._context.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.bind(endpoint)
        self._stop_addr = f"inproc://fake-daemon-stop-{id(self)}"
        self._stop_rx = self._context.socket(zmq.PAIR)
        self._stop_rx.bind(self._stop_addr)
        self._stop_tx = self._context.socket(zmq.PAIR)
        self._stop_tx.connect(self._stop_addr)
        self._thread = threading.Thread(target=self._serve, name="fake-circusd", daemon=True)
        self._thread.start()

    def commands(self) -> list[str]:
        """Return the command names received so far, in order."""
        return [str(r.get("command")) for r in self.requests]

    def last(self, command: str) -> dict[str, Any]:
        """Return the last request received for ``command``."""
        for request in reversed(self.requests):
            if request.get("command") == command:
                return dict(request)
        raise LookupError(f"no {command!r} request received; got {self.commands()}")

    def close(self) -> None:
        """Stop the server thread and close every socket."""
        if self._thread.is_alive():
            self._stop_tx.send(b"stop")
            self._thread.join(10)
        for sock in (self._stop_tx, self._stop_rx, self._router):
            sock.close(linger=0)
        self._context.term()

    # ------------------------------------------------------------------ internals

    def _answer(self, request: dict[str, Any]) -> dict[str, Any] | None:
        command = str(request.get("command", "")).lower()
        request_id = request.get("id")
        if command not in self.replies:
            return protocol.error_answer(
                request_id, f"unknown command: {command!r}", protocol.Errno.UNKNOWN_COMMAND
            )
        reply = self.replies[command]
        if callable(reply):
            reply = reply(request)
        if reply is None:
            return None
        if "status" in reply and reply["status"] == "error":
            answer = protocol.error_answer(
                request_id,
                reply.get("reason", ""),
                reply.get("errno", protocol.Errno.NOT_SPECIFIED),
                reply.get("tb"),
            )
            return answer
        return protocol.ok_answer(request_id, reply)

    def _serve(self) -> None:
        poller = zmq.Poller()
        poller.register(self._router, zmq.POLLIN)
        poller.register(self._stop_rx, zmq.POLLIN)
        while True:
            ready = dict(poller.poll())
            if self._stop_rx in ready:
                return
            frames = self._router.recv_multipart()
            if len(frames) != 2:
                continue
            identity, payload = frames
            try:
                request = json.loads(payload)
            except ValueError:
                answer: dict[str, Any] | None = protocol.error_answer(
                    None, "json invalid", protocol.Errno.INVALID_JSON
                )
            else:
                self.requests.append(request)
                if request.get("msg_type") == "cast":
                    continue
                answer = self._answer(request)
            if answer is not None:
                self._router.send_multipart([identity, protocol.encode(answer)])


class Publisher(Closing):
    """A bound PUB socket publishing two-frame messages (events, output, stats)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.PUB)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(endpoint)

    def publish(self, topic: str, payload: Mapping[str, Any]) -> None:
        """Send ``[topic, json(payload)]``."""
        self._socket.send_multipart([topic.encode(), protocol.encode(payload)])

    def send(self, frames: list[bytes]) -> None:
        """Send already-built frames (e.g. from :func:`circus.ctl.protocol.output_message`)."""
        self._socket.send_multipart(frames)

    def close(self) -> None:
        """Close the socket and its context."""
        self._socket.close(linger=0)
        self._context.term()
