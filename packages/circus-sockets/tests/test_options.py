"""Every [socket:NAME] option, on real sockets bound to loopback or in tmp_path."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from circus.sockets import CircusSocket, SocketError, SocketManager


def _ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not _ipv6_available(), reason="::1 not available")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="SO_BINDTODEVICE needs CAP_NET_RAW")


def test_tcp_port_zero_binds_ephemeral_port_and_reports_it(manager: SocketManager) -> None:
    sock = manager.add("web", host="127.0.0.1", port=0)
    assert sock.port == 0 and not sock.bound
    manager.bind_all()
    assert sock.bound and sock.port != 0
    assert sock.getsockname() == ("127.0.0.1", sock.port)
    assert manager.info() == [
        {
            "fd": sock.fileno(),
            "name": "web",
            "backlog": 2048,
            "host": "127.0.0.1",
            "port": sock.port,
        }
    ]
    assert sock.location == f"127.0.0.1:{sock.port}"
    with socket.create_connection(("127.0.0.1", sock.port), timeout=5):
        conn, _ = sock.accept()
        conn.close()


def test_localhost_is_resolved(manager: SocketManager) -> None:
    sock = manager.add("web", host="localhost", port=0)
    manager.bind_all()
    assert sock.getsockname()[0] == "127.0.0.1"
    assert manager.info()[0]["host"] == "127.0.0.1"


def test_reuseaddr_always_inheritable_and_nonblocking_by_default() -> None:
    with CircusSocket("s", host="127.0.0.1", port=0) as sock:
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 0
        assert os.get_inheritable(sock.fileno())
        assert not os.get_blocking(sock.fileno()) and not sock.blocking


def test_blocking_option() -> None:
    with CircusSocket("s", host="127.0.0.1", port=0, blocking="true") as sock:
        sock.bind_and_listen()
        assert sock.blocking and os.get_blocking(sock.fileno())


def test_backlog_is_used_and_reported(manager: SocketManager) -> None:
    sock = manager.add("web", host="127.0.0.1", port=0, backlog="7")
    manager.bind_all()
    assert sock.backlog == 7 and manager.info()[0]["backlog"] == 7
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


@needs_ipv6
def test_ipv6(manager: SocketManager, get: object) -> None:
    sock = manager.add("v6", host="::1", port=0, family="AF_INET6")
    manager.bind_all()
    assert sock.family == socket.AF_INET6
    assert manager.info()[0]["host"] == "::1"
    assert sock.location == f"[::1]:{sock.port}"
    with socket.create_connection(("::1", sock.port), timeout=5):
        conn, _ = sock.accept()
        conn.close()


def test_udp(manager: SocketManager) -> None:
    sock = manager.add("dns", host="127.0.0.1", port=0, type="SOCK_DGRAM")
    manager.bind_all()
    assert sock.type == socket.SOCK_DGRAM and sock.port != 0
    assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.sendto(b"ping", ("127.0.0.1", sock.port))
        sock.settimeout(5)
        assert sock.recvfrom(16)[0] == b"ping"


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("AF_INET", socket.AF_INET),
        ("af_inet6", socket.AF_INET6),
        ("inet", socket.AF_INET),
        (int(socket.AF_INET6), socket.AF_INET6),
        (str(int(socket.AF_INET)), socket.AF_INET),
    ],
)
def test_family_names_and_ints(family: object, expected: int) -> None:
    with CircusSocket("s", host="127.0.0.1", family=family) as sock:  # type: ignore[arg-type]
        assert sock.family == expected


@pytest.mark.parametrize(
    ("type_", "expected"),
    [
        ("SOCK_STREAM", socket.SOCK_STREAM),
        ("SOCK_DGRAM", socket.SOCK_DGRAM),
        ("dgram", socket.SOCK_DGRAM),
        (int(socket.SOCK_DGRAM), socket.SOCK_DGRAM),
    ],
)
def test_type_names_and_ints(type_: object, expected: int) -> None:
    with CircusSocket("s", host="127.0.0.1", type=type_) as sock:  # type: ignore[arg-type]
        assert sock.type == expected


def test_seqpacket_unix_socket_listens(tmp_path: Path) -> None:
    with CircusSocket("s", path=str(tmp_path / "s.sock"), type="SOCK_SEQPACKET") as sock:
        sock.bind_and_listen()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1


@pytest.mark.parametrize(
    ("proto", "type_", "expected"),
    [
        ("tcp", "SOCK_STREAM", socket.IPPROTO_TCP),
        ("udp", "SOCK_DGRAM", socket.IPPROTO_UDP),
        ("IPPROTO_TCP", "SOCK_STREAM", socket.IPPROTO_TCP),
        (str(socket.IPPROTO_TCP), "SOCK_STREAM", socket.IPPROTO_TCP),
        (socket.IPPROTO_UDP, "SOCK_DGRAM", socket.IPPROTO_UDP),
        (0, "SOCK_STREAM", socket.IPPROTO_TCP),
    ],
)
def test_proto_names_and_ints(proto: object, type_: str, expected: int) -> None:
    with CircusSocket("s", host="127.0.0.1", port=0, type=type_, proto=proto) as sock:  # type: ignore[arg-type]
        sock.bind_and_listen()
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL) == expected


def test_unix_socket_with_umask_and_cleanup(tmp_path: Path, manager: SocketManager) -> None:
    path = tmp_path / "api.sock"
    sock = manager.add("api", path=str(path), umask="077", host="ignored", port=1)
    assert sock.family == socket.AF_UNIX and sock.umask == 0o077
    manager.bind_all()
    assert stat.S_ISSOCK(path.stat().st_mode)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert manager.info() == [
        {"fd": sock.fileno(), "name": "api", "backlog": 2048, "path": str(path)}
    ]
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(str(path))
    manager.close_all()
    assert not path.exists()


@pytest.mark.parametrize(
    ("umask", "mode"),
    [(0o022, 0o755), ("022", 0o755), ("0o22", 0o755), ("0O027", 0o750), (8, 0o767), ("0", 0o777)],
)
def test_umask_int_is_the_mask_string_is_octal(tmp_path: Path, umask: object, mode: int) -> None:
    path = tmp_path / "u.sock"
    with CircusSocket("u", path=str(path), umask=umask) as sock:  # type: ignore[arg-type]
        before = os.umask(0o022)
        os.umask(before)
        sock.bind_and_listen()
        assert stat.S_IMODE(path.stat().st_mode) == mode
        after = os.umask(0o022)
        os.umask(after)
        assert after == before  # the process umask is restored


def test_default_umask_matches_upstream_effective_value() -> None:
    with CircusSocket("u", path="/nonexistent/x.sock") as sock:
        assert sock.umask == 0o010


def test_replace_unlinks_a_stale_socket_file(tmp_path: Path) -> None:
    path = str(tmp_path / "stale.sock")
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(path)
    with CircusSocket("a", path=path) as sock, pytest.raises(SocketError, match="already exists"):
        sock.bind_and_listen()
    with CircusSocket("a", path=path, replace="yes") as sock:
        sock.bind_and_listen()
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
    assert not os.path.exists(path)


def test_replace_never_deletes_a_regular_file(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("precious")
    with CircusSocket("a", path=str(path), replace=True) as sock:
        with pytest.raises(SocketError, match="not a socket"):
            sock.bind_and_listen()
    assert path.read_text() == "precious"


def test_close_leaves_a_file_that_is_no_longer_ours(tmp_path: Path) -> None:
    path = str(tmp_path / "a.sock")
    sock = CircusSocket("a", path=path)
    sock.bind_and_listen()
    os.unlink(path)
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(path)  # another daemon took the path
        sock.close()
        assert os.path.exists(path)


@needs_root
def test_interface_binding(manager: SocketManager) -> None:
    sock = manager.add("lo", host="127.0.0.1", port=0, interface="lo")
    manager.bind_all()
    device = sock.getsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, 16)
    assert device.rstrip(b"\0") == b"lo"
    with socket.create_connection(("127.0.0.1", sock.port), timeout=5):
        conn, _ = sock.accept()
        conn.close()


@needs_root
def test_unknown_interface_is_a_clear_error() -> None:
    with CircusSocket("x", host="127.0.0.1", port=0, interface="nosuchif9") as sock:
        with pytest.raises(SocketError, match="interface 'nosuchif9'.*no such network interface"):
            sock.bind_and_listen()


def test_nothing_stays_bound_after_close_all(manager: SocketManager, tmp_path: Path) -> None:
    tcp = manager.add("tcp", host="127.0.0.1", port=0)
    manager.add("unix", path=str(tmp_path / "x.sock"))
    manager.bind_all()
    port = tcp.port
    manager.close_all()
    assert len(manager) == 0 and manager.info() == []
    assert not (tmp_path / "x.sock").exists()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    with CircusSocket("again", host="127.0.0.1", port=port) as again:
        again.bind_and_listen()  # the port is free again
