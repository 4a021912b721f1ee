"""Interop fixtures: upstream Circus 0.19 in its own venv (never in the project's .venv).

``upstream_circus`` (session) builds the venv once under ``.cache/upstream-circus`` (a file
lock makes xdist workers share one build) and skips with the reason when PyPI or uv is
unavailable. ``upstream_daemon`` runs upstream's circusd on ipc endpoints in tmp_path.
The building code lives in :mod:`circus.ctl.testing.upstream` so other layers can reuse it.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.ctl.testing.upstream import (
    UpstreamCircus,
    UpstreamDaemon,
    UpstreamUnavailable,
    ensure_upstream,
)
from circus.process.testing import wait_until

SLEEPER = {"cmd": "sleep 1000", "numprocesses": 2, "graceful_timeout": 2}


@pytest.fixture(scope="session")
def upstream_circus() -> UpstreamCircus:
    """Upstream Circus 0.19's venv (built on first use); skips if it cannot be built."""
    try:
        return ensure_upstream()
    except UpstreamUnavailable as exc:
        pytest.skip(f"upstream Circus 0.19 unavailable: {exc}")


@pytest.fixture
def upstream_daemon(upstream_circus: UpstreamCircus, tmp_path: Path) -> Iterator[UpstreamDaemon]:
    """Upstream circusd with a ``sleeper`` watcher (2 x sleep) and a TCP socket ``web``."""
    sockets = {"web": {"host": "127.0.0.1", "port": 0}}
    with UpstreamDaemon(
        upstream_circus, tmp_path / "d", {"sleeper": SLEEPER}, sockets=sockets
    ) as daemon:
        yield daemon


@pytest.fixture
def our_ctl() -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run OUR circusctl (``python -m circus.ctl.cli``) as a process; returns the result."""

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "circus.ctl.cli", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    return run


@pytest.fixture
def poll() -> Callable[..., Any]:
    """:func:`circus.process.testing.wait_until` (predicate, timeout, message) as a fixture."""
    return wait_until
