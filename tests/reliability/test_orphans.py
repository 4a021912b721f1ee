"""Regression: an orphan adopted by circusd is reaped when it exits, even on a quiet daemon.

Before the fix, the zombie stayed until some watcher process happened to be reaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psutil

DOUBLE_FORK = """
import os, sys, time
if os.fork() == 0:
    if os.fork() == 0:
        open(sys.argv[1], "w").write(str(os.getpid()))
        time.sleep(0.3)
        os._exit(0)
    os._exit(0)
os.wait()
time.sleep(300)
"""


def test_adopted_orphan_is_reaped_on_exit(tmp_path: Path, circusd: Any, e2e: Any) -> None:
    script = tmp_path / "forker.py"
    script.write_text(DOUBLE_FORK)
    marker = tmp_path / "grandchild.pid"
    daemon = circusd(f"[watcher:w]\ncmd = {e2e.PY} {script} {marker}\n")
    e2e.wait(lambda: marker.exists() and marker.read_text(), 15, "the grandchild")
    grandchild = int(marker.read_text())
    assert daemon.proc is not None

    def gone() -> bool:
        try:
            proc = psutil.Process(grandchild)
            # re-parented to circusd (the subreaper) while it runs
            assert proc.ppid() == daemon.proc.pid or proc.status() != psutil.STATUS_ZOMBIE
            return False
        except psutil.NoSuchProcess:
            return True

    e2e.wait(gone, 10, "the adopted orphan to be reaped (not left a zombie)")
    zombies = [p.pid for p in psutil.Process(daemon.proc.pid).children() if p.status() == "zombie"]
    assert not zombies
    # the watcher's own process was not disturbed
    assert len(daemon.pids("w")) == 1
