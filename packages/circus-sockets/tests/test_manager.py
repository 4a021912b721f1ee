"""SocketManager: membership, fd_map, listsockets rows, sockets outliving processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from circus.sockets import CircusSocket, SocketManager


def test_fd_map_and_info_sorted_by_fd(manager: SocketManager, tmp_path: Path) -> None:
    b = manager.add(CircusSocket("b", host="127.0.0.1", port=0))
    a = manager.add("a", path=str(tmp_path / "a.sock"))
    manager.bind_all()
    assert manager.fd_map() == {"b": b.fileno(), "a": a.fileno()}
    rows = manager.info()
    assert [row["fd"] for row in rows] == sorted([a.fileno(), b.fileno()])
    assert {row["name"]: set(row) for row in rows} == {
        "a": {"fd", "name", "backlog", "path"},
        "b": {"fd", "name", "backlog", "host", "port"},
    }
    assert manager.names == ["b", "a"] and "a" in manager and manager["b"] is b
    assert manager.get("zz") is None and list(manager) == [b, a]


def test_bind_all_is_idempotent(manager: SocketManager) -> None:
    sock = manager.add("web", host="127.0.0.1", port=0)
    manager.bind_all()
    port = sock.port
    manager.bind_all()
    assert sock.port == port


def test_remove_closes(manager: SocketManager, tmp_path: Path) -> None:
    manager.add("u", path=str(tmp_path / "u.sock"))
    manager.bind_all()
    manager.remove("u")
    assert "u" not in manager and not (tmp_path / "u.sock").exists()
    with pytest.raises(KeyError):
        manager.remove("u")


def test_child_inherits_the_fd_and_socket_stays_open_after_it_exits(
    manager: SocketManager, get: Callable[..., str]
) -> None:
    sock = manager.add("web", host="127.0.0.1", port=0)
    manager.bind_all()
    fd = manager.fd_map()["web"]
    code = (
        "import socket, sys; s = socket.socket(fileno=int(sys.argv[1]));"
        " print(s.getsockname()[1]); s.detach()"
    )
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", code, str(fd)],
            pass_fds=[fd],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert int(out) == sock.port
    os.fstat(fd)  # still open here
    assert sock.getsockname()[1] == sock.port


def test_add_rejects_options_with_a_socket_object(manager: SocketManager) -> None:
    with CircusSocket("x", host="127.0.0.1", port=0) as sock:
        with pytest.raises(TypeError):
            manager.add(sock, port=1)


def test_dup_is_plain_and_closing_it_keeps_the_file(tmp_path: Path) -> None:
    path = tmp_path / "d.sock"
    with CircusSocket("d", path=str(path)) as sock:
        sock.bind_and_listen()
        copy = sock.dup()
        assert type(copy).__name__ == "socket"
        copy.close()
        assert path.exists()
    assert not path.exists()


def test_add_with_upstream_positional_arguments(manager: SocketManager) -> None:
    sock = manager.add("web", "127.0.0.1", 0)
    manager.bind_and_listen_all()
    assert sock.host == "127.0.0.1" and sock.bound and sock.port != 0
