"""A child that asked for a parent-death signal and ``set_spawn_thread``.

``prctl(PR_SET_PDEATHSIG)`` (``tini -p``, many Go and Rust programs) fires when the *thread*
that forked the child ends, not when the process does. ``daemon-reexec`` is an ``execve``
by circusd's main thread: every other thread ends, the main thread goes on in the new
image. A child forked by the main thread survives it; one forked by the small-table spawn
thread (``_smalltable``) gets its parent-death signal there. ``set_spawn_thread(None)``
makes every later spawn fork from the calling thread, whatever the descriptors open; the
spawn thread already running is left alone (its children keep running until it ends).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from circus.process import DEFAULT_SPAWN_THREAD_FROM, set_spawn_thread, spawn_thread

# Says its pid, then "alive" at each SIGUSR1, until killed.
CHILD = (
    "import ctypes, os, signal\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, 9)\n"  # PR_SET_PDEATHSIG, SIGKILL
    "signal.signal(signal.SIGUSR1, lambda *_: os.write(1, b'alive\\n'))\n"
    "os.write(1, b'%d\\n' % os.getpid())\n"
    "while True:\n"
    "    signal.pause()\n"
)

# Shared by both images: ask a child whether it lives (a child killed by its parent-death
# signal, queued during the exec, never answers: SIGKILL wins over a later SIGUSR1, and its
# stdout ends).
ASK = (
    "import os, signal\n"
    "def ask(pid, fd):\n"
    "    os.kill(pid, signal.SIGUSR1)\n"
    "    line = b''\n"
    "    while not line.endswith(b'\\n'):\n"
    "        part = os.read(fd, 100)\n"
    "        if not part:\n"
    "            return 'killed'\n"
    "        line += part\n"
    "    return line.decode().strip()\n"
)

NEW_IMAGE = ASK + (
    "import sys\n"
    "kids = [(int(p), int(f)) for p, f in (a.split(':') for a in sys.argv[1:])]\n"
    "try:\n"
    "    print(' '.join(ask(pid, fd) for pid, fd in kids))\n"
    "finally:\n"
    "    for pid, _fd in kids:\n"
    "        try:\n"
    "            os.kill(pid, signal.SIGKILL)\n"
    "        except ProcessLookupError:\n"
    "            pass\n"
    "        os.waitpid(pid, 0)\n"
)

# argv: the child's code, the new image's code, then one threshold per child to spawn
# ("off" = None), set with set_spawn_thread before that child's spawn. Every child must
# answer before the exec; then the image execs, handing the children over.
OLD_IMAGE = ASK + (
    "import sys\n"
    "from circus.process import Process, set_spawn_thread\n"
    "kids, procs = [], []  # the Process objects own the pipes: kept to the exec\n"
    "for threshold in sys.argv[3:]:\n"
    "    set_spawn_thread(None if threshold == 'off' else int(threshold))\n"
    "    proc = Process(cmd=sys.executable, args=['-c', sys.argv[1]], name='t', wid=1,\n"
    "                   exact_tree=False, close_child_stderr=False, pipe_stderr=False)\n"
    "    line = b''\n"
    "    while not line.endswith(b'\\n'):\n"
    "        part = os.read(proc.stdout, 100)\n"
    "        assert part, 'the child ended before saying its pid'\n"
    "        line += part\n"
    "    os.set_inheritable(proc.stdout, True)\n"
    "    procs.append(proc)\n"
    "    kids.append((int(line), proc.stdout))\n"
    "for pid, fd in kids:\n"
    "    assert ask(pid, fd) == 'alive', 'a child died before the exec'\n"
    "os.execv(sys.executable, [sys.executable, '-c', sys.argv[2]] +\n"
    "         ['%d:%d' % kid for kid in kids])\n"
)


def _exec_after_spawns(tmp_path: Path, *thresholds: str) -> list[str]:
    """Spawn one child per threshold, exec the spawning process, and say which of the
    children are still alive in the new image."""
    done = subprocess.run(
        [sys.executable, "-c", OLD_IMAGE, CHILD, NEW_IMAGE, *thresholds],
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode().split()


@pytest.fixture
def threshold_restored() -> Iterator[None]:
    yield
    set_spawn_thread(DEFAULT_SPAWN_THREAD_FROM)


def test_a_child_forked_by_the_main_thread_survives_an_exec_of_its_parent(
    tmp_path: Path,
) -> None:
    assert _exec_after_spawns(tmp_path, str(1 << 30)) == ["alive"]


def test_a_child_forked_by_the_spawn_thread_gets_its_parent_death_signal_at_an_exec(
    tmp_path: Path,
) -> None:
    # what `spawn_thread = auto` costs past its threshold (here 0: every spawn)
    assert _exec_after_spawns(tmp_path, "0") == ["killed"]


def test_with_the_spawn_thread_off_a_child_survives_an_exec_of_its_parent(
    tmp_path: Path,
) -> None:
    # The first child starts the spawn thread; turned off, the second forks from the main
    # thread although past the threshold, and the first outlives the switch (the thread is
    # not stopped) until the exec ends the thread.
    assert _exec_after_spawns(tmp_path, "0", "off") == ["killed", "alive"]


def test_set_spawn_thread_checks_its_argument(threshold_restored: None) -> None:
    assert spawn_thread() == DEFAULT_SPAWN_THREAD_FROM == 4096
    set_spawn_thread(None)
    assert spawn_thread() is None
    set_spawn_thread(0)
    assert spawn_thread() == 0
    for bad, error in ((-1, ValueError), (True, TypeError), ("4096", TypeError), (1.5, TypeError)):
        with pytest.raises(error):
            set_spawn_thread(bad)  # type: ignore[arg-type]
    assert spawn_thread() == 0
