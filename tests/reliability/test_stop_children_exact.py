"""``stop`` with ``stop_children = true`` ends every process a worker ever started, exactly.

Each of 10 workers double-forks 50 grandchildren that leave everything that could tie them
to it: their parent exits at once, they start a session and a process group of their own
and exec with an empty environment; half of them ignore SIGTERM. Only circusd's cgroup2
leaves still know where they came from. Also: a SIGKILLed circusd's cgroups are swept by
the next circusd, and a circusd that quits leaves none.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import psutil
import pytest

WORKERS = 10
GRANDCHILDREN = 50

TREE = r"""
import os, sys, time
n, pidfile = int(sys.argv[1]), sys.argv[2]
for i in range(n):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.setpgid(0, 0)
            fd = os.open(pidfile, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            os.write(fd, b"%d\n" % os.getpid())
            os.close(fd)
            if i % 2:
                os.execve("/bin/sh", ["sh", "-c", "trap '' TERM; exec sleep 1000"], {})
            os.execve("/bin/sleep", ["sleep", "1000"], {})
        os._exit(0)
    os.wait()
time.sleep(1000)
"""


def cgroup_root(daemon: Any) -> Path:
    where = daemon.call("globaloptions")["options"]["tree_tracking"]
    assert daemon.call("dstats")["tree_tracking"] == where
    if not where.startswith("cgroup2:"):
        pytest.skip(f"circusd has no writable cgroup2 delegation here ({where})")
    return Path(where[len("cgroup2:") :])


def leaves(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.is_dir()]


def recorded(pidfiles: list[Path]) -> dict[int, float]:
    born = {}
    for path in pidfiles:
        for pid in map(int, path.read_text().split()):
            born[pid] = psutil.Process(pid).create_time()
    return born


def still_there(born: dict[int, float]) -> list[int]:
    """Recorded grandchildren that still exist (a zombie counts: nobody reaped it)."""
    out = []
    for pid, created in born.items():
        try:
            if psutil.Process(pid).create_time() == created:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def test_only_stop_children_watchers_pay_for_a_leaf(tmp_path: Path, circusd: Any, e2e: Any) -> None:
    daemon = circusd(
        f"[watcher:plain]\ncmd = {e2e.SLEEP}\nnumprocesses = 2\n\n"
        f"[watcher:tree]\ncmd = {e2e.SLEEP}\nnumprocesses = 3\nstop_children = true\n"
    )
    root = cgroup_root(daemon)
    e2e.wait(lambda: len(daemon.pids("plain")) == 2 and len(daemon.pids("tree")) == 3, 30)
    assert len(leaves(root)) == 3


@pytest.mark.slow
def test_stop_leaves_no_grandchild(tmp_path: Path, circusd: Any, e2e: Any) -> None:
    script = tmp_path / "tree.py"
    script.write_text(TREE)
    pidfiles = [tmp_path / f"pids.{wid}" for wid in range(1, WORKERS + 1)]
    daemon = circusd(
        f"[watcher:tree]\ncmd = {e2e.PY} {script} {GRANDCHILDREN} {tmp_path}/pids.$(circus.wid)\n"
        f"numprocesses = {WORKERS}\nstop_children = true\ngraceful_timeout = 2\n"
    )
    root = cgroup_root(daemon)

    def all_forked() -> bool:
        return all(p.exists() and len(p.read_text().split()) == GRANDCHILDREN for p in pidfiles)

    e2e.wait(all_forked, 120, "every worker's grandchildren")
    born = recorded(pidfiles)
    assert len(born) == WORKERS * GRANDCHILDREN
    assert len(leaves(root)) == WORKERS
    try:
        assert daemon.call("stop", name="tree", waiting=True, timeout=60)["status"] == "ok"
        left = still_there(born)
        print(f"grandchildren left after stop: {len(left)} of {len(born)}")
        assert left == [], f"{len(left)} of {len(born)} grandchildren outlived stop"
        assert leaves(root) == [], "stopped workers' leaves were not removed"
    finally:
        for pid in still_there(born):
            os.kill(pid, signal.SIGKILL)
    daemon.stop()
    assert not root.exists(), "circusd left its cgroup subtree behind"


@pytest.mark.slow
def test_a_sigkilled_circusds_cgroups_are_swept_by_the_next(
    tmp_path: Path, circusd: Any, e2e: Any
) -> None:
    from circus.process import tree_tracking

    # This test process gets a subtree of its own: the daemons below then live (and sweep)
    # inside it, where no other circusd on this host sweeps the dead daemon's cgroups first.
    tree_tracking()
    body = f"[watcher:sleeper]\ncmd = {e2e.SLEEP}\nnumprocesses = 2\nstop_children = true\n"
    first = circusd(body)
    old_root = cgroup_root(first)
    e2e.wait(lambda: len(first.pids("sleeper")) == 2, 30, "the sleepers")
    orphans = {pid: psutil.Process(pid).create_time() for pid in first.pids("sleeper")}
    first.close_client()
    first.signal(signal.SIGKILL)
    first.wait(30)
    try:
        assert old_root.is_dir() and len(leaves(old_root)) == 2
        # Another runtime directory: the next daemon finds no crash state naming the
        # sleepers (with it, it would adopt them in their leaves: test_crash_recovery.py).
        elsewhere = tmp_path / "run-elsewhere"
        elsewhere.mkdir(mode=0o700)
        second = circusd(f"[circus]\nruntime_dir = {elsewhere}\n{body}")
        new_root = cgroup_root(second)
        assert new_root != old_root and new_root.parent == old_root.parent
        assert not old_root.exists(), "the dead circusd's subtree was not swept at start"
        # its processes were moved out, not killed: they were never the new daemon's
        assert all(e2e.alive(pid) for pid in orphans)
        second.stop()
        assert not new_root.exists()
    finally:
        for pid in still_there(orphans):
            os.kill(pid, signal.SIGKILL)
    e2e.wait(lambda: not still_there(orphans), 30, "the old daemon's sleepers to go")
