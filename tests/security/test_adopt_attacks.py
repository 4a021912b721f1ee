"""Crash recovery attacked by an adopted worker running as nobody.

After a crash, circusd opens a new read end of each adopted worker's output pipe through
``/proc/<pid>/fd/1`` (``circus.process.reopen_pipe``), checked against the pipe's inode.
The worker controls its descriptor 1 and may swap it, between the check and the open, for
the slave of a pty of its own. circusd under systemd is a session leader without a
terminal: an open without ``O_NOCTTY`` would make that pty circusd's controlling terminal,
and the worker, holding the master, could then stop (^Z), interrupt (^C) or hang up
circusd at will. Nothing the worker swaps in may be taken as a terminal, however it races.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root daemon, a nobody worker)"),
]

NOBODY = 65534

# The worker: its stdout is the daemon's pipe; it flips descriptor 1 between that pipe and
# the slave of a pty it opened, as fast as it can.
FLIPPER = r"""
import os
master, slave = os.openpty()
pipe = os.dup(1)
os.write(2, b"flipping\n")
while True:
    os.dup2(slave, 1)
    os.dup2(pipe, 1)
"""

# The daemon's side: a session leader without a terminal, re-opening the worker's pipe the
# way crash recovery does, many times; then whether it got a controlling terminal.
RECOVERY = r"""
import os, sys, time
from circus.process import reopen_pipe
pid, inode = int(sys.argv[1]), int(sys.argv[2])
os.setsid()
opened = tries = 0
deadline = time.monotonic() + 10
while tries < 20000 and time.monotonic() < deadline:
    tries += 1
    fd = reopen_pipe(pid, 1, inode)
    if fd is not None:
        opened += 1
        os.close(fd)
try:
    os.close(os.open("/dev/tty", os.O_RDONLY | os.O_NOCTTY))
    print("terminal", tries, opened)
except OSError:
    print("none", tries, opened)
"""


def _system_python() -> str:
    py = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    if not os.access(py, os.X_OK):
        py = "/usr/bin/python3"
    if not os.access(py, os.X_OK):
        pytest.skip("no system python for the nobody worker")
    return py


def test_a_worker_cannot_give_circusd_a_controlling_terminal(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    inode = os.fstat(read_end).st_ino
    try:
        with subprocess.Popen(
            [_system_python(), "-c", FLIPPER],
            stdout=write_end,
            stderr=subprocess.PIPE,
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            cwd="/",
        ) as worker:
            os.close(write_end)
            write_end = -1
            try:
                assert worker.stderr is not None
                assert worker.stderr.readline() == b"flipping\n"
                done = subprocess.run(
                    [sys.executable, "-c", RECOVERY, str(worker.pid), str(inode)],
                    capture_output=True,
                    text=True,
                    stdin=subprocess.DEVNULL,
                    timeout=60,
                )
            finally:
                worker.kill()
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
    verdict, tries, opened = done.stdout.split()
    assert int(opened) > 0, f"the pipe was never re-opened in {tries} tries: {done.stderr}"
    assert verdict == "none", (
        f"the worker's pty became the recovering daemon's controlling terminal "
        f"({tries} tries, {opened} pipes re-opened)"
    )
