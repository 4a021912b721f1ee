"""Bad input gives a SocketError naming the socket and the address, and leaks no fd."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from circus.sockets import CircusSocket, SocketError, SocketManager, SocketOptionError


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_port_in_use(manager: SocketManager) -> None:
    first = manager.add("first", host="127.0.0.1", port=0)
    manager.bind_all()
    second = manager.add("second", host="127.0.0.1", port=first.port)
    with pytest.raises(SocketError) as info:
        manager.bind_all()
    err = info.value
    assert err.name == "second" and err.address == f"127.0.0.1:{first.port}"
    assert f"socket 'second' (127.0.0.1:{first.port})" in str(err)
    assert "address already in use" in str(err)
    assert not second.bound
    assert not isinstance(err, SocketOptionError)  # the OS refused, the options were fine


def test_bad_host() -> None:
    with CircusSocket("web", host="no such host.invalid", port=80) as sock:
        with pytest.raises(SocketError, match=r"socket 'web' \(no such host.invalid:80\)"):
            sock.bind_and_listen()


def test_ipv6_host_in_ipv4_family_says_what_to_do() -> None:
    with CircusSocket("web", host="::1", port=80) as sock:
        with pytest.raises(SocketError, match="needs family = AF_INET6"):
            sock.bind_and_listen()


def test_host_not_on_this_machine() -> None:
    with CircusSocket("web", host="192.0.2.1", port=0) as sock:
        with pytest.raises(SocketError, match="not available on this machine"):
            sock.bind_and_listen()


def test_unix_path_in_missing_folder(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "api.sock"
    with CircusSocket("api", path=str(path)) as sock:
        with pytest.raises(SocketError) as info:
            sock.bind_and_listen()
    assert info.value.address == str(path)
    assert f"socket 'api' ({path})" in str(info.value)
    assert "folder does not exist" in str(info.value)


def test_unix_path_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with CircusSocket("api", path=str(tmp_path / "file" / "api.sock")) as sock:
        with pytest.raises(SocketError, match="not a folder"):
            sock.bind_and_listen()


def test_unix_path_in_unwritable_folder(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    path = folder / "api.sock"
    with CircusSocket("api", path=str(path)) as sock:
        # Root writes anywhere: drop the effective uid (only) around the bind, then restore it.
        as_root = os.geteuid() == 0
        if as_root:
            os.seteuid(65534)
        try:
            with pytest.raises(SocketError) as info:
                sock.bind_and_listen()
        finally:
            if as_root:
                os.seteuid(0)
    assert f"socket 'api' ({path})" in str(info.value)
    assert "permission denied" in str(info.value)
    assert not path.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"family": "AF_BOGUS"}, "unknown family 'AF_BOGUS'"),
        ({"family": 12345}, "unsupported family number 12345"),
        ({"type": "SOCK_BOGUS"}, "unknown type 'SOCK_BOGUS'"),
        ({"type": 999}, "unsupported type number 999"),
        ({"proto": "nosuchproto"}, "unknown protocol 'nosuchproto'"),
        ({"port": "http"}, "port must be an integer, got 'http'"),
        ({"port": 70000}, "port must be between 0 and 65535"),
        ({"backlog": "-1"}, "backlog must be >= 0"),
        ({"umask": "8"}, "umask must be octal"),
        ({"umask": 0o1777}, "umask must be between 0 and 0o777"),
        ({"replace": "maybe"}, "expected a boolean"),
        ({"so_reuseport": "2"}, "expected a boolean"),
        ({"blocking": "sometimes"}, "expected a boolean"),
        ({"family": "AF_UNIX"}, "AF_UNIX needs a path"),
    ],
)
def test_bad_options_name_socket_and_address(options: dict[str, object], message: str) -> None:
    before = _open_fds()
    with pytest.raises(SocketOptionError) as info:
        CircusSocket("bad", host="127.0.0.1", **options)  # type: ignore[arg-type]
    assert isinstance(info.value, SocketError) and isinstance(info.value, ValueError)
    assert message in str(info.value)
    assert str(info.value).startswith("socket 'bad'")
    assert _open_fds() == before


def test_duplicate_name(manager: SocketManager) -> None:
    manager.add("web", host="127.0.0.1", port=0)
    with pytest.raises(SocketError, match="socket 'web'.*already exists"):
        manager.add("web", host="127.0.0.1", port=0)
    with pytest.raises(SocketError, match="already exists"):
        manager.add_from_config({"name": "WEB", "port": "0"})
    assert len(manager) == 1


def test_bind_after_close() -> None:
    sock = CircusSocket("web", host="127.0.0.1", port=0)
    sock.close()
    with pytest.raises(SocketError, match="closed"):
        sock.bind_and_listen()


def test_unix_path_too_long(tmp_path: Path) -> None:
    path = str(tmp_path / ("x" * 200))
    with CircusSocket("long", path=path) as sock:
        with pytest.raises(SocketError, match=r"socket 'long' \(.*x\): cannot bind .*too long$"):
            sock.bind_and_listen()
