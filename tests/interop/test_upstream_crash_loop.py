"""Upstream Circus 0.19's circusctl reads OUR status answer for a crash-looping watcher: the
state word it prints is ``crash-looping``, in its own ``name: state`` lines."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from circus.process.testing import wait_until

pytestmark = pytest.mark.interop

CONFIG = f"""
[watcher:crasher]
cmd = {sys.executable} -c 'raise SystemExit(3)'
graceful_timeout = 2
backoff_max = 1

[watcher:fine]
cmd = {sys.executable} -c 'import time; time.sleep(300)'
graceful_timeout = 2
"""


def test_upstream_circusctl_prints_crash_looping(upstream_circus: Any, circusd: Any) -> None:
    daemon = circusd(CONFIG)
    wait_until(
        lambda: daemon.call("status", name="crasher")["status"] == "crash-looping",
        60,
        "the crasher to be crash-looping",
    )
    argv = [str(upstream_circus.circusctl), "--endpoint", daemon.endpoint, "--timeout", "10"]

    def run(*args: str) -> str:
        done = subprocess.run([*argv, *args], capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stderr) == (0, ""), done
        return done.stdout.strip()

    assert run("status").splitlines() == ["crasher: crash-looping", "fine: active"]
    assert run("status", "crasher") == "crash-looping"
    assert run("status", "fine") == "active"
