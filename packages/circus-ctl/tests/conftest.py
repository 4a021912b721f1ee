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
from circus.ctl.testing import CANNED_REPLIES as CANNED
from circus.ctl.testing import FakeDaemon, Publisher
from circus.process.testing import leak_check_fixture

# No test leaves a child process or a descriptor behind (DEVELOPERS.md, test rules).
no_leaks = leak_check_fixture()


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
