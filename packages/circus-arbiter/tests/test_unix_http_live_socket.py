"""``[unix_http_server]`` removes a socket file left behind only when nothing listens on it
(the connect is refused): a live server that cannot take one more connection right now
(its backlog full) keeps its socket file, and the start is refused."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from circus.arbiter.supervisor._http import HttpServerSpec, _bind_unix


def test_a_live_server_with_a_full_backlog_keeps_its_socket_file(tmp_path: Path) -> None:
    path = str(tmp_path / "live.sock")
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    waiting: list[socket.socket] = []
    try:
        live.bind(path)
        live.listen(0)
        while True:  # fill its backlog: nobody accepts
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.setblocking(False)
            try:
                client.connect(path)
            except BlockingIOError:
                client.close()
                break
            waiting.append(client)
            assert len(waiting) < 1000
        before = os.lstat(path).st_ino
        with pytest.raises(OSError, match="not replacing it"):
            sock, _ = _bind_unix(HttpServerSpec(kind="unix", path=path, where="t.conf:1"))
            sock.close()
        assert os.lstat(path).st_ino == before, "a live server's socket file was removed"
    finally:
        for client in waiting:
            client.close()
        live.close()


def test_a_stale_socket_file_is_still_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(path)
    dead.close()  # the file stays, nothing listens
    sock, ours = _bind_unix(HttpServerSpec(kind="unix", path=path, where="t.conf:1"))
    try:
        assert os.lstat(path).st_ino == ours[1]
    finally:
        sock.close()
        os.unlink(path)
