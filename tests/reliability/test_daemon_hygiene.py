"""A circusd never takes its endpoints or pidfile from a running daemon, and leaves behind
nothing that is not its own.

Real circusd processes in a temp dir: a second daemon on the same ipc endpoints or pidfile
must exit 1 naming what is in use and by which pid, without touching the first one's files;
stale leftovers (a socket nobody listens on, a pidfile naming a dead, zombie or reused pid)
are taken over.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from circus.process.testing import wait_until

CIRCUSD = str(Path(sys.executable).with_name("circusd"))
SLEEPER = f"""
[watcher:sleeper]
cmd = {sys.executable} -c 'import time; time.sleep(300)'
graceful_timeout = 5
"""


def _inode(path: str) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_dev, st.st_ino


def _second(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run another circusd on ``config``; it must exit by itself (it is refused). One that
    does not is stopped with SIGTERM (so it stops its own watchers) and the test fails."""
    proc = _spawn(config, *args)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        code, err = _reap(proc)
        raise AssertionError(f"the second circusd did not exit by itself ({code}): {err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _spawn(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CIRCUSD, str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
    )


def _reap(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """End ``proc`` if it still runs; its status and stderr."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate(timeout=10)
    return proc.returncode, err


# ---------------------------------------------------------------------------- ipc endpoints


def test_second_daemon_on_same_ipc_endpoints_is_refused(circusd) -> None:
    first = circusd(SLEEPER)
    ctl, pub = first.endpoint[len("ipc://") :], first.pubsub[len("ipc://") :]
    before = _inode(ctl), _inode(pub)
    second = _second(first.config)
    assert second.returncode == 1, second.stderr
    assert first.proc is not None
    # the message names the endpoint in use and who holds it
    assert f"ipc://{first.dir}/" in second.stderr, second.stderr
    assert f"another circusd (pid {first.proc.pid})" in second.stderr, second.stderr
    assert "Traceback" not in second.stderr
    # the first daemon's socket files are untouched and it still answers
    assert (_inode(ctl), _inode(pub)) == before
    first.close_client()
    assert first.call("numwatchers", timeout=10)["numwatchers"] == 1
    assert first.stop() == 0, first.output()
    assert not os.path.exists(ctl) and not os.path.exists(pub)


def test_pubsub_in_use_alone_is_refused(circusd, tmp_path: Path) -> None:
    """A second daemon whose control endpoint is free but whose pub/sub one is not."""
    first = circusd(SLEEPER)
    pub = first.pubsub[len("ipc://") :]
    before = _inode(pub)
    other = tmp_path / "other"
    other.mkdir()
    config = other / "circus.ini"
    config.write_text(
        f"[circus]\nendpoint = ipc://{other}/ctl\npubsub_endpoint = {first.pubsub}\n{SLEEPER}"
    )
    second = _second(config)
    assert second.returncode == 1, second.stderr
    assert f"cannot bind {first.pubsub}" in second.stderr, second.stderr
    assert _inode(pub) == before
    assert not os.path.exists(other / "ctl")  # the refused daemon cleaned up its own
    first.close_client()
    assert first.call("numwatchers")["status"] == "ok"


def test_stats_endpoint_in_use_is_refused(circusd, tmp_path: Path) -> None:
    stats = f"ipc://{tmp_path}/stats"
    first = circusd(f"statsd = true\nstats_endpoint = {stats}\n{SLEEPER}")
    before = _inode(stats[len("ipc://") :])
    other = tmp_path / "other"
    other.mkdir()
    config = other / "circus.ini"
    config.write_text(
        f"[circus]\nendpoint = ipc://{other}/ctl\npubsub_endpoint = ipc://{other}/pub\n"
        f"statsd = true\nstats_endpoint = {stats}\n{SLEEPER}"
    )
    second = _second(config)
    assert second.returncode == 1, second.stderr
    assert f"cannot bind {stats}" in second.stderr, second.stderr
    assert _inode(stats[len("ipc://") :]) == before
    assert first.call("numwatchers")["status"] == "ok"
    assert first.stop() == 0
    assert not os.path.exists(stats[len("ipc://") :])


def test_two_daemons_started_at_once_leave_one_reachable(circusd) -> None:
    daemon = circusd(SLEEPER, start=False)
    procs = [_spawn(daemon.config), _spawn(daemon.config)]
    try:
        wait_until(lambda: any(p.poll() is not None for p in procs), 60, "one circusd refused")
        refused = next(p for p in procs if p.poll() is not None)
        running = next(p for p in procs if p is not refused)
        assert refused.returncode == 1, _reap(refused)
        assert running.poll() is None, _reap(running)
        from circus.ctl import CircusClient

        with CircusClient(daemon.endpoint, timeout=20) as client:
            assert client.call("numwatchers", {})["numwatchers"] == 1
    finally:
        results = [_reap(p) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    assert not os.path.exists(daemon.endpoint[len("ipc://") :])


def test_stale_socket_file_is_replaced(circusd, tmp_path: Path) -> None:
    """A socket file nobody listens on (a SIGKILLed daemon's) does not stop a new one."""
    for name in ("ctl", "pub"):
        leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        leftover.bind(str(tmp_path / name))
        leftover.close()  # the file stays, nothing listens
    daemon = circusd(SLEEPER)
    assert daemon.call("numwatchers")["status"] == "ok"
    assert daemon.stop() == 0
    assert not (tmp_path / "ctl").exists()


def test_a_file_that_is_not_a_socket_is_left_alone(circusd, tmp_path: Path) -> None:
    (tmp_path / "ctl").write_text("precious\n")
    daemon = circusd(SLEEPER, start=False)
    second = _second(daemon.config)
    assert second.returncode == 1, second.stderr
    assert "is not a socket" in second.stderr, second.stderr
    assert (tmp_path / "ctl").read_text() == "precious\n"


def test_socket_file_taken_over_meanwhile_is_not_removed_at_exit(circusd) -> None:
    """Only a socket file that is still ours (same inode) goes at exit."""
    daemon = circusd(SLEEPER)
    path = daemon.pubsub[len("ipc://") :]
    # another process takes the path over while circusd runs (as ZeroMQ's bind would)
    os.unlink(path)
    usurper = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        usurper.bind(path)
        usurper.listen(1)
        theirs = _inode(path)
        assert daemon.stop() == 0, daemon.output()
        assert os.path.exists(path), "circusd removed a socket file it no longer owned"
        assert _inode(path) == theirs
        assert not os.path.exists(daemon.endpoint[len("ipc://") :])  # its own one did go
    finally:
        usurper.close()
        os.unlink(path)


# ---------------------------------------------------------------------------- pidfile


def _start_with_pidfile(circusd, pidfile: Path):
    daemon = circusd(SLEEPER, "--pidfile", str(pidfile))
    assert daemon.proc is not None
    return daemon


def test_live_circusd_pidfile_refuses_even_when_older_than_the_file(circusd, tmp_path) -> None:
    """A pidfile naming a running circusd refuses, whatever the file's timestamp says (a
    clock stepped forward makes a running daemon look younger than its file)."""
    pidfile = tmp_path / "circusd.pid"
    first = _start_with_pidfile(circusd, pidfile)
    past = time.time() - 3600
    os.utime(pidfile, (past, past))
    other = tmp_path / "other"
    other.mkdir()
    config = other / "circus.ini"
    config.write_text(
        f"[circus]\nendpoint = ipc://{other}/ctl\npubsub_endpoint = ipc://{other}/pub\n{SLEEPER}"
    )
    second = _second(config, "--pidfile", str(pidfile))
    assert second.returncode == 1, second.stderr
    assert f"names a running circusd (pid {first.proc.pid})" in second.stderr, second.stderr
    assert "stale" not in second.stderr
    assert pidfile.read_text() == f"{first.proc.pid}\n"
    assert first.stop() == 0
    assert not pidfile.exists()


def test_pidfile_naming_a_reused_pid_is_stale(circusd, tmp_path: Path) -> None:
    """The pid now belongs to an unrelated process that started after the file was written."""
    pidfile = tmp_path / "circusd.pid"
    pidfile.write_text("1\n")
    past = time.time() - 3600
    os.utime(pidfile, (past, past))
    squatter = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        pidfile.write_text(f"{squatter.pid}\n")
        os.utime(pidfile, (past, past))  # written an hour ago: before the squatter started
        daemon = _start_with_pidfile(circusd, pidfile)
        assert pidfile.read_text() == f"{daemon.proc.pid}\n"
        assert daemon.stop() == 0
        assert not pidfile.exists()
    finally:
        squatter.kill()
        squatter.wait(10)


def test_pidfile_naming_an_older_live_process_refuses(circusd, tmp_path: Path) -> None:
    """A live process that started before the file was written may be its writer."""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    try:
        pidfile = tmp_path / "circusd.pid"
        pidfile.write_text(f"{holder.pid}\n")
        later = time.time() + 5  # written after the holder started, whatever the clock grain
        os.utime(pidfile, (later, later))
        daemon = circusd(SLEEPER, start=False)
        second = _second(daemon.config, "--pidfile", str(pidfile))
        assert second.returncode == 1, second.stderr
        assert f"pid {holder.pid}" in second.stderr, second.stderr
        assert pidfile.read_text() == f"{holder.pid}\n"
    finally:
        holder.kill()
        holder.wait(10)


def test_pidfile_naming_a_zombie_is_stale(circusd, tmp_path: Path) -> None:
    zombie = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        import psutil

        exited = lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE  # noqa: E731
        wait_until(exited, 20, "the child to exit", interval=0.01)
        pidfile = tmp_path / "circusd.pid"
        pidfile.write_text(f"{zombie.pid}\n")
        daemon = _start_with_pidfile(circusd, pidfile)
        assert pidfile.read_text() == f"{daemon.proc.pid}\n"
    finally:
        zombie.wait(10)


def test_pidfile_of_a_killed_daemon_is_stale(circusd, tmp_path: Path) -> None:
    pidfile = tmp_path / "circusd.pid"
    first = _start_with_pidfile(circusd, pidfile)
    first.track()
    first.proc.kill()
    first.proc.wait(10)
    first.stop()  # its orphaned watcher process too
    assert pidfile.read_text() == f"{first.proc.pid}\n"
    second = _start_with_pidfile(circusd, pidfile)  # its ipc files are stale too
    assert pidfile.read_text() == f"{second.proc.pid}\n"
    assert second.stop() == 0
    assert not pidfile.exists()


def _answers(endpoint: str) -> bool:
    from circus.ctl import CircusClient
    from circus.ctl.errors import CtlError

    try:
        with CircusClient(endpoint, timeout=2) as client:
            return bool(client.call("list")["status"] == "ok")
    except CtlError:
        return False


def test_two_daemons_on_one_pidfile_at_once_leave_one(circusd, tmp_path: Path) -> None:
    pidfile = tmp_path / "circusd.pid"
    configs = []
    for name in ("a", "b"):
        d = tmp_path / name
        d.mkdir()
        (d / "circus.ini").write_text(
            f"[circus]\nendpoint = ipc://{d}/ctl\npubsub_endpoint = ipc://{d}/pub\n{SLEEPER}"
        )
        configs.append(d / "circus.ini")
    procs = [_spawn(c, "--pidfile", str(pidfile)) for c in configs]
    try:
        wait_until(lambda: any(p.poll() is not None for p in procs), 60, "one circusd refused")
        running = next(p for p in procs if p.poll() is None)
        assert pidfile.read_text() == f"{running.pid}\n"
        # serving means its signal handlers are in place: the SIGTERM below ends it cleanly
        where = configs[procs.index(running)].parent
        wait_until(lambda: _answers(f"ipc://{where}/ctl"), 60, "the running circusd to serve")
    finally:
        results = [_reap(p) for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    assert not pidfile.exists()
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


def test_pidfile_replaced_meanwhile_is_left_at_exit(circusd, tmp_path: Path) -> None:
    pidfile = tmp_path / "circusd.pid"
    daemon = _start_with_pidfile(circusd, pidfile)
    pidfile.write_text("4194000\n")  # someone else's now
    assert daemon.stop() == 0
    assert pidfile.read_text() == "4194000\n"


@pytest.mark.parametrize("content", ["", "garbage\n", "0\n", "-5\n"])
def test_unreadable_pidfile_content_is_stale(circusd, tmp_path: Path, content: str) -> None:
    pidfile = tmp_path / "circusd.pid"
    pidfile.write_text(content)
    daemon = _start_with_pidfile(circusd, pidfile)
    assert pidfile.read_text() == f"{daemon.proc.pid}\n"
