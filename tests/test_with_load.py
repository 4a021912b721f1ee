"""``scripts/with_load.py`` (``make test-loaded``): load while the command runs, none after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
from circus.process.testing import wait_until

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "with_load.py"
MARKER = "circus-synthetic-load"

# the command run under load: which busy-loop siblings it sees, as JSON
SIBLINGS = (
    "import json, os, psutil; "
    "kids = psutil.Process(os.getppid()).children(); "
    f"print(json.dumps([k.pid for k in kids if k.pid != os.getpid() "
    f"and {MARKER!r} in ' '.join(k.cmdline())]))"
)


def _gone(pids: list[int]) -> bool:
    return not any(psutil.pid_exists(p) and _is_load(p) for p in pids)


def _is_load(pid: int) -> bool:
    try:
        proc = psutil.Process(pid)
        return proc.status() != psutil.STATUS_ZOMBIE and MARKER in " ".join(proc.cmdline())
    except psutil.Error:
        return False


def test_load_runs_beside_the_command_and_stops_with_it() -> None:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--procs", "2", "--", sys.executable, "-c"]
        + [SIBLINGS + "; raise SystemExit(3)"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 3, done.stderr  # the command's status
    busy = json.loads(done.stdout)
    assert len(busy) == 2, done
    assert _gone(busy)  # killed and reaped before the script returned


def test_load_ends_when_the_launcher_is_killed() -> None:
    launcher = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--procs", "2", "--", "sleep", "120"],
        stderr=subprocess.DEVNULL,
    )
    command: list[int] = []
    try:

        def started() -> list[int]:
            kids = psutil.Process(launcher.pid).children()
            busy = [k.pid for k in kids if _is_load(k.pid)]
            command[:] = [k.pid for k in kids if k.pid not in busy]
            return busy if len(busy) == 2 and command else []

        busy = wait_until(started, 30, "the load to start")
        launcher.kill()  # no chance to clean up: each load process notices by itself
        launcher.wait()
        wait_until(lambda: _gone(busy), 30, "the load processes to end with their launcher")
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in command:
            try:
                os.kill(pid, signal.SIGKILL)  # the orphaned sleep
            except ProcessLookupError:
                pass
