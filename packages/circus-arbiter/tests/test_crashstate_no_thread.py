"""No thread to be had (RLIMIT_NPROC, a cgroup's pids.max: systemd's TasksMax) must not stop
the crash state from being written: that is when circusd runs the most processes, and the
file is what finds them again after circusd is killed. The store then runs on the loop."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import asyncio, json, os, resource, sys
import encodings.ascii  # what is imported lazily: root's interpreter, not nobody's to read
from circus.arbiter._crashstate import CrashState
entry = json.dumps({"pid": 42, "wid": 1, "start_time": 7, "started": 1.5})
crash = CrashState(".", "k", lambda: {"web": ("cmd", [entry])})
os.setgid(65534); os.setgroups([]); os.setuid(65534)  # root is not held by RLIMIT_NPROC
resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new thread
assert crash.acquire()

async def main():
    crash.changed()
    for _ in range(1000):  # up to 10 s
        if os.path.exists(crash.path):
            return "written"
        await asyncio.sleep(0.01)
    return "not written"

print(asyncio.run(main()))
crash.close()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_the_crash_state_is_written_when_no_thread_can_start(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir(mode=0o700)
    os.chown(rundir, 65534, 65534)
    # run in it: nobody reaches its working directory without searching root's tmp dirs
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, timeout=60, cwd=rundir
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().split() == ["written"], done.stderr.decode()
