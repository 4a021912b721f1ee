"""Children lookups that do not cost the whole host, and orphan reaping without listing.

Where the kernel keeps no children lists (no CONFIG_PROC_CHILDREN), a lookup reads every
/proc/<pid>/stat: these tests count those scans and check that lookups share them, that a
shared index never vouches for a parent it did not see, and that exited orphans are reaped
without any scan at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import psutil
import pytest
from circus.process import (
    _children,
    adopted_orphans,
    children_of,
    disable_subreaper,
    enable_subreaper,
    is_child_of,
    is_subreaper,
    reap_orphans,
    reap_waiting_orphans,
)
from circus.process.testing import wait_until

FORKER = (
    "import os, sys, time\n"
    "kids = []\n"
    "for _ in range(int(sys.argv[1])):\n"
    "    pid = os.fork()\n"
    "    if pid == 0:\n"
    "        time.sleep(300); os._exit(0)\n"
    "    kids.append(pid)\n"
    "print(' '.join(map(str, kids)), flush=True)\n"
    "time.sleep(300)\n"
)


@pytest.fixture
def forker() -> Iterator[tuple[subprocess.Popen[bytes], list[int]]]:
    """A process with three children of its own (the whole group is killed at the end)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", FORKER, "3"], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    kids = [int(p) for p in proc.stdout.readline().split()]
    try:
        yield proc, kids
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()


@pytest.fixture(params=["files", "scan"])
def source(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways of finding children: the kernel's lists (where it has them) and the scan."""
    if request.param == "files" and not _children.CHILDREN_FILES:
        pytest.skip("this kernel keeps no /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN)")
    monkeypatch.setattr(_children, "CHILDREN_FILES", request.param == "files")
    monkeypatch.setattr(_children, "_index", None)
    return str(request.param)


def test_children_of_matches_psutil(forker, source: str) -> None:
    proc, kids = forker
    assert sorted(children_of(proc.pid) or []) == sorted(kids)
    assert sorted(children_of(proc.pid) or []) == sorted(
        p.pid for p in psutil.Process(proc.pid).children()
    )
    assert children_of(kids[0]) == []


def test_children_of_a_gone_pid_is_empty(source: str) -> None:
    done = subprocess.run(["true"], check=True)
    assert done.returncode == 0
    gone = max(psutil.pids()) + 100_000  # above any pid in use (pid_max is 4,194,304 at most)
    assert children_of(gone) == []


def test_lookups_share_one_scan(forker, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_children, "CHILDREN_FILES", False)
    monkeypatch.setattr(_children, "_index", None)
    proc, kids = forker
    before = _children.scan_count()
    for _ in range(20):
        assert sorted(children_of(proc.pid, max_age=60) or []) == sorted(kids)
        for kid in kids:
            assert children_of(kid, max_age=60) == []
    assert _children.scan_count() - before == 1


def test_a_parent_newer_than_the_index_gets_a_new_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_children, "CHILDREN_FILES", False)
    monkeypatch.setattr(_children, "_index", None)
    children_of(os.getpid(), max_age=60)  # an index without the process started below
    before = _children.scan_count()
    proc = subprocess.Popen(
        [sys.executable, "-c", FORKER, "1"], stdout=subprocess.PIPE, start_new_session=True
    )
    assert proc.stdout is not None
    try:
        kids = [int(p) for p in proc.stdout.readline().split()]
        assert children_of(proc.pid, max_age=60) == kids  # not "no children" from the old index
        assert _children.scan_count() - before == 1
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stdout.close()


def test_default_freshness_rescans_after_a_scans_duration(monkeypatch) -> None:
    monkeypatch.setattr(_children, "CHILDREN_FILES", False)
    monkeypatch.setattr(_children, "_index", None)
    children_of(os.getpid())
    index = _children._index
    assert index is not None
    before = _children.scan_count()
    reuse = max(index.cost, _children._MIN_REUSE)
    wait_until(
        lambda: time.monotonic() - index.ended > reuse, 10, "the index to age", interval=0.005
    )
    children_of(os.getpid())
    assert _children.scan_count() - before == 1


def test_is_child_of(forker) -> None:
    proc, kids = forker
    assert all(is_child_of(kid, proc.pid) for kid in kids)
    assert is_child_of(proc.pid, os.getpid())
    assert not is_child_of(kids[0], os.getpid())  # a grandchild
    assert not is_child_of(proc.pid, kids[0])
    assert not is_child_of(max(psutil.pids()) + 100_000, proc.pid)


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


ORPHAN = (
    "import os, sys, time\n"
    "if os.fork() == 0:\n"
    "    os.setsid()\n"
    "    if os.fork() == 0:\n"
    "        print(os.getpid(), flush=True); os._exit(7)\n"
    "    os._exit(0)\n"
    "os.wait()\n"
)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_exited_orphans_are_reaped_without_a_scan(subreaper, monkeypatch) -> None:
    monkeypatch.setattr(_children, "CHILDREN_FILES", False)
    orphans = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", ORPHAN], capture_output=True, check=True)
        orphans.append(int(out.stdout))
    # handed to us, then exited
    wait_until(lambda: all(_zombie(pid) for pid in orphans), 10, "the orphans to be our zombies")
    before = _children.scan_count()
    reaped, blocked_by = reap_waiting_orphans()
    assert reaped == {pid: 7 for pid in orphans}
    assert blocked_by is None
    assert _children.scan_count() == before
    assert not adopted_orphans()


def test_a_child_of_our_own_session_is_left_to_its_waiter(subreaper) -> None:
    proc = subprocess.Popen(["true"])  # our session: its Popen reaps it
    wait_until(lambda: _zombie(proc.pid), 10, "the child to exit", interval=0.01)
    reaped, blocked_by = reap_waiting_orphans()
    assert (reaped, blocked_by) == ({}, "other")
    assert proc.wait(10) == 0  # its status was not stolen


def test_an_exited_process_of_ours_stops_the_look(subreaper) -> None:
    from circus.process import Process

    proc = Process("t", 1, "true")
    try:
        wait_until(lambda: _zombie(proc.pid), 10, "the process to exit", interval=0.01)
        assert reap_waiting_orphans() == ({}, "process")
        assert proc.wait(10) == 0  # reaped by its owner, status intact
    finally:
        proc.close()
