"""stop(stop_children=True) ends the whole tree, exactly, through a cgroup2 leaf per child.

The trees here are built to defeat every heuristic: 50 grandchildren, each double-forked
(its parent exits at once), in a session and a process group of its own, exec'd with an
empty environment, half of them ignoring SIGTERM, orphaned to init or to us (subreaper).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from circus.process import (
    Process,
    disable_subreaper,
    enable_subreaper,
    is_subreaper,
    reap_orphans,
    set_tree_tracking,
    tree_tracking,
    tree_tracking_reason,
)
from circus.process.testing import wait_until

PY = sys.executable

# argv: N PIDFILE. N grandchildren, each: double fork, setsid, setpgid, empty env, exec.
TREE = r"""
import os, sys, time
n, pidfile = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    if os.fork() == 0:
        os.setsid()  # the intermediate: a new session, then it exits at once
        if os.fork() == 0:
            os.setpgid(0, 0)
            fd = os.open(pidfile, os.O_WRONLY | os.O_APPEND)
            os.write(fd, b"%d\n" % os.getpid())
            os.close(fd)
            if i % 2:
                os.execve("/bin/sh", ["sh", "-c", "trap '' TERM; exec sleep 1000"], {})
            os.execve("/bin/sleep", ["sleep", "1000"], {})
        os._exit(0)
    os.wait()
while len(open(pidfile).read().split()) < n:
    time.sleep(0.01)
