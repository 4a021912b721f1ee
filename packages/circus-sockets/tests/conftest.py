"""Fixtures for circus.sockets tests: managers that always close, reaped WSGI workers."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from circus.process.testing import leak_check_fixture, wait_until
from circus.sockets import SocketManager

# No test leaves a child process or a descriptor behind (DEVELOPERS.md, test rules).
no_leaks = leak_check_fixture()

PID_APP = """
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"pid {os.getpid()}\\n".encode()]
"""


@pytest.fixture
def manager() -> Iterator[SocketManager]:
    """A SocketManager closed (all sockets released) at the end of the test."""
    with SocketManager() as mgr:
        yield mgr


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A folder holding ``pidapp.py``: a WSGI app answering ``pid <worker pid>``."""
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "pidapp.py").write_text(PID_APP)
    return folder


WorkerStarter = Callable[[int, int], list[subprocess.Popen[bytes]]]


@pytest.fixture
def start_workers(app_dir: Path) -> Iterator[WorkerStarter]:
    """start_workers(fd, n): n ``circus.sockets.serve`` workers on fd; all reaped at teardown."""
    started: list[subprocess.Popen[bytes]] = []

    def start(fd: int, n: int) -> list[subprocess.Popen[bytes]]:
        command = [sys.executable, "-m", "circus.sockets.serve", "--quiet", "--fd", str(fd)]
        workers = [
            subprocess.Popen([*command, "pidapp:app"], pass_fds=[fd], cwd=app_dir) for _ in range(n)
        ]
        started.extend(workers)
        return workers

    yield start
    for worker in started:
        if worker.poll() is None:
            worker.terminate()
    for worker in started:
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


def http_get(address: tuple[str, int] | str, timeout: float = 30.0) -> str:
    """One HTTP/1.0 GET over TCP (host, port) or a unix path; returns the body."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    if isinstance(address, tuple) and ":" in address[0]:
        family = socket.AF_INET6
    with socket.socket(family, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.connect(address)
        conn.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n\r\n")
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks).decode()
    head, _, body = response.partition("\r\n\r\n")
    assert head.startswith("HTTP/1.0 200"), head
    return body


@pytest.fixture
def get() -> Callable[..., str]:
    """The http_get helper."""
    return http_get


@pytest.fixture
def waiter() -> Callable[..., None]:
    """:func:`circus.process.testing.wait_until` (predicate, timeout, message)."""
    return wait_until
