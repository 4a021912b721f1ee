"""Process.attach: supervising a running pid through a pidfd, checked against its start time,
as a child (exact exit status) or a non-child (exit seen on the pidfd)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest
from circus.process import (
    UNKNOWN_RETURNCODE,
    Process,
    ProcessGoneError,
    process_start_time,
)
from circus.process.testing import wait_until

PY = sys.executable


def _alive(pid: int, start: int | None) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in (b"Z", b"X") and int(fields[19]) == start


def _cmdline(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().split(b"\0")
    except OSError:
        return []


@pytest.fixture
def orphans() -> Iterator[list[int]]:
    """Pids of non-children started by a test: SIGKILLed at teardown."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _non_child(script: str, orphans: list[int]) -> int:
    """Start ``script`` in the background of a shell that exits: not our child."""
    sh = subprocess.run(
        ["sh", "-c", f"{script} >/dev/null 2>&1 </dev/null & echo $!"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    pid = int(sh.stdout)
    orphans.append(pid)
    return pid


def test_a_reused_or_dead_pid_is_refused() -> None:
    pid = os.posix_spawn("/bin/sleep", ["sleep", "60"], os.environ)
    start = process_start_time(pid)
    assert start is not None
    try:
        with pytest.raises(ProcessGoneError, match="not the process started"):
            Process.attach(pid, start - 1)  # what a state file says of a recycled pid
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    with pytest.raises(ProcessGoneError):
        Process.attach(pid, start)  # reaped: gone
    with pytest.raises(ProcessGoneError):
        Process.attach(os.getpid(), process_start_time(os.getpid()) or 0)


def test_a_zombie_is_refused() -> None:
    pid = os.posix_spawn("/bin/true", ["true"], os.environ)
    start = process_start_time(pid)
    wait_until(lambda: not _alive(pid, start), 10, "true to exit")
    try:
        with pytest.raises(ProcessGoneError, match="exited"):
            Process.attach(pid, start or 0)
    finally:
        os.waitpid(pid, 0)


def test_an_attached_child_is_reaped_with_its_exact_status() -> None:
    read, write = os.pipe()
    try:
        pid = os.posix_spawn(
            PY,
            [PY, "-c", "import os, sys; os.read(0, 1); sys.exit(7)"],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, read, 0)],
        )
    finally:
        os.close(read)
    try:
        # exec'd (before it, /proc shows our own command line)
        wait_until(lambda: b"-c" in _cmdline(pid), 30, "the child to exec")
        proc = Process.attach(pid, process_start_time(pid) or 0, name="w", wid=3)
    except BaseException:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(write)
        raise
    try:
        assert proc.is_child and proc.wid == 3 and proc.is_alive()
        assert proc.argv[:2] == [PY, "-c"]
        os.write(write, b"x")
        assert proc.wait(30) == 7
    finally:
        os.close(write)
        proc.close()


def test_a_non_child_exit_is_seen_through_its_pidfd(orphans: list[int]) -> None:
    pid = _non_child("sleep 60", orphans)
    start = process_start_time(pid)
    proc = Process.attach(pid, start or 0, name="w", wid=1)
    assert not proc.is_child
    assert proc.poll() is None  # running: not mistaken for an exit (waitid would say ECHILD)

    async def main() -> int | None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int | None] = loop.create_future()
        proc.add_exit_callback(lambda p: done.set_result(p.returncode))
        os.kill(pid, signal.SIGTERM)
        return await asyncio.wait_for(done, 30)

    try:
        rc = asyncio.run(main())
    finally:
        proc.close()
    # the status belongs to its parent: read from the zombie when still there, else unknown
    assert rc in (-signal.SIGTERM, UNKNOWN_RETURNCODE)
    assert proc.pidfd is None


def test_stop_of_a_non_child_ends_its_whole_tree(orphans: list[int]) -> None:
    pid = _non_child("sh -c 'sleep 61 & sleep 62 & wait'", orphans)
    proc = Process.attach(pid, process_start_time(pid) or 0)
    try:
        wait_until(lambda: len(proc.children()) == 2, 30, "two grandchildren")
        kids = {kid: process_start_time(kid) for kid in proc.children()}
        orphans.extend(kids)
        proc.stop(graceful_timeout=10, stop_children=True)
        assert proc.returncode is not None
        wait_until(
            lambda: not any(_alive(k, s) for k, s in kids.items()), 10, "the grandchildren to end"
        )
    finally:
        proc.close()


def test_signals_reach_an_attached_process(orphans: list[int]) -> None:
    pid = _non_child("sleep 60", orphans)
    start = process_start_time(pid)
    proc = Process.attach(pid, start or 0)
    try:
        proc.send_signal(signal.SIGKILL)
        wait_until(lambda: proc.poll() is not None, 10, "the exit")
        assert not _alive(pid, start)
    finally:
        proc.close()


def test_existing_output_pipes_become_the_process_s() -> None:
    read, write = os.pipe()
    try:
        pid = os.posix_spawn(
            PY,
            [PY, "-c", "print('hello', flush=True)"],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, write, 1)],
        )
    finally:
        os.close(write)
    proc = Process.attach(pid, process_start_time(pid) or 0, stdout=read)
    assert proc.stdout == read
    assert proc.wait(30) == 0
    assert os.read(read, 100) == b"hello\n"
    proc.close()
    assert proc.stdout is None
    with pytest.raises(OSError):
        os.fstat(read)


def test_a_leaf_is_used_only_if_the_process_is_in_it(orphans: list[int]) -> None:
    spawned = Process("w", 1, "sleep 60", exact_tree=True)
    other = _non_child("sleep 60", orphans)
    try:
        if spawned.cgroup is None:
            pytest.skip("trees are not tracked with cgroups here")
        twin = Process.attach(spawned.pid or 0, spawned.start_time or 0, cgroup=spawned.cgroup)
        stranger = Process.attach(other, process_start_time(other) or 0, cgroup=spawned.cgroup)
        assert twin.cgroup == spawned.cgroup
        assert stranger.cgroup is None  # not in that leaf: its tree is found through /proc
        twin.close()
        stranger.close()
    finally:
        spawned.stop(graceful_timeout=5, stop_children=True)
        spawned.close()


def test_take_socket_copies_a_listening_socket_only_from_the_recorded_process() -> None:
    import socket

    from circus.process import process_is, take_socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        fd, inode = listener.fileno(), os.fstat(listener.fileno()).st_ino
        child = subprocess.Popen(["sleep", "60"], pass_fds=[fd])
    try:
        start = process_start_time(child.pid) or 0
        assert process_is(child.pid, start) and not process_is(child.pid, start + 1)
        assert take_socket(child.pid, start + 1, fd, inode) is None  # a reused pid
        assert take_socket(child.pid, start, fd, inode + 1) is None  # another socket
        assert take_socket(child.pid, start, 0, inode) is None  # not a socket there
        new = take_socket(child.pid, start, fd, inode)
        assert new is not None
        try:
            assert os.fstat(new).st_ino == inode and not os.get_inheritable(new)
        finally:
            os.close(new)
    finally:
        child.kill()
        child.wait(10)
