"""CircusSocket.load_from_config: [socket:NAME] sections as the INI reader gives them."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest
from circus.sockets import CircusSocket, SocketError, SocketManager


def test_ini_strings_for_every_option(tmp_path: Path) -> None:
    section = {
        "__name__": "socket:Web",
        "name": "Web",
        "host": "127.0.0.1",
        "port": "0",
        "family": "AF_INET",
        "type": "SOCK_STREAM",
        "proto": "tcp",
        "backlog": "128",
        "umask": "022",
        "replace": "false",
        "interface": "",
        "so_reuseport": "no",
        "blocking": "off",
    }
    with CircusSocket.load_from_config(section) as sock:
        assert sock.name == "web"  # lowercased, as circus does for section names
        assert (sock.family, sock.type, sock.proto) == (
            socket.AF_INET,
            socket.SOCK_STREAM,
            socket.IPPROTO_TCP,
        )
        assert (sock.backlog, sock.umask, sock.replace, sock.interface) == (128, 0o022, False, None)
        assert not sock.so_reuseport and not sock.blocking
        sock.bind_and_listen()
        assert sock.port != 0


def test_unix_section(tmp_path: Path) -> None:
    path = tmp_path / "u.sock"
    with SocketManager() as manager:
        sock = manager.add_from_config(
            {"name": "u", "path": str(path), "umask": "0o077", "replace": "true"}
        )
        manager.bind_all()
        assert sock.family == socket.AF_UNIX
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert not path.exists()


def test_udp_and_ipv6_names() -> None:
    with CircusSocket.load_from_config({"name": "d", "type": "SOCK_DGRAM", "port": "0"}) as sock:
        assert sock.type == socket.SOCK_DGRAM
    with CircusSocket.load_from_config({"name": "v6", "family": "AF_INET6", "host": "::1"}) as s6:
        assert s6.family == socket.AF_INET6


def test_defaults_match_upstream() -> None:
    with CircusSocket.load_from_config({"name": "d"}) as sock:
        assert (sock.host, sock.port, sock.backlog, sock.umask) == ("localhost", 8080, 2048, 8)
        assert (sock.family, sock.type) == (socket.AF_INET, socket.SOCK_STREAM)
        assert not (sock.replace or sock.so_reuseport or sock.blocking) and sock.path is None


def test_unknown_keys_ignored_unless_strict() -> None:
    with CircusSocket.load_from_config({"name": "a", "prot": "0", "port": "0"}) as sock:
        assert sock.name == "a"
    with pytest.raises(SocketError, match="unknown option.*prot.*valid options:.*so_reuseport"):
        CircusSocket.load_from_config({"name": "a", "prot": "0"}, strict=True)


def test_bad_value_in_section_names_the_socket() -> None:
    with pytest.raises(SocketError, match=r"socket 'web' \(localhost:eighty\): port must be"):
        CircusSocket.load_from_config({"name": "web", "port": "eighty"})


def test_options_round_trip(tmp_path: Path) -> None:
    section = {"name": "web", "host": "127.0.0.1", "port": "0", "type": "SOCK_DGRAM"}
    with CircusSocket.load_from_config(section) as sock:
        sock.bind_and_listen()
        options = sock.options()
        assert options["port"] == 0 and sock.port != 0  # the configured port, not the real one
        assert options["family"] == "AF_INET" and options["type"] == "SOCK_DGRAM"
        with CircusSocket.load_from_config(options, strict=True) as twin:
            assert twin.options() == options
    with CircusSocket("u", path=str(tmp_path / "u.sock"), umask="027") as unix:
        assert unix.options()["path"] == str(tmp_path / "u.sock")
        with CircusSocket.load_from_config(unix.options()) as twin:
            assert twin.options() == unix.options()
