"""Spawning from the small-table thread, and the direct fork/exec it shares with every spawn.

A supervisor with thousands of descriptors forks from a thread whose descriptor table is its
own (``_smalltable``): its children must be exactly what a child forked from the main thread
is (our child, own session, only 0/1/2 open, default signal state, output through our
pipes, exit seen on its pidfd), and the thread itself must hold almost nothing.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
from collections.abc import Callable, Iterator
from types import MappingProxyType
from typing import Any

import pytest
from circus.process import Process, SpawnError, _forkexec, _smalltable, _spawn

SETTABLE = {int(s) for s in signal.valid_signals()}
REPORT = (
    "import os, sys\n"
    "print(os.getppid(), os.getsid(0) == os.getpid(), sorted(os.listdir('/proc/self/fd')))\n"
    "print(open('/proc/self/status').read(), end='')\n"
    "sys.stderr.write('on stderr\\n')\n"
)


@pytest.fixture
def through_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every plain spawn of the test goes through the small-table thread."""
    monkeypatch.setattr(_spawn, "SMALL_TABLE_FROM", 0)
    yield
    _smalltable.shutdown()


def _thread() -> threading.Thread:
    current = _smalltable._spawner
    assert current is not None, "the spawn did not go through the small-table thread"
    return current._thread


def _mask(status: str, key: str) -> set[int]:
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name == key:
            bits = int(value, 16)
            return {n for n in range(1, 65) if bits >> (n - 1) & 1} & SETTABLE
    raise AssertionError(f"no {key} in the child's status")


def test_a_child_of_the_thread_is_ours_alone_in_its_session_with_0_1_2_only(
    spawn: Callable[..., Process], py: str, read_to_eof: Any, through_thread: None
) -> None:
    # An inheritable descriptor of ours must not reach the child (close_fds holds there too).
    leaky_r, leaky_w = os.pipe()
    os.set_inheritable(leaky_w, True)
    try:
        proc = spawn(py, args=["-c", REPORT], exact_tree=False)
        assert proc.stdout is not None and proc.stderr is not None
        out = read_to_eof(proc.stdout).decode()
        assert read_to_eof(proc.stderr) == b"on stderr\n"
        assert proc.wait(30) == 0  # seen through its pidfd, reaped by us
    finally:
        os.close(leaky_r)
        os.close(leaky_w)
    first, status = out.split("\n", 1)
    ppid, own_session, fds = first.split(" ", 2)
    assert int(ppid) == os.getpid()
    assert own_session == "True"
    assert fds == "['0', '1', '2', '3']"  # 3: the listing's own descriptor
    # The thread blocks every signal outside the fork; the child must not inherit that.
    assert _mask(status, "SigBlk") == set()
    # (Python itself ignores SIGPIPE and SIGXFSZ at start-up.)
    assert _mask(status, "SigIgn") - {signal.SIGPIPE, signal.SIGXFSZ} == set()
    assert _thread().is_alive()


def test_the_thread_holds_a_handful_of_descriptors_while_we_hold_hundreds(
    spawn: Callable[..., Process], through_thread: None
) -> None:
    held = [os.pipe() for _ in range(200)]
    try:
        proc = spawn("true", exact_tree=False)
        assert proc.wait(30) == 0
        tid = _thread().native_id
        theirs = os.listdir(f"/proc/self/task/{tid}/fd")
        ours = os.listdir("/proc/self/fd")
    finally:
        for r, w in held:
            os.close(r)
            os.close(w)
    assert len(ours) > 400
    assert len(theirs) <= 8, theirs


def test_an_exec_failure_through_the_thread_is_a_spawn_error_and_leaves_nothing(
    spawn: Callable[..., Process], tmp_path: Any, through_thread: None
) -> None:
    garbage = tmp_path / "not-a-program"
    garbage.write_bytes(b"\x7fELF garbage, not a program")
    garbage.chmod(0o755)
    with pytest.raises(SpawnError) as caught:
        spawn(str(garbage), exact_tree=False)
    assert caught.value.errno == errno.ENOEXEC
    # the thread survives a failed spawn and serves the next one
    proc = spawn("true", exact_tree=False)
    assert proc.wait(30) == 0


