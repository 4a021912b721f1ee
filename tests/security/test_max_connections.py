"""``[circus] max_connections``: the cap on simultaneous connections of each control
endpoint (ZeroMQ control, pub/sub, stats; Supervisor's XML-RPC server), for an operator who
wants a flood cut far below the descriptor budget. Past the cap, new or idle connections are
shed and circusd says so, naming the option; a client that was already talking keeps being
answered.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import zmq
from circus.process.testing import wait_until

CAP = 6
FLOOD = 30


def _dealer(context: zmq.Context[Any], endpoint: str) -> zmq.Socket[Any]:
    sock = context.socket(zmq.DEALER)
    sock.linger = 0
    sock.reconnect_ivl = -1  # shed, it stays disconnected: it cannot hide having been shed
    sock.connect(endpoint)
    return sock


def _connected(sock: zmq.Socket[Any]) -> bool:
    return bool(sock.poll(0, zmq.POLLOUT))  # a DEALER without a connection cannot send


@pytest.mark.parametrize("when", ["at start", "after reloadconfig"])
def test_a_flood_is_cut_at_the_cap_and_the_talking_client_is_served(
    circusd: Any, when: str
) -> None:
    option = f"[circus]\nmax_connections = {CAP}\n"
    daemon = circusd(option if when == "at start" else "")
    if when != "at start":
        daemon.write(option)
        assert daemon.call("reloadconfig", timeout=30)["status"] == "ok"
    assert daemon.call("numwatchers")["status"] == "ok"  # the client already talking
    context = zmq.Context()
    try:
        flood = [_dealer(context, daemon.endpoint) for _ in range(FLOOD)]
        wait_until(lambda: "max_connections = 6" in daemon.output(), 30, "the cap named in the log")
        wait_until(
            lambda: sum(map(_connected, flood)) <= CAP,
            30,
            f"at most {CAP} of the {FLOOD} flooding connections kept",
        )
        for _ in range(5):
            assert daemon.call("numwatchers", timeout=10)["status"] == "ok"
    finally:
        context.destroy(linger=0)
    assert "connection cap of 6 reached" in daemon.output()


def test_the_option_is_checked(tmp_path: Path) -> None:
    from circus.arbiter.config import ConfigError, load_config

    ini = tmp_path / "circus.ini"
    for bad in ("0", "-1", "many"):
        ini.write_text(f"[circus]\nmax_connections = {bad}\n")
        with pytest.raises(ConfigError, match="max_connections"):
            load_config(str(ini))
    ini.write_text("[circus]\nmax_connections = 10\n")
    assert load_config(str(ini)).circus.max_connections == 10


def test_the_supervisor_api_keeps_to_the_cap(circusd: Any) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = circusd(
        "[circus]\nmax_connections = 4\n\n"
        "[supervisord]\nnodaemon = true\nlogfile = /dev/stdout\n\n"
        f"[inet_http_server]\nport = 127.0.0.1:{port}\n\n"
        "[rpcinterface:supervisor]\n"
        "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
        "[program:sleep]\ncommand = /bin/sleep 300\n"
    )
    held: list[socket.socket] = []
    try:
        for _ in range(4):  # silent: each holds a slot until its head is due
            held.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        extra = socket.create_connection(("127.0.0.1", port), timeout=10)
        held.append(extra)
        extra.sendall(b"POST /RPC2 HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
        try:
            answer = extra.recv(100)
        except ConnectionResetError:
            answer = b""
        assert answer == b"", "a fifth connection was served past max_connections = 4"
        wait_until(lambda: "[circus] max_connections" in daemon.output(), 30, "the refusal logged")
    finally:
        for sock in held:
            sock.close()
    wait_until(lambda: _served(port), 30, "the API to serve again once they left")


def _served(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        body = b"<?xml version='1.0'?><methodCall><methodName>supervisor.getPID</methodName>"
        body += b"<params></params></methodCall>"
        sock.sendall(
            b"POST /RPC2 HTTP/1.1\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (len(body), body)
        )
        try:
            return sock.recv(100).startswith(b"HTTP/1.1 200")
        except ConnectionResetError:
            return False


def test_the_talking_client_is_served_through_a_reconnecting_flood(circusd: Any) -> None:
    """Shed clients that reconnect at once (ZeroMQ's default) keep the cap busy: the client
    that was already talking is still answered, every time."""
    daemon = circusd(f"[circus]\nmax_connections = {CAP}\n")
    assert daemon.call("numwatchers")["status"] == "ok"
    context = zmq.Context()
    try:
        flood = []
        for _ in range(FLOOD):
            sock = context.socket(zmq.DEALER)
            sock.linger = 0
            sock.reconnect_ivl = 10
            sock.connect(daemon.endpoint)
            flood.append(sock)
        wait_until(lambda: "connection cap of 6 reached" in daemon.output(), 30, "the cap hit")
        answered = sum(daemon.call("numwatchers", timeout=10)["status"] == "ok" for _ in range(20))
        assert answered == 20
    finally:
        context.destroy(linger=0)
