"""Stopping: stop signal, graceful timeout, SIGKILL escalation, whole-tree stop, no zombie."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import psutil
import pytest
from circus.process import (
    Process,
    adopted_orphans,
    disable_subreaper,
    enable_subreaper,
    is_subreaper,
    reap_orphans,
)
from circus.process.testing import wait_until

READY_ON_TERM = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: sys.exit(5))\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)"
)
IGNORES_TERM = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)"
)


def first_line(fd: int) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        assert chunk, f"EOF before a full line: {buf!r}"
        buf += chunk
    return buf.decode()


def gone_or_reaped(pid: int) -> bool:
    """True when ``pid`` no longer exists (a zombie still exists: it counts as a failure)."""
    try:
        return psutil.Process(pid).status() == "never"
    except psutil.NoSuchProcess:
        return True


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Make the test process a child subreaper for one test, and reap what it adopted."""
    was = is_subreaper()
    enable_subreaper()
    try:
        yield
    finally:
        reap_orphans()
        if not was:
            disable_subreaper()


def test_graceful_stop_lets_the_child_exit(pysnippet) -> None:
    proc = pysnippet(READY_ON_TERM)
    assert first_line(proc.stdout) == "ready\n"
    assert proc.stop(graceful_timeout=10) == 5


def test_custom_stop_signal(pysnippet) -> None:
    proc = pysnippet(READY_ON_TERM)
    assert first_line(proc.stdout) == "ready\n"
    assert proc.stop(graceful_timeout=10, stop_signal=signal.SIGINT) == -signal.SIGINT


def test_sigkill_after_graceful_timeout(pysnippet) -> None:
    proc = pysnippet(IGNORES_TERM)
    assert first_line(proc.stdout) == "ready\n"
    start = time.monotonic()
    assert proc.stop(graceful_timeout=0.3) == -signal.SIGKILL
    assert time.monotonic() - start >= 0.3
    assert gone_or_reaped(proc.pid)


def test_async_stop_escalates_too(pysnippet) -> None:
    proc = pysnippet(IGNORES_TERM)
    assert first_line(proc.stdout) == "ready\n"
    assert asyncio.run(proc.astop(graceful_timeout=0.3)) == -signal.SIGKILL


def test_stop_of_an_exited_process_returns_its_code(spawn) -> None:
    proc = spawn("sh -c 'exit 7'")
    assert proc.wait(10) == 7
    assert proc.stop() == 7


def test_send_signal_variants(pysnippet) -> None:
    code = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGUSR1, lambda *a: None)\n"
        "kid = os.fork()\n"
        "if kid == 0:\n"
        "    signal.signal(signal.SIGUSR1, lambda *a: os._exit(11))\n"
        "    print(os.getpid(), flush=True)\n"
        "    time.sleep(60); os._exit(0)\n"
        "_, status = os.waitpid(kid, 0)\n"
        "print(os.waitstatus_to_exitcode(status), flush=True)\n"
        "time.sleep(60)"
    )
    proc = pysnippet(code)
    kid = int(first_line(proc.stdout))  # printed once the child's handler is installed
    assert proc.children() == [kid]
    # children=True: only the child gets it; the parent survives and reports its exit code.
    proc.send_signal(signal.SIGUSR1, children=True)
    assert first_line(proc.stdout) == "11\n"
    assert proc.is_alive()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == -signal.SIGTERM


def test_send_signal_recursive_hits_process_and_descendants(spawn, subreaper) -> None:
    proc = spawn(shell_tree_cmd(ignore_term=False))
    grandchild = int(first_line(proc.stdout))
    proc.send_signal(signal.SIGKILL, recursive=True)
    assert proc.wait(10) == -signal.SIGKILL

    def reaped() -> bool:
        if gone_or_reaped(grandchild):
            return True
        reap_orphans()
        return False

    wait_until(reaped, 10, "the grandchild to be gone or reaped", interval=0.01)


def shell_tree_cmd(ignore_term: bool) -> str:
    trap = 'trap "" TERM; ' if ignore_term else ""
    return f"sh -c '{trap}sleep 1000 & echo $!; wait'"


@pytest.mark.parametrize("ignore_term", [False, True])
def test_stop_children_ends_a_shell_wrappers_grandchild(spawn, subreaper, ignore_term) -> None:
    proc = spawn(shell_tree_cmd(ignore_term))
    grandchild = int(first_line(proc.stdout))
    assert psutil.Process(grandchild).ppid() == proc.pid
    rc = proc.stop(graceful_timeout=0.5 if ignore_term else 10, stop_children=True)
    assert rc == (-signal.SIGKILL if ignore_term else -signal.SIGTERM)
    assert gone_or_reaped(grandchild)
    assert gone_or_reaped(proc.pid)