def test_stdout_inherited_through_the_thread_is_our_stdout(
    spawn: Callable[..., Process], tmp_path: Any, through_thread: None
) -> None:
    # "inherit" hands the thread our current descriptor 1, not its own copy of an old one.
    target = tmp_path / "out"
    saved = os.dup(1)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.dup2(fd, 1)
        proc = spawn(
            "echo",
            args=["inherited"],
            exact_tree=False,
            pipe_stdout=False,
            close_child_stdout=False,
            close_child_stderr=True,
            pipe_stderr=False,
        )
        assert proc.wait(30) == 0
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(fd)
    assert target.read_text() == "inherited\n"


def test_a_shared_environment_view_is_encoded_again_when_its_dict_changes(
    spawn: Callable[..., Process], read_to_eof: Any
) -> None:
    if not _forkexec.USABLE:
        pytest.skip("the direct fork/exec is not used on this Python")
    values = {"GREETING": "hello", "PATH": os.environ.get("PATH", os.defpath)}
    shared = MappingProxyType(values)
    first = spawn("sh", args=["-c", "echo $GREETING"], env=shared, exact_tree=False)
    assert first.stdout is not None
    assert read_to_eof(first.stdout) == b"hello\n"
    values["GREETING"] = "changed"  # the view is the same object; its content is not
    second = spawn("sh", args=["-c", "echo $GREETING"], env=shared, exact_tree=False)
    assert second.stdout is not None
    assert read_to_eof(second.stdout) == b"changed\n"
    assert first.wait(30) == 0 and second.wait(30) == 0


def test_without_the_thread_and_without_the_direct_path_spawns_still_work(
    spawn: Callable[..., Process], read_to_eof: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Popen fallback (other Python versions) keeps the same child.
    monkeypatch.setattr(_forkexec, "USABLE", False)
    proc = spawn("sh", args=["-c", "echo $X; exit 3"], env={"X": "popen"}, exact_tree=False)
    assert proc.stdout is not None
    assert read_to_eof(proc.stdout) == b"popen\n"
    assert proc.wait(30) == 3


def test_rlimits_and_a_user_switch_hold_through_the_thread(
    spawn: Callable[..., Process], read_to_eof: Any, through_thread: None
) -> None:
    # rlimits need a preexec_fn: a full fork of the process, from the thread.
    proc = spawn(
        "sh",
        args=["-c", "ulimit -n; ulimit -c"],
        rlimits={"nofile": 200, "core": 0},
        exact_tree=False,
    )
    assert proc.stdout is not None
    assert read_to_eof(proc.stdout) == b"200\n0\n"
    assert proc.wait(30) == 0
    if os.geteuid() != 0:
        return
    user = spawn("id", args=["-u"], uid=65534, gid=65534, exact_tree=False)
    assert user.stdout is not None
    assert read_to_eof(user.stdout) == b"65534\n"
    assert user.wait(30) == 0
    _thread()  # both went through it


class _Interrupted(Exception):
    pass


def test_a_signal_handler_raising_during_the_wait_leaves_no_child(
    spawn: Callable[..., Process], monkeypatch: pytest.MonkeyPatch, through_thread: None
) -> None:
    # The child (a full fork: rlimits take a preexec_fn) signals us before it execs, while
    # the thread still waits for that exec and we wait for the thread: the kernel hands a
    # process-directed signal to the main thread, whose handler raises during the wait.
    parent = os.getpid()

    def signalling(*args: Any, **kwargs: Any) -> Callable[[], None]:
        return lambda: os.kill(parent, signal.SIGUSR1)

    def interrupt(signum: int, frame: Any) -> None:
        raise _Interrupted

    monkeypatch.setattr(_spawn, "_rlimit_preexec", signalling)
    previous = signal.signal(signal.SIGUSR1, interrupt)
    try:
        with pytest.raises(_Interrupted):
            spawn("true", rlimits={"core": 0}, exact_tree=False)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    # the child was killed and reaped (the autouse leak check finds none); the thread
    # answered and serves the next spawn
    proc = spawn("true", exact_tree=False)
    assert proc.wait(30) == 0
