"""A supervisord.conf run by circusd keeps Supervisor's XML-RPC API across daemon-reexec."""

from __future__ import annotations

import http.client
import socket
import xmlrpc.client
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import wait_until


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self._connection[0] != host:
            self._connection = host, _UnixConnection(self.path)  # closed by close()
        return self._connection[1]


def _state(path: Path) -> Any:
    with xmlrpc.client.ServerProxy("http://localhost/RPC2", _UnixTransport(str(path))) as proxy:
        try:
            return proxy.supervisor.getState()["statename"], [
                (info["name"], info["pid"]) for info in proxy.supervisor.getAllProcessInfo()
            ]
        except OSError:
            return None


@pytest.mark.slow
def test_the_xmlrpc_api_is_served_again_by_the_new_image(circusd: Any, tmp_path: Path) -> None:
    sock = tmp_path / "supervisor.sock"
    daemon = circusd(
        f"""
[supervisord]
nodaemon = true

[unix_http_server]
file = {sock}

[program:sleeper]
command = sleep 600
startsecs = 0
"""
    )
    before = wait_until(lambda: (s := _state(sock)) and s[1][0][1] and s, 30, "the API")
    assert before[0] == "RUNNING"

    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    wait_until(lambda: "generation 1 serving" in daemon.output(), 60, "the new image serving")
    after = wait_until(lambda: _state(sock), 30, "the API again")
    assert after == before  # same process, same pid, served by the new image
