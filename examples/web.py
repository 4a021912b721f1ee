"""A tiny HTTP worker for examples/circus.ini: serves on a socket circusd bound for it.

Usage: ``python3 web.py FD [WID]`` — FD is the listening socket's file descriptor, given by
circusd through ``$(circus.sockets.web)`` (the watcher needs ``use_sockets = true``). Several
workers share the one socket (pre-fork model). Stdlib only.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


class Hello(BaseHTTPRequestHandler):
    """Answer every GET with the worker's pid and wid."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        wid = sys.argv[2] if len(sys.argv) > 2 else "?"
        body = f"hello from worker wid={wid} pid={os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        print(f"[{os.getpid()}] {self.address_string()} {format % args}", flush=True)


def main() -> None:
    """Serve HTTP on the inherited socket until SIGTERM."""
    fd = int(sys.argv[1])
    sock = socket.socket(fileno=fd)
    server = HTTPServer(sock.getsockname()[:2], Hello, bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    # SIGTERM (circus' stop_signal) ends serve_forever from another thread's point of view:
    # raise out of the blocking accept instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"worker {os.getpid()} serving on {sock.getsockname()}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
