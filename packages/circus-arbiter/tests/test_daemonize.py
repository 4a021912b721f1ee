"""``circusd --daemon``: the launcher exits only once the daemon serves, or reports its failure.

Each failure a foreground run reports (bad config, an endpoint in use, a second daemon on
the same pidfile) must reach the terminal of ``circusd --daemon`` with a non-zero status,
and a status of 0 must mean the control channel answers and the autostart watchers run.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from circus.arbiter import _daemonize
from circus.ctl import CircusClient
from circus.process.testing import wait_until

CIRCUSD = str(Path(sys.executable).with_name("circusd"))
SLEEP = f"{sys.executable} -c 'import time; time.sleep(300)'"


def _circusd(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CIRCUSD, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def _config(tmp_path: Path, endpoint: str, body: str = "") -> Path:
    path = tmp_path / "circus.ini"
    path.write_text(
        f"[circus]\nendpoint = {endpoint}\npubsub_endpoint = ipc://{tmp_path}/pub\n"
        f"[watcher:worker]\ncmd = {SLEEP}\nnumprocesses = 2\ngraceful_timeout = 5\n{body}"
    )
    return path


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _end(pidfile: Path) -> None:
    """SIGTERM the daemon named by ``pidfile`` (waiting a while for it to be written)."""
    try:
        wait_until(pidfile.exists, 15, "the pidfile")
    except AssertionError:
        return  # the test has failed already, saying why
    pid = int(pidfile.read_text())
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: _gone(pid), 30, "the daemon to exit")


@pytest.mark.slow
def test_status_0_means_serving_and_a_second_daemon_fails_loudly(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/ctl"
    config = _config(tmp_path, endpoint)
    pidfile = tmp_path / "circusd.pid"
    first = _circusd("--daemon", "--pidfile", str(pidfile), str(config), cwd=tmp_path)
    try:
        assert first.returncode == 0, first.stderr
        assert first.stderr == ""
        assert pidfile.exists()  # written before the launcher returned
        # no polling: exit 0 promised the control channel and the started watchers
        with CircusClient(endpoint, timeout=10) as client:
            answer = client.call("list", name="worker")
        assert len(answer["pids"]) == 2, answer
        second = _circusd("--daemon", "--pidfile", str(pidfile), str(config), cwd=tmp_path)
        foreground = _circusd("--pidfile", str(pidfile), str(config), cwd=tmp_path)
        assert second.returncode == 1
        assert second.stderr.startswith("circusd: "), second.stderr
        assert second.stderr == foreground.stderr  # the same words as a foreground run
        with CircusClient(endpoint, timeout=10) as client:  # the first one is untouched
            assert client.call("status", name="worker")["status"] == "active"
    finally:
        _end(pidfile)


def test_endpoint_in_use_is_reported(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = _config(tmp_path, f"tcp://127.0.0.1:{port}")
        result = _circusd("--daemon", str(config), cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot bind" in result.stderr and str(port) in result.stderr, result.stderr


def test_bad_config_is_reported_as_in_the_foreground(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ini"
    bad.write_text("[watcher:x]\ncmd = true\nnumprocesses = many\n")
    daemon = _circusd("--daemon", "bad.ini", cwd=tmp_path)
    foreground = _circusd("bad.ini", cwd=tmp_path)
    assert daemon.returncode == foreground.returncode == 1
    assert "bad.ini:3" in daemon.stderr and "numprocesses" in daemon.stderr
    assert daemon.stderr == foreground.stderr
    missing = _circusd("--daemon", "nope.ini", cwd=tmp_path)
    assert missing.returncode == 1 and "nope.ini" in missing.stderr


def test_a_daemon_that_dies_silently_is_a_failure(capfd: pytest.CaptureFixture[str]) -> None:
    read_fd, write_fd = os.pipe()
    os.close(write_fd)  # the daemon died before writing anything
    assert _daemonize._relay(read_fd) == 1
    assert "exited during start-up" in capfd.readouterr().err


def test_text_before_ready_is_relayed_and_ready_is_success(
    capfd: pytest.CaptureFixture[str],
) -> None:
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"a warning\n" + _daemonize.READY)
    # the write end stays open (a stray holder): ready alone must release the parent
    try:
        assert _daemonize._relay(read_fd) == 0
    finally:
        os.close(write_fd)
    assert capfd.readouterr().err == "a warning\n"
