"""``Process.spawn_many``: a batch of children in one go, through the small-table thread in
one hand-over once the table is large, each child exactly what ``spawn`` makes, and each
failure (bad program, out of descriptors, no thread) its own: the rest are started, nothing
is left open."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.process import Process, SpawnError, _fdlimit, _smalltable, _spawn

REPORT = "import os, sys; print(sys.argv[1], os.getpid(), sorted(os.listdir('/proc/self/fd')))"


@pytest.fixture
def through_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every batch of the test goes through the small-table thread."""
    monkeypatch.setattr(_spawn, "SMALL_TABLE_FROM", 0)
    yield
    _smalltable.shutdown()


@pytest.fixture
def batch() -> Iterator[Callable[..., list[Process]]]:
    """Make unspawned Processes; each one spawned is killed, reaped and closed at teardown."""
    made: list[Process] = []

    def factory(commands: list[tuple[str, list[str]]], **kwargs: Any) -> list[Process]:
        procs = [
            Process("t", wid, cmd, args=args, spawn=False, exact_tree=False, **kwargs)
            for wid, (cmd, args) in enumerate(commands, 1)
        ]
        made.extend(procs)
        return procs

    yield factory
    for proc in made:
        if proc.pid is not None and proc.returncode is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
        proc.close()


def test_a_batch_through_the_thread_gives_each_child_its_own_pipes(
    batch: Any, py: str, read_to_eof: Any, through_thread: None
) -> None:
    procs = batch([(py, ["-c", REPORT, f"child-{i}"]) for i in range(12)])
    assert Process.spawn_many(procs) == [None] * 12
    assert _smalltable._spawner is not None, "the batch did not go through the thread"
    for i, proc in enumerate(procs):
        assert proc.stdout is not None and proc.pidfd is not None
        name, pid, fds = read_to_eof(proc.stdout).decode().split(" ", 2)
        assert (name, int(pid)) == (f"child-{i}", proc.pid)  # its own command and pipe
        assert fds.strip() == "['0', '1', '2', '3']"  # 0/1/2 and the listing's own
        assert proc.wait(10) == 0


def test_a_child_that_cannot_exec_mid_batch_fails_alone(
    batch: Any, py: str, tmp_path: Path, through_thread: None
) -> None:
    garbage = tmp_path / "not-a-program"
    garbage.write_bytes(b"\x7fELF\x00\x00garbage")  # executable bit, no valid format
    garbage.chmod(0o755)
    procs = batch(
        [
            ("sleep", ["300"]),
            (str(garbage), []),  # fails in the child: ENOEXEC through the error pipe
            (str(tmp_path / "missing"), []),  # fails before any fork
            ("sleep", ["300"]),
        ]
    )
    errors = Process.spawn_many(procs)
    assert errors[0] is None and errors[3] is None
    assert isinstance(errors[1], SpawnError) and errors[1].errno == errno.ENOEXEC
    assert isinstance(errors[2], SpawnError)
    for proc in (procs[1], procs[2]):
        assert proc.pid is None and proc.stdout is None and proc.stderr is None
    for proc in (procs[0], procs[3]):
        assert proc.returncode is None and proc.is_alive()


@pytest.mark.parametrize("threaded", [True, False], ids=["thread", "caller"])
def test_out_of_descriptors_mid_batch_starts_what_fits_and_leaks_nothing(
    batch: Any, monkeypatch: pytest.MonkeyPatch, threaded: bool
) -> None:
    if threaded:
        monkeypatch.setattr(_spawn, "SMALL_TABLE_FROM", 0)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_now = len(os.listdir("/proc/self/fd"))
    procs = batch([("sleep", ["300"])] * 40)
    try:
        # room for a few children (3 descriptors kept each) above a reserve of 8
        resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 8 + 3 * 5, hard))
        _fdlimit.set_fd_reserve(8)
        errors = Process.spawn_many(procs)
    finally:
        _fdlimit.set_fd_reserve(0)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        _smalltable.shutdown()
    started = [p for p, e in zip(procs, errors, strict=True) if e is None]
    failed = [e for e in errors if e is not None]
    assert 1 <= len(started) <= 6, errors
    assert failed and all(e.errno in (errno.EMFILE, errno.ENFILE) for e in failed), failed
    assert all(p.is_alive() for p in started)
    assert all(p.pid is None and p.stdout is None for p, e in zip(procs, errors, strict=True) if e)


def test_a_signal_handler_raising_during_a_batch_leaves_no_child(
    batch: Any, through_thread: None
) -> None:
    class Interrupted(Exception):
        pass

    raised: list[int] = []

    def handler(signum: int, frame: Any) -> None:
        # Once, while the batch is in the thread's hands (elsewhere a raise between a
        # pipe's creation and its bookkeeping loses it, in any Python code).
        while frame is not None and not raised:
            if frame.f_code is _smalltable.SmallTable._wait.__code__:
                raised.append(signum)
                raise Interrupted
            frame = frame.f_back

    made: list[Process] = []
    assert _smalltable.spawner() is not None  # its socket pair is open before we look
    previous = signal.signal(signal.SIGALRM, handler)
    before = set(os.listdir("/proc/self/fd"))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.001, 0.001)  # again and again, till one lands
        with pytest.raises(Interrupted):
            for _ in range(200):
                procs = batch([("sleep", ["300"])] * 30)
                made.extend(procs)
                Process.spawn_many(procs)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    held = {str(fd) for p in made for fd in (p.stdout, p.stderr, p.pidfd) if fd is not None}
    assert set(os.listdir("/proc/self/fd")) <= before | held
    kids = {
        int(pid)
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    }
    spawned = {p.pid for p in made if p.pid is not None}
    assert kids <= spawned  # every child of the interrupted batch was killed and reaped
    assert len(spawned) % 30 == 0  # whole batches only


SCRIPT = """
import errno, os, resource
from circus.process import Process, SpawnError, _spawn
_spawn.SMALL_TABLE_FROM = 0
os.setgid(65534); os.setgroups([]); os.setuid(65534)  # root is not held by RLIMIT_NPROC
resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))  # no new process, no new thread
before = sorted(os.listdir("/proc/self/fd"))
procs = [Process("t", i, "/bin/true", spawn=False, exact_tree=False) for i in range(5)]
errors = Process.spawn_many(procs)
print(sorted({errno.errorcode.get(e.errno) if e else "started" for e in errors}))
print("fds", "same" if sorted(os.listdir("/proc/self/fd")) == before else "leaked")
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become nobody")
def test_no_thread_and_no_process_to_be_had_fails_each_and_leaks_nothing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == ["['EAGAIN']", "fds same"]