DOUBLE_FORK = (
    "import os, signal, sys, time\n"
    "r, w = os.pipe()\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "        os.write(w, str(os.getpid()).encode()); os.close(w)\n"
    "        time.sleep(1000); os._exit(0)\n"
    "    os._exit(0)\n"
    "os.close(w)\n"
    "daemon = int(os.read(r, 100))\n"
    "os.wait()\n"
    "print(daemon, flush=True)\n"
    "time.sleep(1000)"
)


def test_stop_children_ends_a_double_forked_daemon(pysnippet, subreaper) -> None:
    proc = pysnippet(DOUBLE_FORK, env={"MARK": "double-fork"})
    daemon = int(first_line(proc.stdout))
    # Its intermediate parent is gone: the kernel handed it to us, the subreaper.
    assert psutil.Process(daemon).ppid() == os.getpid()
    assert daemon in adopted_orphans()
    assert os.getsid(daemon) != proc.pid  # out of the process's session and group
    assert proc.stop(graceful_timeout=0.5, stop_children=True) == -signal.SIGTERM
    assert gone_or_reaped(daemon)


def test_setsid_child_of_a_live_process_is_in_the_snapshot(pysnippet, subreaper) -> None:
    code = (
        "import os, signal, time\n"
        "kid = os.fork()\n"
        "if kid == 0:\n"
        "    os.setsid(); signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    time.sleep(1000); os._exit(0)\n"
        "print(kid, flush=True)\n"
        "time.sleep(1000)"
    )
    proc = pysnippet(code)
    kid = int(first_line(proc.stdout))
    assert proc.stop(graceful_timeout=0.3, stop_children=True) == -signal.SIGTERM
    assert gone_or_reaped(kid)


def test_async_tree_stop(spawn, subreaper) -> None:
    proc = spawn(shell_tree_cmd(ignore_term=True))
    grandchild = int(first_line(proc.stdout))
    rc = asyncio.run(proc.astop(graceful_timeout=0.3, stop_children=True))
    assert rc == -signal.SIGKILL
    assert gone_or_reaped(grandchild)


def test_reap_orphans_leaves_known_children_alone(spawn, subreaper) -> None:
    import subprocess

    plain = subprocess.Popen(["true"])  # same session as us: never touched
    ours = spawn("true")
    try:
        wait_until(lambda: zombie(plain.pid), 10, "the plain child to exit", interval=0.01)
        wait_until(lambda: zombie(ours.pid), 10, "our child to exit", interval=0.01)
        assert reap_orphans() == {}
        assert plain.wait(10) == 0
        assert ours.wait(10) == 0
    finally:
        plain.wait()


def zombie(pid: int) -> bool:
    return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_subreaper_toggle() -> None:
    was = is_subreaper()
    enable_subreaper()
    assert is_subreaper()
    if not was:
        disable_subreaper()
        assert not is_subreaper()


def test_stop_without_stop_children_kills_tree_only_on_escalation(spawn, subreaper) -> None:
    proc = spawn(shell_tree_cmd(ignore_term=True))
    grandchild = int(first_line(proc.stdout))
    assert proc.stop(graceful_timeout=0.3) == -signal.SIGKILL
    assert gone_or_reaped(grandchild)


def test_process_object_keeps_working_after_reap(spawn) -> None:
    proc: Process = spawn("true")
    assert proc.wait(10) == 0
    assert proc.pidfd is None
    proc.send_signal(signal.SIGTERM)  # already reaped: silently nothing
    assert proc.poll() == 0


def test_reap_orphans_reaps_an_adopted_zombie(pysnippet, subreaper) -> None:
    code = (
        "import os\n"
        "kid = os.fork()\n"
        "if kid == 0:\n"
        "    os.read(0, 1); os._exit(3)  # outlives its parent, exits when told\n"
        "print(kid, flush=True)"
    )
    r, w = os.pipe()
    try:
        proc = pysnippet(code, stdin_fd=r)
        orphan = int(first_line(proc.stdout))
        assert proc.wait(10) == 0
        assert psutil.Process(orphan).ppid() == os.getpid()  # adopted by us
        os.write(w, b"x")
        reaped: dict[int, int] = {}

        def reaped_orphan() -> bool:
            reaped.update(reap_orphans())
            return orphan in reaped

        wait_until(reaped_orphan, 10, "the orphan to be reaped", interval=0.01)
        assert reaped[orphan] == 3
        assert gone_or_reaped(orphan)
    finally:
        os.close(r)
        os.close(w)
