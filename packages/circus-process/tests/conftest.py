"""Fixtures for circus-process tests: a spawner that always stops and reaps what it started."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from circus.process import Process
from circus.process.testing import leak_check_fixture

# No test leaves a child process or a descriptor behind (DEVELOPERS.md, test rules).
no_leaks = leak_check_fixture()

PY = sys.executable


@pytest.fixture
def py() -> str:
    """The interpreter running the tests (children run Python snippets with it)."""
    return PY


@pytest.fixture
def spawn() -> Iterator[Callable[..., Process]]:
    """Spawn a Process; every one is stopped (SIGKILL after 2 s), reaped and closed at teardown."""
    started: list[Process] = []

    def factory(cmd: str, *args: Any, **kwargs: Any) -> Process:
        kwargs.setdefault("name", "test")
        kwargs.setdefault("wid", 1)
        proc = Process(cmd=cmd, *args, **kwargs)  # noqa: B026
        started.append(proc)
        return proc

    yield factory
    for proc in started:
        if proc.pid is not None and proc.returncode is None:
            proc.stop(graceful_timeout=2.0, stop_children=True)
        proc.close()


@pytest.fixture
def pysnippet(spawn: Callable[..., Process]) -> Callable[..., Process]:
    """Spawn ``python -c CODE`` (a list argv, so no shell quoting games)."""

    def factory(code: str, **kwargs: Any) -> Process:
        return spawn(PY, args=["-c", code], **kwargs)

    return factory


def read_all(fd: int) -> bytes:
    """Read a blocking pipe fd to EOF."""
    chunks = []
    while True:
        data = os.read(fd, 65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


@pytest.fixture
def read_to_eof() -> Callable[[int], bytes]:
    """Read a blocking pipe to EOF."""
    return read_all
