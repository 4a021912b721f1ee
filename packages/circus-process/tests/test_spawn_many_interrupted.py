"""``Process.spawn_many`` / ``launch_many`` at their edges: out of descriptors for the batch's
``/dev/null``, and an exception (a signal handler's) raised after the children are forked
but before each is handed to its Process: every child of the batch is killed and reaped,
nothing stays open, and a failure is each process's own SpawnError."""

from __future__ import annotations

import errno
import os
import resource
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from circus.process import Process, SpawnError, _fdlimit, _spawn


class Interrupted(Exception):
    """What a signal handler raises."""


def _children() -> set[int]:
    return {
        int(pid)
        for task in Path("/proc/self/task").iterdir()
        for pid in (task / "children").read_text().split()
    }


def _fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def made() -> Iterator[list[Process]]:
    procs: list[Process] = []
    yield procs
    for proc in procs:
        if proc.pid is not None and proc.returncode is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            else:
                proc.wait(10)
        proc.close()


def _raise_once_in(code: Any, ready: Callable[[FrameType], bool]) -> Callable[..., Any]:
    """A trace function raising Interrupted once, at the first line of ``code`` run when
    ``ready(frame)`` holds (a signal handler's exception at that point)."""
    fired: list[bool] = []

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line" and not fired and ready(frame):
            fired.append(True)
            raise Interrupted
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local if frame.f_code is code else None

    return tracer


def _interrupt(code: Any, ready: Callable[[FrameType], bool], call: Callable[[], Any]) -> None:
    previous = sys.gettrace()
    sys.settrace(_raise_once_in(code, ready))
    try:
        with pytest.raises(Interrupted):
            call()
    finally:
        sys.settrace(previous)


def test_launch_many_interrupted_while_reporting_kills_every_child(made: list[Process]) -> None:
    procs = [
        Process("t", i, "sleep", args=["300"], spawn=False, exact_tree=False) for i in range(4)
    ]
    made.extend(procs)
    plans = [p._plan() for p in procs]
    kids, fds = _children(), _fds()

    def one_reported(frame: FrameType) -> bool:
        results = frame.f_locals.get("results") or []
        return any(isinstance(r, _spawn.Launched) for r in results)

    _interrupt(_spawn.launch_many.__code__, one_reported, lambda: _spawn.launch_many(plans))
    assert _children() <= kids, "a child of the interrupted batch was left running"
    assert _fds() <= fds


def test_spawn_many_interrupted_while_adopting_kills_every_child(made: list[Process]) -> None:
    procs = [
        Process("t", i, "sleep", args=["300"], spawn=False, exact_tree=False) for i in range(4)
    ]
    made.extend(procs)
    kids, fds = _children(), _fds()

    def one_adopted(frame: FrameType) -> bool:
        return "results" in frame.f_locals and procs[0].pid is not None

    _interrupt(Process.spawn_many.__code__, one_adopted, lambda: Process.spawn_many(procs))
    assert _children() <= kids, "a child of the interrupted batch was left running"
    assert _fds() <= fds


def test_no_descriptor_for_dev_null_fails_each_process_not_the_call(made: list[Process]) -> None:
    procs = [Process("t", i, "/bin/true", spawn=False, exact_tree=False) for i in range(2)]
    made.extend(procs)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    filler: list[int] = []
    fds = _fds()
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(fds) + 64, hard))
        _fdlimit.set_fd_reserve(0)
        try:
            while True:
                filler.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        except OSError as exc:
            assert exc.errno == errno.EMFILE
        # room for both children's pipes (four ends each), none for /dev/null
        for fd in filler[-8:]:
            os.close(fd)
        del filler[-8:]
        errors = Process.spawn_many(procs)
    finally:
        for fd in filler:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert all(isinstance(e, SpawnError) and e.errno == errno.EMFILE for e in errors), errors
    assert all(p.pid is None and p.stdout is None for p in procs)
    assert _fds() <= fds


HAND_OVER = """
import os, socket, sys
from pathlib import Path
from circus.process import Process, _spawn
_spawn.SMALL_TABLE_FROM = 0  # every batch through the spawn thread

class Interrupted(Exception):
    pass

fired = []
def tracer(frame, event, arg):
    if frame.f_code is socket.send_fds.__code__ and not fired:  # before its sendmsg
        fired.append(True)
        raise Interrupted
    return None

procs = [Process("t", i, "sleep", args=["300"], spawn=False, exact_tree=False) for i in range(3)]
sys.settrace(tracer)
try:
    Process.spawn_many(procs)
except Interrupted:
    pass
sys.settrace(None)
kids = [p for t in Path("/proc/self/task").iterdir() for p in (t / "children").read_text().split()]
print("interrupted" if fired else "not interrupted", "children", len(kids))
again = [Process("t", 9, "/bin/true", spawn=False, exact_tree=False)]
print(Process.spawn_many(again), again[0].wait(30))
"""


def test_an_exception_before_the_hand_over_is_sent_does_not_hang() -> None:
    # An exception raised after the request's answer was cleared but before it was sent:
    # waiting for an answer to a request the thread never got would hang for ever.
    done = subprocess.run([sys.executable, "-c", HAND_OVER], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == ["interrupted children 0", "[None] 0"]
