"""Fixtures of the daemon-reexec proofs: the pieces of a busy daemon (a numbered-line
printer, a pre-fork HTTP app on a [socket:], idle workers), HTTP and control load."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PRINTER = """\
import os, sys, time
i = 0
while True:
    # each line in two writes: the daemon often holds half a line when it switches
    os.write(1, b"%08d" % i)
    os.write(1, b"-line\\n")
    i += 1
    time.sleep(0.001)
"""

HTTP_APP = """\
import socket, sys
listener = socket.socket(fileno=int(sys.argv[1]))
listener.setblocking(True)
while True:
    conn, _ = listener.accept()
    try:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.0 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
    except OSError:
        pass
    finally:
        conn.close()
"""


def busy_config(tmp_path: Path, py: str, processes: int) -> str:
    """A config of ``processes`` processes: 1 printer, 2 HTTP workers, the rest idle."""
    (tmp_path / "printer.py").write_text(PRINTER)
    (tmp_path / "app.py").write_text(HTTP_APP)
    idle = max(processes - 3, 1)
    return f"""
[watcher:printer]
cmd = {py} {tmp_path}/printer.py
stdout_stream.class = FileStream
stdout_stream.filename = {tmp_path}/printer.log
stdout_stream.time_format = %H:%M:%S
graceful_timeout = 5

[watcher:web]
cmd = {py} {tmp_path}/app.py $(circus.sockets.web)
use_sockets = True
numprocesses = 2
graceful_timeout = 5

[watcher:idle]
cmd = sleep 600
numprocesses = {idle}
graceful_timeout = 5

[socket:web]
host = 127.0.0.1
port = 0
"""


LINE = re.compile(rb"^\S+ \[(\d+)\] \| (\d{8})-line$")


def check_lines(path: Path) -> tuple[int, list[str]]:
    """``(lines, problems)`` of the printer's log: every number once, in order, each line
    whole (the last, maybe unterminated, line is not judged)."""
    data = path.read_bytes()
    lines = data.split(b"\n")[:-1]
    problems: list[str] = []
    expected: int | None = None
    for line in lines:
        match = LINE.match(line)
        if match is None:
            problems.append(f"malformed line {line!r}")
            continue
        number = int(match.group(2))
        if expected is not None and number != expected:
            kind = "duplicated" if number < expected else "lost"
            problems.append(f"{kind}: expected {expected}, got {number}")
        expected = number + 1
    return len(lines), problems


class HttpLoad:
    """One thread sending HTTP requests on new connections until :meth:`stop`."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=10) as conn:
                    conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
                    reply = b""
                    while chunk := conn.recv(4096):
                        reply += chunk
                if not reply.startswith(b"HTTP/1.0 200"):
                    self.failures.append(f"bad reply {reply[:40]!r}")
                else:
                    self.ok += 1
            except OSError as exc:
                self.failures.append(repr(exc))

    def stop(self) -> None:
        """Stop and join the thread."""
        self._stop.set()
        self._thread.join(30)


class ControlLoad:
    """One thread calling ``list`` with its own client until :meth:`stop`; the longest time
    without an answer is the control channel's pause."""

    def __init__(self, call: Callable[[], dict[str, Any]]) -> None:
        self.call = call
        self.ok = 0
        self.failures: list[str] = []
        self.longest_gap = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.is_set():
            try:
                answer = self.call()
            except Exception as exc:
                self.failures.append(repr(exc))
                continue
            now = time.monotonic()
            if answer.get("status") != "ok":
                self.failures.append(str(answer))
            else:
                self.ok += 1
                self.longest_gap = max(self.longest_gap, now - last)
                last = now

    def stop(self) -> None:
        """Stop and join the thread."""
        self._stop.set()
        self._thread.join(30)


@pytest.fixture
def reexec_tools() -> Iterator[Any]:
    """The helpers above, as attributes."""
    from types import SimpleNamespace

    yield SimpleNamespace(
        busy_config=busy_config, check_lines=check_lines, HttpLoad=HttpLoad, ControlLoad=ControlLoad
    )
