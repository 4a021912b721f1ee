"""No thread to be had (RLIMIT_NPROC, a cgroup's pids.max: systemd's TasksMax): a spawn
fails as any spawn that cannot fork does, and leaves nothing open.

Starting the small-table spawn thread raised RuntimeError ("can't start new thread") out
of the spawn instead of SpawnError, and left its socket pair open, two descriptors per
attempt (a respawning watcher retries on and on).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import errno, os, resource
from circus.process import Process, SpawnError, _spawn
_spawn.SMALL_TABLE_FROM = 0
os.setgid(65534); os.setgroups([]); os.setuid(65534)  # root is not held by RLIMIT_NPROC
resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new process, no new thread
before = sorted(os.listdir("/proc/self/fd"))
for _ in range(3):
    try:
        Process(cmd="/bin/true", name="t", wid=1, exact_tree=False)
        print("spawned")
    except SpawnError as exc:
        print("SpawnError", errno.errorcode.get(exc.errno))
    except BaseException as exc:
        print("other", type(exc).__name__, exc)
print("fds", "same" if sorted(os.listdir("/proc/self/fd")) == before else "leaked")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_no_thread_to_be_had_is_a_spawn_error_and_leaks_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == ["SpawnError EAGAIN"] * 3 + ["fds same"]
