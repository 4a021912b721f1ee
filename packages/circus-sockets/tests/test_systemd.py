"""systemd socket activation: LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.sockets import SocketError, SocketManager, listen_fds

# Runs as the "activated" service: moves the inherited fds to 3, 4, ... as systemd would,
# sets LISTEN_* for its own pid, then adopts them into a SocketManager.
ACTIVATED = r"""
import fcntl, json, os, socket, sys
from circus.sockets import SocketError, SocketManager

spec = json.loads(sys.argv[1])
high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in spec["fds"]]
for fd in spec["fds"]:
    os.close(fd)
for index, fd in enumerate(high):
    os.dup2(fd, 3 + index)
    os.close(fd)
os.environ.update(
    LISTEN_PID=str(os.getpid()),
    LISTEN_FDS=str(len(high)),
    LISTEN_FDNAMES=":".join(spec["names"]),
)
manager = SocketManager()
for options in spec["configured"]:
    manager.add(**options)
try:
    adopted = manager.adopt_systemd()
    manager.bind_all()
except SocketError as exc:
    print(json.dumps({"error": str(exc)}), flush=True)
    manager.close_all()
    sys.exit(0)
report = {
    "adopted": adopted,
    "info": manager.info(),
    "env": sorted(key for key in os.environ if key.startswith("LISTEN_")),
    "types": {sock.name: [sock.adopted, sock.blocking] for sock in manager},
}
print(json.dumps(report), flush=True)
if spec.get("serve"):
    web = manager[spec["serve"]]
    web.settimeout(30)
    conn, _ = web.accept()
    conn.sendall(b"adopted")
    conn.close()
manager.close_all()
"""


def run_activated(fds: list[int], spec: dict[str, Any]) -> subprocess.Popen[str]:
    spec = {"fds": fds, "configured": [], **spec}
    return subprocess.Popen(
        [sys.executable, "-c", ACTIVATED, json.dumps(spec)],
        pass_fds=fds,
        stdout=subprocess.PIPE,
        text=True,
    )


def finish(child: subprocess.Popen[str]) -> None:
    try:
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        assert child.stdout is not None
        child.stdout.close()


def test_adopts_by_name_replacing_config_and_adding_the_rest(tmp_path: Path) -> None:
    tcp = socket.create_server(("127.0.0.1", 0))
    unix_path = tmp_path / "api.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(unix_path))
    unix.listen()
    with tcp, unix:
        port = tcp.getsockname()[1]
        child = run_activated(
            [tcp.fileno(), unix.fileno()],
            {
                "names": ["web", "api"],
                # Configured 'web' says port 1: the systemd socket wins, nothing binds port 1.
                "configured": [{"sock": "web", "host": "127.0.0.1", "port": 1, "backlog": 5}],
                "serve": "web",
            },
        )
        try:
            assert child.stdout is not None
            report = json.loads(child.stdout.readline())
            with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
                assert conn.recv(16) == b"adopted"
            assert report["adopted"] == ["web", "api"]
            assert report["env"] == []  # unset so children do not inherit them
            assert report["info"] == [
                {"fd": 3, "name": "web", "backlog": 5, "host": "127.0.0.1", "port": port},
                {"fd": 4, "name": "api", "backlog": socket.SOMAXCONN, "path": str(unix_path)},
            ]
            assert report["types"] == {"web": [True, False], "api": [True, False]}
        finally:
            finish(child)
        assert child.returncode == 0
        assert unix_path.exists()  # adopted: closed, never unlinked (systemd owns it)


def test_type_mismatch_is_an_error() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        child = run_activated(
            [udp.fileno()],
            {"names": ["web"], "configured": [{"sock": "web", "host": "127.0.0.1", "port": 0}]},
        )
        try:
            assert child.stdout is not None
            report = json.loads(child.stdout.readline())
        finally:
            finish(child)
    assert "socket 'web' (fd 3)" in report["error"] and "type" in report["error"]


def test_listen_fds_parsing() -> None:
    env = {"LISTEN_PID": "42", "LISTEN_FDS": "3", "LISTEN_FDNAMES": "web:web:api"}
    assert listen_fds(env, pid=42) == [("web", 3), ("web_1", 4), ("api", 5)]
    assert listen_fds(env, pid=43) == []
    assert listen_fds({"LISTEN_FDS": "2"}, pid=42) == []
    unnamed = {"LISTEN_PID": "42", "LISTEN_FDS": "2"}
    assert listen_fds(unnamed, pid=42) == [("fd3", 3), ("fd4", 4)]
    wrong_count = {"LISTEN_PID": "42", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "only"}
    assert listen_fds(wrong_count, pid=42) == [("fd3", 3), ("fd4", 4)]
    with pytest.raises(SocketError, match="LISTEN_FDS must be a number"):
        listen_fds({"LISTEN_PID": "42", "LISTEN_FDS": "x"}, pid=42)


def test_unset_removes_the_variables_even_for_another_pid() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "web", "PATH": "/bin"}
    assert listen_fds(env, pid=2, unset=True) == []
    assert env == {"PATH": "/bin"}


def test_adopt_does_nothing_for_another_pid(manager: SocketManager) -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "web"}
    assert manager.adopt_systemd(env, pid=2) == []
    assert len(manager) == 0


def test_adopt_after_bind_is_an_error(manager: SocketManager) -> None:
    sock = manager.add("web", host="127.0.0.1", port=0)
    manager.bind_all()
    env = {"LISTEN_PID": "7", "LISTEN_FDS": "1", "LISTEN_FDNAMES": "web"}
    with pytest.raises(SocketError, match="before bind_all"):
        manager.adopt_systemd(env, pid=7)
    assert manager["web"] is sock
