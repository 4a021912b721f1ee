"""A wsgiref server that serves on an inherited listening socket instead of binding one."""

from __future__ import annotations

import os
import signal
import socket
import socketserver
from collections.abc import Callable
from types import FrameType
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer


class QuietHandler(WSGIRequestHandler):
    """WSGIRequestHandler without the per-request access log line on stderr."""

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass


class _Stop(Exception):
    pass


class InheritedWSGIServer(WSGIServer):
    """A single-threaded WSGI server accepting on *sock*, a socket bound by someone else.

    Several processes may serve the same inherited socket (pre-fork): each waits for the
    socket to be readable, the kernel hands a connection to one of them, and the others'
    non-blocking ``accept()`` fails harmlessly. :meth:`serve_until_stopped` returns after the
    request in progress when SIGTERM or SIGINT arrives.
    """

    def __init__(
        self,
        sock: socket.socket,
        handler: type[WSGIRequestHandler] = WSGIRequestHandler,
    ) -> None:
        self.address_family = sock.family
        address = sock.getsockname()
        # BaseServer, not TCPServer: the latter would create and bind a socket of its own.
        socketserver.BaseServer.__init__(self, address, handler)
        self.socket = sock
        if isinstance(address, tuple):
            self.server_name, self.server_port = str(address[0]), int(address[1])
        else:
            self.server_name, self.server_port = "localhost", 0
        self.setup_environ()
        self._stopping = False
        self._in_accept = False
        self._fd_blocking = os.get_blocking(sock.fileno())

    def get_request(self) -> tuple[socket.socket, Any]:
        """Accept one connection (blocking I/O on it); unix peers get address ('', 0)."""
        self._in_accept = True
        try:
            conn, addr = self.socket.accept()
        finally:
            self._in_accept = False
        conn.setblocking(True)
        if not isinstance(addr, tuple):
            addr = ("", 0)
        return conn, addr

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        # A blocking listening socket (blocking = true) would keep accept() waiting forever.
        if self._fd_blocking and self._in_accept:
            raise _Stop

    def serve_until_stopped(self, poll_interval: float = 0.2) -> None:
        """Serve requests one at a time until SIGTERM/SIGINT; handlers restored on return."""
        previous: dict[int, Any] = {}
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, self._on_signal)
        self.timeout = poll_interval
        try:
            while not self._stopping:
                try:
                    self.handle_request()
                except _Stop:
                    break
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


def serve_fd(
    fd: int,
    app: Callable[..., Any],
    *,
    quiet: bool = False,
    poll_interval: float = 0.2,
    on_ready: Callable[[InheritedWSGIServer], None] | None = None,
) -> None:
    """Serve the WSGI *app* on inherited listening socket *fd* until SIGTERM/SIGINT.

    Takes ownership of *fd* (closed on return). *on_ready* is called with the server just
    before it starts accepting.
    """
    sock = socket.socket(fileno=fd)
    server = InheritedWSGIServer(sock, QuietHandler if quiet else WSGIRequestHandler)
    server.set_app(app)
    try:
        if on_ready is not None:
            on_ready(server)
        server.serve_until_stopped(poll_interval)
    finally:
        server.server_close()
