"""Upstream Circus 0.19's circusctl shows our "did you mean" and still exits 3 on it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

pytestmark = pytest.mark.interop

SLEEP = shutil.which("sleep") or "/bin/sleep"


def test_upstream_circusctl_prints_the_suggestion(upstream_circus, circusd) -> None:
    daemon = circusd(f"[watcher:worker]\ncmd = {SLEEP} 1000\ngraceful_timeout = 2\n")
    done = subprocess.run(
        [str(upstream_circus.circusctl), "--endpoint", daemon.endpoint, "--timeout", "10"]
        + ["stop", "wroker"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done
    assert "program wroker not found (did you mean worker?)" in done.stdout + done.stderr
    assert daemon.call("status", name="worker")["status"] == "active"
