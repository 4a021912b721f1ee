"""Fixtures for circus-ctl's own tests: a fake daemon on a real ROUTER socket, a real PUB.

These tests need only pyzmq: the "daemon" is :class:`circus.ctl.testing.FakeDaemon`, which
answers canned replies shaped like Circus 0.19's (spec/protocol.md §6).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from circus.ctl.testing import FakeDaemon, Publisher

PID_INFO = {
    "mem_info1": "1.52M",
    "mem_info2": "2.44M",
    "cpu": 0.0,
    "mem": 0.006,
    "ctime": "0:00.0",
    "pid": 7692,
    "username": "root",
    "nice": 0,
    "create_time": 1795660568.21,
    "age": 9.4,
    "cmdline": "sleep",
    "children": [],
    "started": 1795660568.7,
    "wid": 1,
}
SH_INFO = {
    **PID_INFO,
    "pid": 7690,
    "cmdline": "sh",
    "mem_info1": "1.65M",
    "mem_info2": "2.53M",
    "mem": 0.007,
    "children": [{**PID_INFO, "pid": 7750, "mem_info1": "1.50M", "children": []}],
}

CANNED: dict[str, Any] = {
    "list": lambda r: (
        {"pids": [7692, 7693]}
        if r["properties"].get("name")
        else {"watchers": ["circusd-stats", "echoer", "sleeper"]}
    ),
    "status": lambda r: (
        {"status": "active"}
        if r["properties"].get("name")
        else {"statuses": {"sleeper": "active", "echoer": "stopped", "circusd-stats": "active"}}
    ),
    "numwatchers": {"numwatchers": 3},
    "numprocesses": {"numprocesses": 4},
    "globaloptions": {
        "options": {
            "endpoint": "ipc:///x/ctrl.sock",
            "stats_endpoint": "ipc:///x/stats.sock",
            "pubsub_endpoint": "ipc:///x/pub.sock",
            "check_delay": 1.0,
            "multicast_endpoint": "",
        }
    },
    "options": {
        "options": {
            "numprocesses": 2,
            "cmd": "sleep 1000",
            "env": {"B": "2", "A": "1"},
            "uid": None,
            "shell": False,
            "stdout_stream_conf": {},
            "__name__": "watcher:sleeper",
        }
    },
    "get": {"options": {"numprocesses": 2, "cmd": "sleep 1000"}},
    "listsockets": {
        "sockets": [
            {"fd": 6, "name": "web", "backlog": 2048, "host": "127.0.0.1", "port": 44179},
            {"fd": 7, "name": "unix", "backlog": 2048, "path": "/tmp/x.sock"},
        ]
    },
    "dstats": {"info": {**PID_INFO, "pid": 7686, "cmdline": "python", "mem_info1": "33.61M"}},
    "stats": lambda r: (
        {"process": r["properties"]["process"], "info": SH_INFO}
        if "process" in r["properties"]
        else {"name": r["properties"]["name"], "info": {"7692": PID_INFO}}
        if "name" in r["properties"]
        else {"infos": {"echoer": {"7690": SH_INFO}, "sleeper": {"7692": PID_INFO}}}
    ),
    "incr": lambda r: {"numprocesses": 5} if r["properties"].get("waiting") else {},
    "decr": lambda r: {"numprocesses": 3} if r["properties"].get("waiting") else {},
    **{
        name: {}
        for name in (
            *("start", "stop", "restart", "reload", "reloadconfig", "quit"),
            *("add", "rm", "set", "signal", "kill"),
        )
    },
}


@pytest.fixture
def ipc(tmp_path: Path) -> Callable[[str], str]:
    """Return a function giving an ipc:// endpoint for a socket name inside tmp_path."""
    return lambda name: f"ipc://{tmp_path / name}"


@pytest.fixture
def fake_daemon(ipc: Callable[[str], str]) -> Iterator[Callable[..., FakeDaemon]]:
    """Start fake daemons: ``fake_daemon(replies=None)`` (default: the CANNED replies)."""
    started: list[FakeDaemon] = []

    def start(replies: Mapping[str, Any] | None = None, name: str = "ctrl.sock") -> FakeDaemon:
        daemon = FakeDaemon(ipc(name), CANNED if replies is None else replies)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.close()


@pytest.fixture
def daemon(fake_daemon: Callable[..., FakeDaemon]) -> FakeDaemon:
    """A fake daemon answering the CANNED replies."""
    return fake_daemon()


@pytest.fixture
def publisher(ipc: Callable[[str], str]) -> Iterator[Publisher]:
    """A real PUB socket bound on an ipc endpoint in tmp_path."""
    with Publisher(ipc("pub.sock")) as pub:
        yield pub


@pytest.fixture
def ctl(daemon: FakeDaemon, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    """Run circusctl in-process against ``daemon``: ``ctl("status")`` -> (rc, out, err)."""
    from circus.ctl.cli import main

    def run(*args: str, endpoint: str | None = None) -> tuple[int, str, str]:
        capsys.readouterr()
        rc = main(["--endpoint", endpoint or daemon.endpoint, "--timeout", "3", *args])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


@pytest.fixture
def ctl_process() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start circusctl as a real process (``python -m circus.ctl.cli ARGS``), reaped at teardown."""
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, stdin: int | None = None, env: Mapping[str, str] | None = None):
        proc = subprocess.Popen(
            [sys.executable, "-m", "circus.ctl.cli", *args],
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None and not proc.stdout.closed:
            proc.communicate(timeout=10)
        proc.wait(10)
