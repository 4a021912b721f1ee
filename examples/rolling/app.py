"""A pre-fork HTTP worker that takes a while to get ready: the rolling-reload example.

Usage: ``python3 app.py FD``. FD is a listening socket circusd bound for the watcher
(``$(circus.sockets.web)``); every worker accepts on the same socket. At start the worker
reads ``version`` (in its working directory; ``v1`` when there is none), spends
``APP_WARMUP`` seconds (default 1) "loading", then tells its manager it is ready (sd_notify
``READY=1`` on ``$NOTIFY_SOCKET`` when there is one) and only then starts accepting: a worker
that is not ready never takes a connection off the shared queue. Each answer is
``VERSION PID``. A ``version`` file saying ``broken`` makes a worker that never gets ready (a
deploy whose database is unreachable).
SIGTERM: the worker finishes the request in hand and exits; the connections still queued on
the shared socket are taken by the other workers. Stdlib only.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import sys
import time

stopping = False


def _on_term(signum: int, frame: object) -> None:
    global stopping
    stopping = True


def notify(message: str) -> None:
    """Send one sd_notify datagram, if a manager asked for them."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    address = "\0" + path[1:] if path.startswith("@") else path
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message.encode(), address)


def answer(conn: socket.socket, version: str) -> None:
    """Read one request's head and answer it (HTTP/1.0, one request per connection)."""
    conn.settimeout(5)
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        chunk = conn.recv(4096)
        if not chunk:
            return
        head += chunk
    body = f"{version} {os.getpid()}\n".encode()
    conn.sendall(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )


def main() -> None:
    """Warm up, say ready, serve until SIGTERM."""
    signal.signal(signal.SIGTERM, _on_term)
    listener = socket.socket(fileno=int(sys.argv[1]))
    listener.setblocking(False)
    try:
        with open("version") as f:
            version = f.read().strip() or "v1"
    except FileNotFoundError:
        version = "v1"
    deadline = time.monotonic() + float(os.environ.get("APP_WARMUP", "1"))
    while not stopping and (version == "broken" or time.monotonic() < deadline):
        time.sleep(0.05)  # "loading"; a broken version never finishes
    if stopping:
        return
    notify(f"READY=1\nSTATUS=serving {version}")
    while not stopping:
        readable, _, _ = select.select([listener], [], [], 0.2)
        if not readable:
            continue
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            continue  # another worker took it
        with conn:
            try:
                answer(conn, version)
            except OSError:
                pass


if __name__ == "__main__":
    main()
