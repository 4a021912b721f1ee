"""readiness = notify / liveness = notify over real datagram sockets, with real children."""

from __future__ import annotations

import array
import asyncio
import os
import shutil
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import async_wait_until
from circus.watcher import NotReady

# A child of the watcher: reports its $NOTIFY_SOCKET, says STATUS=warming, then waits for
# the test's "release" file and does what its mode says.
CHILD = r"""
import os, socket, subprocess, sys, time
from pathlib import Path

d, mode = Path(sys.argv[1]), sys.argv[2]
addr = os.environ["NOTIFY_SOCKET"]
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
def send(text):
    sock.sendto(text.encode(), addr)
tmp = d / f"tmp.{os.getpid()}"
tmp.write_text(addr + "\n" + os.environ.get("WATCHDOG_USEC", "-"))
tmp.rename(d / f"env.{os.getpid()}")
send("STATUS=warming")
if mode == "flood":
    for n in range(150):
        send(f"STATUS={n}")
    mode = "self"
if mode == "extend":
    send("EXTEND_TIMEOUT_USEC=60000000\nSTATUS=extended")
    mode = "self"
while not (d / "release").exists():
    time.sleep(0.02)
if mode == "self":
    send("STATUS=serving\nREADY=1")
elif mode == "grandchild":
    # the grandchild says READY=1 and stays until this process goes (its stdin closes)
    code = "import socket,sys; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); " \
           "s.sendto(b'READY=1\\nSTATUS=from grandchild', sys.argv[1]); sys.stdin.read()"
    subprocess.Popen([sys.executable, "-c", code, addr], stdin=subprocess.PIPE)
elif mode == "watchdog":
    send("READY=1")
    while (d / "alive").exists():
        send("WATCHDOG=1")
        time.sleep(0.05)
elif mode == "status":
    send("STATUS=still warming")
elif mode == "daemonize":
    # a grandchild that leaves the tree (its parent exits) before it says READY=1
    top = os.getpid()
    if os.fork() == 0:
        middle = os.getpid()
        if os.fork() == 0:
            while os.getppid() == middle:
                time.sleep(0.01)
            send("READY=1\nSTATUS=from a daemon")
            while os.path.exists(f"/proc/{top}"):  # ends with the process it left
                time.sleep(0.01)
            os._exit(0)
        os._exit(0)
    os.wait()
elif mode == "litter":
    here = Path(addr).parent
    (here / "sub").mkdir()
    (here / "sub" / "file").write_text("x")
    (here / "link").symlink_to(d)
    (here / "sub" / "link").symlink_to(d)
    send("READY=1")
while True:
    time.sleep(1)
"""

