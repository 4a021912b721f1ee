"""``start``, ``incr`` and ``restart`` with ``--waiting`` answer once the processes they started
are ready (readiness = notify), or with an error naming those that are not and why."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CIRCUSCTL = str(Path(sys.executable).with_name("circusctl"))

pytestmark = pytest.mark.slow


def _ctl(daemon: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CIRCUSCTL, "--endpoint", daemon.endpoint, *args],
        capture_output=True,
        text=True,
        timeout=90,
    )


def _health(daemon: Any) -> dict[int, str]:
    answer = json.loads(_ctl(daemon, "--json", "status", "web").stdout)
    return {int(pid): row["health"] for pid, row in answer.get("health", {}).items()}


def test_waiting_answers_once_ready_or_names_who_is_not(circusd: Any) -> None:
    daemon = circusd(start=False)
    shutil.copy(ROOT / "examples" / "rolling" / "app.py", daemon.dir / "app.py")
    daemon.write(
        "[socket:web]\nhost = 127.0.0.1\nport = 0\n"
        f"[watcher:web]\ncmd = {sys.executable} app.py $(circus.sockets.web)\n"
        f"working_dir = {daemon.dir}\nuse_sockets = true\nnumprocesses = 2\n"
        "autostart = false\nreadiness = notify\nreadiness_timeout = 3\ngraceful_timeout = 5\n"
        "[env:web]\nAPP_WARMUP = 1\n"
    )
    daemon.start()
    done = _ctl(daemon, "start", "web", "--waiting")
    assert done.returncode == 0, done.stderr
    assert set(_health(daemon).values()) == {"ready"}

    before = set(daemon.pids("web"))
    done = _ctl(daemon, "incr", "web", "2", "--waiting")
    assert (done.returncode, done.stdout.strip()) == (0, "4"), done.stderr
    health = _health(daemon)
    assert len(health) == 4 and set(health.values()) == {"ready"}, health
    assert len(set(health) - before) == 2

    (daemon.dir / "version").write_text("broken\n")
    done = _ctl(daemon, "restart", "web", "--waiting")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "4 process(es) not ready" in done.stderr, done.stderr
    assert done.stderr.count("not ready after 3 s") == 4, done.stderr
