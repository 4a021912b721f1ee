"""circushttpd as a real process: on a port of its own, and on a socket handed down by fd
(as circusd does with ``httpd = True``)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="the dashboard needs the web extra")
pytest.importorskip("prometheus_client", reason="the dashboard needs the web extra")

from circus.ctl.testing import FakeDaemon  # noqa: E402
from circus.ctl.web.testing import Circushttpd  # noqa: E402
from circus.process.testing import wait_until  # noqa: E402

REPLIES: dict[str, Any] = {
    "status": {"statuses": {"web": "active"}},
    "stats": {"infos": {"web": {"7": {"pid": 7, "wid": 1, "cpu": 1.0, "mem_info1": "1M"}}}},
    "dstats": {"info": {"pid": 1}},
    "globaloptions": {"options": {"pubsub_endpoint": None}},
}


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def wait_connected(base: str) -> dict[str, Any]:
    def connected() -> dict[str, Any] | None:
        state: dict[str, Any] = get_json(base + "api/state")["daemons"][0]
        return state if state["connected"] else None

    return wait_until(connected, 15, "the dashboard to reach the daemon")


def test_circushttpd_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/ctrl.sock"
    with FakeDaemon(endpoint, REPLIES):
        httpd = Circushttpd("--endpoint", endpoint, "--interval", "0.2")
        try:
            assert httpd.url.startswith("http://127.0.0.1:")
            state = wait_connected(httpd.url)
            assert state["watchers"][0]["processes"][0]["pid"] == 7
        finally:
            assert httpd.close() == 0, httpd.stderr()


def test_circushttpd_serves_on_an_inherited_listening_socket(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/ctrl.sock"
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    proc = subprocess.Popen(
        [sys.executable, "-m", "circus.ctl.web", "--fd", str(fd), "--endpoint", endpoint],
        pass_fds=[fd],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    listener.close()  # the child owns it now
    try:
        with FakeDaemon(endpoint, REPLIES):
            state = wait_connected(f"http://127.0.0.1:{port}/")
            assert state["endpoint"] == endpoint
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


def test_help_lists_every_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "circus.ctl.web", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    options = ("--endpoint", "--pubsub", "--host", "--port", "--fd", "--token-file")
    for option in (*options, "--curve-key", "--curve-server-key"):
        assert option in result.stdout