# Sends READY=1 to the socket named in its argv: a process of another watcher.
INTRUDER = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.sendto(b"READY=1\nSTATUS=hijacked", sys.argv[1])
"""


def _cmd(tmp_path: Path, mode: str) -> str:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    return f"{sys.executable} {script} {tmp_path} {mode}"


def _env_of(tmp_path: Path, pid: int) -> tuple[str, str]:
    addr, watchdog = (tmp_path / f"env.{pid}").read_text().split("\n")
    return addr, watchdog


def test_ready_from_the_process_with_status_text(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> list[str]:
        w = make(_cmd(tmp_path, "self"), numprocesses=2, readiness="notify")
        assert w.has_readiness
        await w.start()
        pids = w.pids
        for pid in pids:
            await async_wait_until(
                lambda pid=pid: w.health(pid)["status_text"] == "warming", 20, "STATUS=warming"
            )
            assert w.health(pid)["state"] == "starting"
            info = w.process_info(pid)
            assert info["health"] == "starting" and info["status_text"] == "warming"
        with pytest.raises(NotReady) as caught:
            await w.wait_ready(timeout=0.2)
        assert set(caught.value.reasons) == set(pids)
        # each process has a socket of its own, in a 0700 dir of its own
        addrs = [_env_of(tmp_path, pid)[0] for pid in pids]
        assert len(set(addrs)) == 2
        for addr in addrs:
            assert stat.S_IMODE(os.stat(os.path.dirname(addr)).st_mode) == 0o700
            assert stat.S_ISSOCK(os.stat(addr).st_mode)
        (tmp_path / "release").touch()
        await w.wait_ready(timeout=20)
        assert sorted(p["process_pid"] for p in recorder.of("ready")) == sorted(pids)
        assert {p["process_id"] for p in recorder.of("ready")} == {1, 2}
        for pid in pids:
            health = w.health(pid)
            assert health["state"] == "ready" and health["status_text"] == "serving"
        await w.stop()
        return addrs

    for addr in run_async(main):  # removed with their process
        assert not Path(addr).exists() and not Path(addr).parent.exists()


def test_ready_from_a_grandchild(make: Any, recorder: Any, run_async: Any, tmp_path: Path) -> None:
    async def main() -> None:
        w = make(_cmd(tmp_path, "grandchild"), readiness="notify", stop_children=True)
        await w.start()
        (tmp_path / "release").touch()
        await w.wait_ready(timeout=20)
        (pid,) = w.pids
        assert w.health(pid) == {
            "state": "ready",
            "status_text": "from grandchild",
            "since": w.health(pid)["since"],
        }

    run_async(main)


def test_foreign_senders_and_garbage_do_not_count(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        w = make(_cmd(tmp_path, "status"), readiness="notify", readiness_timeout=60)
        await w.start()
        (pid,) = w.pids
        await async_wait_until(lambda: (tmp_path / f"env.{pid}").exists(), 20, "child env")
        addr = _env_of(tmp_path, pid)[0]
        # a process of another watcher
        intruder = tmp_path / "intruder.py"
        intruder.write_text(INTRUDER)
        other = make(f"{sys.executable} {intruder} {addr}", name="other", respawn=False)
        await other.start()
        await async_wait_until(lambda: recorder.count("reap") >= 1, 20, "the intruder's exit")
        # this process (the watcher's own, not in the child's tree), garbage, an oversized
        # datagram, and one passing a descriptor along
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
            sender.sendto(b"READY=1", addr)
            sender.sendto(os.urandom(2000), addr)
            sender.sendto(b"READY=1\n" + b"x" * 60000, addr)
            r, wfd = os.pipe()
            try:
                fds = array.array("i", [r, wfd])
                sender.sendmsg([b"READY=1"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)], 0, addr)
            finally:
                os.close(r)
                os.close(wfd)
        # the child's own STATUS= comes after all of them on the same socket
        (tmp_path / "release").touch()
        await async_wait_until(
            lambda: w.health(pid)["status_text"] == "still warming", 20, "the child's STATUS="
        )
        assert w.health(pid)["state"] == "starting"
        assert recorder.count("ready") == 0
        assert w._health._procs[pid].channel.dropped >= 5

    run_async(main)


@pytest.mark.slow
def test_watchdog_silence_restarts_the_process(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        (tmp_path / "alive").touch()
        w = make(
            _cmd(tmp_path, "watchdog"),
            readiness="notify",
            liveness="notify",
            watchdog_sec=1.0,
            backoff_initial=0,
            graceful_timeout=5,
        )
        await w.start()
        (pid,) = w.pids
        (tmp_path / "release").touch()
        await w.wait_ready(timeout=20)
        assert _env_of(tmp_path, pid)[1] == "1000000"
        # fed every 50 ms: still ready two watchdog periods later
        await asyncio.sleep(2.2)
        assert recorder.count("unhealthy") == 0 and w.pids == [pid]
        (tmp_path / "alive").unlink()
        await recorder.until(lambda: recorder.count("unhealthy") == 1, 20)
        (event,) = recorder.of("unhealthy")
        assert event["process_pid"] == pid and "WATCHDOG=1" in event["reason"]
        # ended through the stop path (kill, reap), then replaced
        await recorder.until(lambda: len(w.pids) == 1 and w.pids != [pid], 20)
        names = [(e, p.get("process_pid")) for e, p in recorder.events]
        assert names.index(("kill", pid)) < names.index(("reap", pid))
        assert names.index(("reap", pid)) < names.index(("spawn", w.pids[0]))

    run_async(main)


def test_readiness_timeout_is_a_failed_start(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        w = make(_cmd(tmp_path, "self"), readiness="notify", readiness_timeout=0.5,
                 backoff_initial=0.2)  # fmt: skip
        await w.start()
        (first,) = w.pids
        with pytest.raises(NotReady) as caught:
            await w.wait_ready([first], timeout=20)
        assert "not ready after 0.5 s" in caught.value.reasons[first]
        assert str(first) in str(caught.value)
        await recorder.until(lambda: recorder.count("spawn") >= 2, 20)
        (event,) = [p for p in recorder.of("unready") if p["process_pid"] == first]
        assert event["process_id"] == 1 and "not ready after 0.5 s" in event["reason"]
        assert first not in w.pids
        # the replacement becomes ready once the child may say so
        (tmp_path / "release").touch()
        await recorder.until(lambda: recorder.count("ready") >= 1, 20)
        await w.wait_ready(timeout=20)

    run_async(main)


def test_without_readiness_nothing_changes(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300", numprocesses=2)
        assert not w.has_readiness
        await w.start()
        await asyncio.wait_for(w.wait_ready(), 5)
        for pid in w.pids:
            assert w.health(pid)["state"] == "ready"
            assert "health" not in w.process_info(pid)
        assert "NOTIFY_SOCKET" not in w._inputs.env()
        with pytest.raises(NotReady):
            await w.wait_ready([1])

    run_async(main)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as nobody")
def test_notify_for_a_process_of_another_user(make: Any, recorder: Any, run_async: Any) -> None:
    code = (
        "import os, socket, time; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
        "s.sendto(b'READY=1\\nSTATUS=as ' + str(os.getuid()).encode(), "
        "os.environ['NOTIFY_SOCKET']); time.sleep(300)"
    )

    async def main() -> None:
        w = make(f'/usr/bin/python3 -c "{code}"', uid="nobody", gid="nogroup",
                 working_dir="/", readiness="notify")  # fmt: skip
        await w.start()
        await w.wait_ready(timeout=20)
        (pid,) = w.pids
        assert w.health(pid)["status_text"] == "as 65534"
        sockdir = Path(w._health._procs[pid].channel.path).parent
        assert sockdir.stat().st_uid == 0  # the user may pass through, not write
        assert stat.S_IMODE(sockdir.stat().st_mode) == 0o711
        sock = os.stat(w._health._procs[pid].channel.path)
        assert (sock.st_uid, stat.S_IMODE(sock.st_mode)) == (65534, 0o600)
        assert stat.S_IMODE(sockdir.parent.stat().st_mode) == 0o711

    run_async(main)


def test_what_a_child_leaves_in_its_notify_dir_goes_with_it(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> str:
        w = make(_cmd(tmp_path, "litter"), readiness="notify")
        await w.start()
        (pid,) = w.pids
        (tmp_path / "release").touch()
        await w.wait_ready(timeout=20)
        addr = _env_of(tmp_path, pid)[0]
        await w.stop()
        return addr

    addr = run_async(main)
    assert not Path(addr).parent.exists() and not Path(addr).parent.parent.exists()
    assert (tmp_path / "child.py").exists()  # the symlinks' target is untouched


def test_dirs_of_a_killed_daemon_are_swept(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import tempfile

    base = Path(tempfile.mkdtemp(prefix="cn-", dir="/tmp"))  # short: unix socket paths
    try:
        monkeypatch.setenv("XDG_RUNTIME_DIR", str(base))
        dead = subprocess.Popen(["true"])
        dead.wait()
        stale = base / f"circus-notify-{dead.pid}-0123456789ab"
        (stale / "1").mkdir(parents=True)
        (stale / "1" / "notify").write_text("")
        alive = base / f"circus-notify-{os.getppid()}-0123456789ab"  # a live pid: kept
        alive.mkdir()
        other = base / f"circus-notify-{dead.pid}-link"  # not a real dir: kept
        other.symlink_to(tmp_path)

        async def main() -> None:
            w = make(_cmd(tmp_path, "self"), readiness="notify")
            await w.start()
            (tmp_path / "release").touch()
            await w.wait_ready(timeout=20)
            (pid,) = w.pids
            assert _env_of(tmp_path, pid)[0].startswith(f"{base}/circus-notify-{os.getpid()}-")

        run_async(main)
        assert not stale.exists()
        assert alive.exists() and other.is_symlink() and (tmp_path / "child.py").exists()
    finally:
        shutil.rmtree(base)  # links are removed, not followed


@pytest.fixture
def subreaper() -> Iterator[None]:
    """Orphans come to this process (as to circusd), which reaps them."""
    from circus.process import disable_subreaper, enable_subreaper, is_subreaper, reap_orphans

    was = is_subreaper()
    enable_subreaper()
    try:
        yield
    finally:
        reap_orphans()
        if not was:
            disable_subreaper()


@pytest.mark.parametrize("own_leaf", [True, False])
def test_a_daemonized_descendant_counts_only_inside_the_process_cgroup(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path, own_leaf: bool, subreaper: None
) -> None:
    from circus.process import adopted_orphans, reap_orphans, tree_tracking

    if own_leaf and not tree_tracking().startswith("cgroup2:"):
        pytest.skip("cgroup2 tree tracking is not available here")

    def no_orphan() -> bool:
        reap_orphans()
        return not adopted_orphans()

    async def main() -> None:
        w = make(_cmd(tmp_path, "daemonize"), readiness="notify", stop_children=own_leaf,
                 readiness_timeout=60)  # fmt: skip
        await w.start()
        (pid,) = w.pids
        (tmp_path / "release").touch()
        if own_leaf:
            await w.wait_ready(timeout=20)
            assert w.health(pid)["status_text"] == "from a daemon"
        else:
            await async_wait_until(
                lambda: w._health._procs[pid].channel.dropped >= 1, 20, "the daemon's READY=1"
            )
            assert w.health(pid)["state"] == "starting"
        await w.stop()
        await async_wait_until(no_orphan, 20, "the daemonized grandchild ended and reaped")

    run_async(main)


@pytest.mark.slow
def test_extend_timeout_usec_moves_the_deadline(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    async def main() -> None:
        # 1.5 s: time enough for a Python child to start on a loaded machine
        w = make(_cmd(tmp_path, "extend"), readiness="notify", readiness_timeout=1.5)
        await w.start()
        (pid,) = w.pids
        await async_wait_until(lambda: w.health(pid)["status_text"] == "extended", 20, "extend")
        with pytest.raises(NotReady) as caught:  # past readiness_timeout, still starting
            await w.wait_ready(timeout=2.0)
        assert caught.value.reasons[pid] == "not ready after waiting 2 s"
        assert recorder.count("unready") == 0 and w.pids == [pid]
        (tmp_path / "release").touch()
        await w.wait_ready(timeout=20)

    run_async(main)


@pytest.mark.slow
def test_a_flooding_process_is_read_at_a_bounded_rate(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from circus.watcher import _notify

    monkeypatch.setattr(_notify, "_BUDGET", 60)  # the real budget is 256 a second

    async def main() -> None:
        w = make(_cmd(tmp_path, "flood"), readiness="notify")
        await w.start()
        (pid,) = w.pids
        (tmp_path / "release").touch()
        await w.wait_ready(timeout=30)
        health = w._health._procs[pid]
        assert health.channel.rests >= 1  # left unread a second at least once
        assert w.health(pid)["status_text"] == "serving"  # nothing lost, in order

    run_async(main)