print("ready", flush=True)
time.sleep(1000)
"""


def cgroups_or_skip() -> str:
    where = tree_tracking()
    if not where.startswith("cgroup2:"):
        pytest.skip(f"no writable cgroup2 delegation here: {tree_tracking_reason()}")
    return where[len("cgroup2:") :]


@pytest.fixture
def subreaper() -> Iterator[None]:
    was = is_subreaper()
    enable_subreaper()
    try:
        yield
    finally:
        reap_orphans()
        if not was:
            disable_subreaper()


@pytest.fixture
def process_tree_only() -> Iterator[None]:
    """cgroups off for children spawned in this test."""
    set_tree_tracking("process-tree")
    try:
        yield
    finally:
        set_tree_tracking("auto")


def first_line(fd: int) -> str:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        assert chunk, f"EOF before a full line: {buf!r}"
        buf += chunk
    return buf.decode()


def start_tree(spawn: Callable[..., Process], tmp_path: Path, n: int = 50) -> tuple[Process, dict]:
    pidfile = tmp_path / "pids"
    pidfile.write_text("")
    proc = spawn(PY, args=["-c", TREE, str(n), str(pidfile)], env={"MARK": "tree"})
    assert first_line(proc.stdout) == "ready\n"
    born = {}
    for pid in map(int, pidfile.read_text().split()):
        born[pid] = psutil.Process(pid).create_time()
        # the pid is written just before the exec that drops the environment
        wait_until(lambda p=pid: "MARK" not in psutil.Process(p).environ(), 30, "the exec")
        assert os.getsid(pid) != proc.pid
    assert len(born) == n
    return proc, born


def live(born: dict[int, float], zombies_count: bool) -> list[int]:
    """The recorded grandchildren still alive (a zombie is alive when ``zombies_count``)."""
    out = []
    for pid, created in born.items():
        try:
            ps = psutil.Process(pid)
            if ps.create_time() != created:
                continue  # the pid was reused
            if ps.status() == psutil.STATUS_ZOMBIE and not zombies_count:
                continue
        except psutil.NoSuchProcess:
            continue
        out.append(pid)
    return out


def kill_leftovers(born: dict[int, float]) -> None:
    for pid in live(born, zombies_count=False):
        os.kill(pid, signal.SIGKILL)
    reap_orphans()


@pytest.mark.slow
@pytest.mark.parametrize("adopter", ["subreaper", "init"])
def test_stop_children_ends_50_env_changing_double_forked_grandchildren(
    spawn, tmp_path, request, adopter
) -> None:
    cgroups_or_skip()
    if adopter == "subreaper":
        request.getfixturevalue("subreaper")
    proc, born = start_tree(spawn, tmp_path)
    leaf = proc.cgroup
    assert leaf is not None and os.path.isdir(leaf)
    if adopter == "subreaper":
        assert all(psutil.Process(pid).ppid() == os.getpid() for pid in born)
    try:
        rc = proc.stop(graceful_timeout=1.0, stop_children=True)
        # As our children (subreaper), each one must be reaped by stop() too: no zombie.
        left = live(born, zombies_count=adopter == "subreaper")
        if adopter == "init":  # init reaps its own zombies, in its own time
            deadline = time.monotonic() + 30
            while live(born, zombies_count=True) and time.monotonic() < deadline:
                time.sleep(0.02)
        assert left == [], f"{len(left)} of {len(born)} grandchildren outlived stop()"
        assert rc == -signal.SIGTERM
        assert not os.path.exists(leaf), "the leaf cgroup was not removed"
        assert proc.cgroup is None
    finally:
        kill_leftovers(born)


def test_async_stop_children_is_exact_too(spawn, tmp_path, subreaper) -> None:
    cgroups_or_skip()
    proc, born = start_tree(spawn, tmp_path, n=20)
    leaf = proc.cgroup
    try:
        rc = asyncio.run(proc.astop(graceful_timeout=0.5, stop_children=True))
        assert rc == -signal.SIGTERM
        assert live(born, zombies_count=True) == []
        assert leaf is not None and not os.path.exists(leaf)
    finally:
        kill_leftovers(born)


def test_sigkill_escalation_ends_a_tree_that_ignores_term_everywhere(
    spawn, tmp_path, subreaper
) -> None:
    cgroups_or_skip()
    # SIG_IGN is inherited across fork and exec: nobody in this tree dies of SIGTERM.
    code = "import signal\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + TREE
    pidfile = tmp_path / "pids"
    pidfile.write_text("")
    proc = spawn(PY, args=["-c", code, "10", str(pidfile)])
    assert first_line(proc.stdout) == "ready\n"
    born = {pid: psutil.Process(pid).create_time() for pid in map(int, pidfile.read_text().split())}
    try:
        assert proc.stop(graceful_timeout=0.3, stop_children=True) == -signal.SIGKILL
        assert live(born, zombies_count=True) == []
    finally:
        kill_leftovers(born)


def test_stop_without_stop_children_keeps_the_tree_and_close_moves_it_out(spawn, tmp_path) -> None:
    root = cgroups_or_skip()
    proc, born = start_tree(spawn, tmp_path, n=4)
    leaf = proc.cgroup
    try:
        assert proc.stop(graceful_timeout=5) == -signal.SIGTERM
        assert len(live(born, zombies_count=False)) == 4  # upstream: only the process
        proc.close()
        assert leaf is not None and not os.path.exists(leaf)
        for pid in born:  # survivors are moved, never killed
            where = Path(f"/proc/{pid}/cgroup").read_text()
            assert where.strip().endswith(os.path.basename(root))
    finally:
        kill_leftovers(born)


def test_fallback_without_cgroups_still_stops_a_double_forked_daemon(
    spawn, tmp_path, subreaper, process_tree_only
) -> None:
    assert tree_tracking() == "process-tree"
    code = (
        "import os, signal, time\n"
        "r, w = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "        os.write(w, str(os.getpid()).encode())\n"
        "        time.sleep(1000)\n"
        "    os._exit(0)\n"
        "os.close(w)\n"
        "daemon = int(os.read(r, 100))\n"
        "os.wait()\n"
        "print(daemon, flush=True)\n"
        "time.sleep(1000)"
    )
    proc = spawn(PY, args=["-c", code], env={"MARK": "fallback"})
    daemon = int(first_line(proc.stdout))
    born = {daemon: psutil.Process(daemon).create_time()}
    assert proc.cgroup is None
    try:
        assert proc.stop(graceful_timeout=0.3, stop_children=True) == -signal.SIGTERM
        assert live(born, zombies_count=True) == []
    finally:
        kill_leftovers(born)


def test_environment_variable_turns_cgroups_off() -> None:
    out = subprocess.run(
        [PY, "-c", "from circus.process import tree_tracking; print(tree_tracking())"],
        env={**os.environ, "CIRCUS_TREE_TRACKING": "process-tree"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "process-tree"


OWNER = r"""
import os, sys
from circus.process import Process, tree_tracking
proc = Process("t", 1, "sleep 1000")
print(tree_tracking(), proc.pid, proc.cgroup, flush=True)
if sys.argv[1] == "die":
    os.kill(os.getpid(), 9)
