"""circusd as a process: signals, pidfile, exit codes, the upstream check."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SLEEP = f"{sys.executable} -c 'import time; time.sleep(300)'"
CIRCUSD = str(Path(sys.executable).with_name("circusd"))

WATCHERS = f"""
[watcher:sleeper]
cmd = {SLEEP}
numprocesses = 2
graceful_timeout = 5

[watcher:forker]
# its shell dies on SIGTERM, orphaning the background sleep: circusd (a subreaper) cleans it
cmd = sh -c 'sleep 300 & wait'
graceful_timeout = 5
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT])
def test_stop_signals_exit_0_and_leave_no_process(circusd, signum, e2e) -> None:
    wait_until, alive = e2e.wait, e2e.alive
    daemon = circusd(WATCHERS)
    wait_until(lambda: len(daemon.pids("sleeper")) == 2 and daemon.pids("forker"))
    wait_until(lambda: len(daemon.track()) >= 4, message="the forker's grandchild")
    pids = set(daemon.track())
    daemon.close_client()
    daemon.signal(signum)
    assert daemon.wait(30) == 0, daemon.output()
    leftovers = [p for p in pids if alive(p)]
    assert leftovers == [], daemon.output()
    assert not os.path.exists(daemon.endpoint[len("ipc://") :])


def test_pidfile_written_and_removed(circusd, tmp_path: Path) -> None:
    pidfile = tmp_path / "circusd.pid"
    daemon = circusd(WATCHERS, "--pidfile", str(pidfile))
    assert int(pidfile.read_text()) == daemon.proc.pid
    # a second daemon refuses to start on a live pidfile
    second = subprocess.run(
        [CIRCUSD, str(daemon.config), "--pidfile", str(pidfile)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 1
    assert f"names a running circusd (pid {daemon.proc.pid})" in second.stderr
    assert daemon.stop() == 0
    assert not pidfile.exists()


def test_version_usage_and_bad_config(tmp_path: Path) -> None:
    version = subprocess.run([CIRCUSD, "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.strip()
    usage = subprocess.run([CIRCUSD], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0 and "usage" in usage.stdout.lower()
    bad = tmp_path / "bad.ini"
    bad.write_text("[watcher:x]\ncmd = true\nnumprocesses = many\n")
    result = subprocess.run([CIRCUSD, str(bad)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "bad.ini" in result.stderr and "numprocesses" in result.stderr
    missing = subprocess.run(
        [CIRCUSD, str(tmp_path / "nope.ini")], capture_output=True, text=True, timeout=30
    )
    assert missing.returncode == 1


def test_refuses_to_run_beside_upstream_circus(tmp_path: Path) -> None:
    import circus.arbiter

    fake = tmp_path / "site" / "circus"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("version_info = (0, 19, 0)\n")
    (fake / "arbiter").symlink_to(Path(circus.arbiter.__file__).parent)
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    result = subprocess.run(
        [sys.executable, "-c", "from circus.arbiter.circusd import main; main()", "x.ini"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert result.returncode == 1
    assert "upstream Circus is installed" in result.stderr


def test_daemon_flag_detaches(circusd, tmp_path: Path, e2e) -> None:
    wait_until, alive = e2e.wait, e2e.alive
    pidfile = tmp_path / "d.pid"
    daemon = circusd(WATCHERS, "--daemon", "--pidfile", str(pidfile), start=False)
    daemon.start(wait=False)
    assert daemon.wait(30) == 0  # the launcher exits at once
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), message="pidfile")
    pid = int(pidfile.read_text())
    try:
        wait_until(lambda: daemon.call("numwatchers", timeout=1).get("numwatchers") == 2)
        assert daemon.call("dstats")["info"]["pid"] == pid
    finally:
        daemon.close_client()
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not alive(pid), 30, "the daemon to exit")
    assert not pidfile.exists()


def test_log_output_file_and_config_warnings(circusd, tmp_path: Path, e2e) -> None:
    logfile = tmp_path / "circusd-file.log"
    daemon = circusd(
        f"[watcher:typo]\ncmd = {SLEEP}\nnumprocess = 2\n",
        "--log-output",
        str(logfile),
        "--log-level",
        "INFO",
    )
    e2e.wait(lambda: daemon.pids("typo"))
    text = logfile.read_text()
    assert "Starting master on pid" in text
    assert "numprocesses" in text  # the loader's "did you mean" warning, logged
    assert "[DEBUG]" not in text
    assert daemon.stop() == 0


def test_sigterm_while_watchers_are_starting(circusd, e2e) -> None:
    # upstream #935: signals were ignored while watchers started; here they stop the start
    body = "[circus]\nwarmup_delay = 2\n" + "".join(
        f"\n[watcher:w{i}]\ncmd = {SLEEP}\ngraceful_timeout = 5\n" for i in range(3)
    )
    daemon = circusd(body, start=False)
    daemon.start(wait=False)
    e2e.wait(lambda: daemon.track(), 20, "the first watcher's process")
    pids = set(daemon.track())
    started = time.monotonic()
    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0, daemon.output()
    assert time.monotonic() - started < 5
    assert not [p for p in pids | daemon.descendants if e2e.alive(p)]
