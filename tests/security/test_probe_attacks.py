"""http/tcp probes against hostile servers: each answer is bounded in time and size.

A probe's target is the watched process itself, which may be hostile (a compromised app) or
just broken: an endless answer without a newline, one byte every while (slowloris), a server
that accepts and never answers. circusd reads at most a few KiB, within the probe's timeout,
and leaves no socket behind (the leak check of every test sees to that).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from circus.watcher._probes import parse_probe, run_probe


@contextlib.contextmanager
def _serve(behave: Callable[[socket.socket], None]) -> Iterator[int]:
    listener = socket.create_server(("127.0.0.1", 0))
    sent: list[int] = [0]
    stop = threading.Event()

    def run() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(0.2)
                try:
                    conn.recv(4096)
                    while not stop.is_set():
                        behave(conn)
                        sent[0] += 1
                except OSError:
                    pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(10)
        listener.close()


def _endless(conn: socket.socket) -> None:
    conn.sendall(b"x" * 65536)  # no newline, ever


def _slow(conn: socket.socket) -> None:
    conn.sendall(b"H")
    time.sleep(0.05)


def _silent(conn: socket.socket) -> None:
    time.sleep(0.05)


@pytest.mark.parametrize("behave", [_endless, _slow, _silent], ids=["endless", "slow", "silent"])
def test_http_probe_against_a_hostile_server(behave: Callable[[socket.socket], None]) -> None:
    with _serve(behave) as port:
        spec = parse_probe(f"http://127.0.0.1:{port}/health")
        started = time.monotonic()
        why = asyncio.run(run_probe(spec, timeout=1.0))
        took = time.monotonic() - started
        assert why is not None, "a hostile answer passed the probe"
        assert took < 10, f"the probe took {took:.1f} s with a 1 s timeout"
        if behave is _endless:
            # read at most the head's bound: the server's writes stall after a few chunks
            assert "not an HTTP answer" in why, why