"""


def run_owner(mode: str) -> tuple[str, int, str]:
    out = subprocess.run(
        [PY, "-c", OWNER, mode], capture_output=True, text=True, timeout=60, check=False
    )
    where, pid, leaf = out.stdout.split()
    return where[len("cgroup2:") :], int(pid), leaf


def wait_gone(pid: int) -> None:
    def gone() -> bool:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                reap_orphans()
        except psutil.NoSuchProcess:
            return True
        return False

    wait_until(gone, 30, f"{pid} to be gone")


def test_an_owner_that_exits_removes_its_subtree_and_moves_survivors_out() -> None:
    cgroups_or_skip()
    root, child, leaf = run_owner("exit")
    try:
        assert not os.path.exists(root)
        assert psutil.Process(child).status() != psutil.STATUS_ZOMBIE  # moved, not killed
        rel = Path(f"/proc/{child}/cgroup").read_text().strip().split("::", 1)[1]
        assert os.path.dirname(root).endswith(rel.rstrip("/"))  # back home
        assert os.path.basename(root) not in rel
    finally:
        os.kill(child, signal.SIGKILL)
        wait_gone(child)


@pytest.mark.slow
def test_a_killed_owners_subtree_is_cleaned_by_the_next_owner() -> None:
    cgroups_or_skip()
    root, child, leaf = run_owner("die")
    try:
        assert os.path.isdir(leaf), "a SIGKILLed owner cannot clean up: its leaf stays"
        second_root, second_child, _ = run_owner("exit")
        os.kill(second_child, signal.SIGKILL)
        assert os.path.dirname(second_root) == os.path.dirname(root)
        assert not os.path.exists(root), "the dead owner's subtree is still there"
        assert psutil.Process(child).status() != psutil.STATUS_ZOMBIE  # moved, not killed
        wait_gone(second_child)
    finally:
        os.kill(child, signal.SIGKILL)
        wait_gone(child)


def test_children_with_rlimits_or_another_user_are_born_in_their_leaf(spawn) -> None:
    cgroups_or_skip()
    kwargs: dict = {"rlimits": {"nofile": 256}}  # a preexec_fn: fork instead of vfork
    if os.getuid() == 0:
        kwargs["uid"] = "nobody"
    proc = spawn("sleep 1000", **kwargs)
    leaf = proc.cgroup
    assert leaf is not None
    rel = Path(f"/proc/{proc.pid}/cgroup").read_text().strip().split("::", 1)[1]
    assert leaf.endswith(rel)
    assert proc.stop(graceful_timeout=5, stop_children=True) == -signal.SIGTERM
    assert not os.path.exists(leaf)


# A user of this module run by one of our children: its own children (nested subtree) are
# still inside the outer leaf, so the outer stop ends them too.
NESTED = r"""
import sys, time
from circus.process import Process, tree_tracking
inner = Process("inner", 1, "sleep 1000")
print(tree_tracking(), inner.pid, inner.cgroup, flush=True)
time.sleep(1000)
"""


def test_a_nested_user_of_cgroups_is_stopped_with_its_parents_tree(spawn, subreaper) -> None:
    cgroups_or_skip()
    proc = spawn(PY, args=["-c", NESTED], copy_env=True)
    where, pid, inner_leaf = first_line(proc.stdout).split()
    outer_leaf = proc.cgroup
    assert outer_leaf is not None
    assert where.startswith(f"cgroup2:{outer_leaf}/circus.")
    assert inner_leaf.startswith(where[len("cgroup2:") :])
    born = {int(pid): psutil.Process(int(pid)).create_time()}
    try:
        assert proc.stop(graceful_timeout=5, stop_children=True) == -signal.SIGTERM
        assert live(born, zombies_count=True) == []
        assert not os.path.exists(outer_leaf)
    finally:
        kill_leftovers(born)
