"""so_reuseport: the manager reserves the address, each child gets its own listening socket."""

from __future__ import annotations

import select
import socket
from collections.abc import Callable

import pytest
from circus.sockets import CircusSocket, SocketError, SocketManager


def _accept_all(listeners: list[socket.socket], expected: int) -> dict[int, int]:
    """Accept *expected* connections across *listeners*; count per listener fd."""
    counts = {sock.fileno(): 0 for sock in listeners}
    total = 0
    while total < expected:
        ready, _, _ = select.select(listeners, [], [], 5)
        assert ready, "connections did not arrive"
        for sock in ready:
            conn, _ = sock.accept()
            conn.close()
            counts[sock.fileno()] += 1
            total += 1
    return counts


def test_reserving_socket_is_bound_not_listening(manager: SocketManager) -> None:
    sock = manager.add("web", host="127.0.0.1", port=0, so_reuseport=True)
    manager.bind_all()
    assert sock.bound and sock.port != 0
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
    # Nobody listens yet: the trade-off of so_reuseport (documented).
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", sock.port), timeout=5).close()


def test_children_sockets_share_the_port_and_the_load(manager: SocketManager) -> None:
    sock = manager.add("web", host="127.0.0.1", port=0, so_reuseport=True)
    manager.bind_all()
    first, second = sock.bind_for_child(), sock.bind_for_child()
    with first, second:
        for child in (first, second):
            assert child.getsockname() == ("127.0.0.1", sock.port)
            assert child.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
            assert child.fileno() != sock.fileno()
        clients = [socket.create_connection(("127.0.0.1", sock.port), timeout=5) for _ in range(64)]
        try:
            counts = _accept_all([first, second], 64)
        finally:
            for client in clients:
                client.close()
    assert sum(counts.values()) == 64
    assert all(count > 0 for count in counts.values()), counts


def test_child_sockets_only_for_reuseport_sockets_the_command_mentions(
    manager: SocketManager,
) -> None:
    shared = manager.add("shared", host="127.0.0.1", port=0)
    per_child = manager.add("pc", host="127.0.0.1", port=0, so_reuseport=True)
    other = manager.add("other", host="127.0.0.1", port=0, so_reuseport=True)
    manager.bind_all()
    command = "python -m app --fd $(circus.sockets.pc) --also ((circus.sockets.shared))"
    with manager.child_sockets(command) as child:
        assert child.fds["shared"] == shared.fileno()
        assert child.fds["other"] == other.fileno()
        assert child.fds["pc"] != per_child.fileno()
        (fresh,) = child.owned
        assert fresh.fileno() == child.fds["pc"]
        assert fresh.getsockname()[1] == per_child.port
    assert fresh._closed and not shared._closed and not per_child._closed


def test_bind_for_child_needs_so_reuseport() -> None:
    with CircusSocket("web", host="127.0.0.1", port=0) as sock:
        with pytest.raises(SocketError, match="so_reuseport"):
            sock.bind_for_child()


def test_udp_reuseport_is_not_bound_by_the_manager(manager: SocketManager) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sock = manager.add("dns", host="127.0.0.1", port=port, type="SOCK_DGRAM", so_reuseport=True)
    manager.bind_all()
    assert not sock.bound
    with sock.bind_for_child() as child, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"hi", ("127.0.0.1", port))
        child.settimeout(5)
        assert child.recv(8) == b"hi"


@pytest.mark.parametrize(
    "options",
    [
        {"type": "SOCK_DGRAM", "port": 0, "so_reuseport": True},
        {"path": "/tmp/never.sock", "so_reuseport": True},
    ],
)
def test_reuseport_rejections(options: dict[str, object]) -> None:
    with pytest.raises(SocketError, match="so_reuseport"):
        CircusSocket("bad", host="127.0.0.1", **options)  # type: ignore[arg-type]


def test_workers_on_reuseport_sockets_serve(
    manager: SocketManager,
    start_workers: Callable[..., list],
    get: Callable[..., str],
) -> None:
    sock = manager.add("web", host="127.0.0.1", port=0, so_reuseport=True)
    manager.bind_all()
    workers = []
    for _ in range(2):
        with manager.child_sockets("--fd $(circus.sockets.web)") as child:
            workers += start_workers(child.fds["web"], 1)
    pids = {get(("127.0.0.1", sock.port)).split()[-1] for _ in range(40)}
    assert pids <= {str(worker.pid) for worker in workers}
    assert pids
