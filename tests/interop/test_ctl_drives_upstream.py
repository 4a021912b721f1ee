"""Our circusctl drives upstream Circus 0.19's circusd: every command, each answer checked."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from circus.ctl import top
from circus.ctl.cli import main
from circus.ctl.testing.upstream import UpstreamCircus, UpstreamDaemon

pytestmark = pytest.mark.interop

Result = tuple[int, str, str]


@pytest.fixture
def ctl(
    upstream_daemon: UpstreamDaemon, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Result]:
    """Run our circusctl in-process against the upstream daemon."""

    def run(*args: str) -> Result:
        # 0.19 refuses (errno 5) a command while another holds its arbiter-wide lock, even
        # its own supervision tick (spec/protocol.md §1.5): retry those, within a deadline.
        deadline = time.monotonic() + 15
        while True:
            capsys.readouterr()
            rc = main(["--endpoint", upstream_daemon.endpoint, "--timeout", "10", *args])
            out, err = capsys.readouterr()
            if not (rc == 3 and "already running" in err) or time.monotonic() > deadline:
                return rc, out, err
            time.sleep(0.1)

    return run


def ok(result: Result) -> str:
    rc, out, err = result
    assert (rc, err) == (0, ""), f"rc={rc} err={err!r} out={out!r}"
    return out


def pids(ctl: Callable[..., Result], name: str = "sleeper") -> list[int]:
    out = ok(ctl("list", name)).strip()
    return [int(p) for p in out.split(",")] if out else []


def test_read_commands(ctl: Callable[..., Result], upstream_daemon: UpstreamDaemon) -> None:
    assert ok(ctl("list")) == "sleeper\n"
    assert ok(ctl("status")) == "sleeper: active\n"
    assert ok(ctl("status", "sleeper")) == "active\n"
    assert ok(ctl("numwatchers")) == "1\n"
    assert ok(ctl("numprocesses")) == "2\n"
    assert ok(ctl("numprocesses", "sleeper")) == "2\n"
    sleeper_pids = pids(ctl)
    assert len(sleeper_pids) == 2

    options = dict(line.split(": ", 1) for line in ok(ctl("options", "sleeper")).splitlines())
    assert options["cmd"] == "sleep 1000"
    assert options["numprocesses"] == "2"
    assert options["graceful_timeout"] == "2.0"
    assert ok(ctl("get", "sleeper", "numprocesses", "cmd")) == "numprocesses: 2\ncmd: sleep 1000\n"

    glob = dict(line.split(": ", 1) for line in ok(ctl("globaloptions")).splitlines())
    assert glob["endpoint"] == upstream_daemon.endpoint
    assert glob["pubsub_endpoint"] == upstream_daemon.pubsub_endpoint
    assert ok(ctl("globaloptions", "check_delay")).strip() == "check_delay: 1.0"

    assert re.fullmatch(r"\d+:socket 'web' at 127\.0\.0\.1:\d+\n", ok(ctl("listsockets")))

    stats = ok(ctl("stats")).splitlines()
    assert stats[0] == "sleeper:"
    assert {int(line.split(":")[0]) for line in stats[1:]} == set(sleeper_pids)
    assert all(f"{line.split(':')[0]}  sleep " in line for line in stats[1:])
    assert ok(ctl("stats", "sleeper")).splitlines()[0] == "sleeper:"
    one = ok(ctl("stats", "sleeper", str(sleeper_pids[0])))
    assert one.startswith(f"{sleeper_pids[0]}: {sleeper_pids[0]}  sleep ")
    assert one.endswith("\n\n")

    dstats = ok(ctl("dstats")).splitlines()
    assert dstats[0] == "Main Process:"
    assert re.match(r"    \d+  \S+ \S+ -?\d+ \S+ \S+ [\d.]+ [\d.]+ \S+$", dstats[1])


def test_json_answers(ctl: Callable[..., Result]) -> None:
    answer = json.loads(ok(ctl("--json", "status")))
    assert answer["status"] == "ok" and answer["statuses"] == {"sleeper": "active"}
    rc, out, _ = ctl("--json", "status", "nosuch")
    assert rc == 0 and json.loads(out)["errno"] == 3


def test_errors(ctl: Callable[..., Result]) -> None:
    rc, out, err = ctl("status", "nosuch")
    assert (rc, out) == (3, "") and err == "error: program nosuch not found\n"
    rc, _, err = ctl("get", "sleeper", "bogus")
    assert rc == 3 and "'bogus' option not found" in err
    rc, _, err = ctl("logs")  # 0.19 has no logs command
    assert rc == 3 and "no 'logs' command" in err


def test_incr_decr(ctl: Callable[..., Result], poll: Callable[..., Any]) -> None:
    assert ok(ctl("incr", "sleeper", "--waiting")) == "3\n"
    assert ok(ctl("incr", "sleeper", "2", "--waiting")) == "5\n"
    assert ok(ctl("decr", "sleeper", "3", "--waiting")) == "2\n"
    assert ok(ctl("incr", "sleeper")) == "ok\n"
    poll(lambda: ok(ctl("numprocesses", "sleeper")) == "3\n", message="3 processes")


def test_stop_start_restart_reload(ctl: Callable[..., Result], poll: Callable[..., Any]) -> None:
    before = set(pids(ctl))
    assert ok(ctl("stop", "sleeper", "--waiting")) == "ok\n"
    assert ok(ctl("status", "sleeper")) == "stopped\n"
    assert pids(ctl) == []
    assert ok(ctl("start", "sleep*", "--waiting")) == "ok\n"
    assert ok(ctl("status", "sleeper")) == "active\n"
    started = set(pids(ctl))
    assert len(started) == 2 and not started & before
    assert ok(ctl("restart", "sleeper", "--waiting", "--match", "simple")) == "ok\n"
    restarted = set(pids(ctl))
    assert len(restarted) == 2 and not restarted & started
    assert ok(ctl("reload", "sleeper", "--waiting")) == "ok\n"
    poll(lambda: len(pids(ctl)) == 2 and not set(pids(ctl)) & restarted, message="reloaded pids")
    assert ok(ctl("reload", "sleeper", "--sequential", "--waiting")) == "ok\n"
    assert ok(ctl("status", "sleeper")) == "active\n"
    assert ok(ctl("reloadconfig", "--waiting")) == "ok\n"  # same file: nothing changes
    assert ok(ctl("list")) == "sleeper\n"


def test_add_set_get_rm(ctl: Callable[..., Result], poll: Callable[..., Any]) -> None:
    assert ok(ctl("add", "--start", "extra", "sleep", "500")) == "ok\n"
    poll(lambda: ok(ctl("status", "extra")) == "active\n", message="extra active")
    assert ok(ctl("get", "extra", "cmd")) == "cmd: sleep 500\n"
    assert (
        ok(ctl("set", "extra", "numprocesses", "2", "graceful_timeout", "1.5", "--waiting"))
        == "ok\n"
    )
    poll(lambda: len(pids(ctl, "extra")) == 2, message="two extra processes")
    assert ok(ctl("get", "extra", "graceful_timeout")) == "graceful_timeout: 1.5\n"
    # 0.19's own circusctl crashes on this one.
    assert ok(ctl("set", "extra", "env", "FOO=bar,BAZ=1", "--waiting")) == "ok\n"
    assert ok(ctl("get", "extra", "env")) == "env: BAZ=1,FOO=bar\n"
    assert ok(ctl("rm", "extra", "--waiting")) == "ok\n"
    poll(lambda: ok(ctl("list")) == "sleeper\n", message="extra removed")


@pytest.mark.slow
def test_signal_and_kill(ctl: Callable[..., Result], poll: Callable[..., Any]) -> None:
    first, second = pids(ctl)
    assert ok(ctl("signal", "sleeper", str(first), "TERM")) == "ok\n"
    poll(lambda: first not in pids(ctl) and len(pids(ctl)) == 2, message="respawn after TERM")
    assert ok(ctl("signal", "sleeper", "CONT")) == "ok\n"  # harmless, to every process
    assert ok(ctl("kill", "sleeper", str(second), "--graceful_timeout", "1")) == "ok\n"
    poll(lambda: second not in pids(ctl) and len(pids(ctl)) == 2, message="respawn after kill")
    rc, _, err = ctl("signal", "sleeper", "NOTASIGNAL")
    assert rc == 1 and "unknown signal" in err


@pytest.mark.slow
def test_listen_sees_events(
    upstream_daemon: UpstreamDaemon, our_ctl: Callable[..., Any], ctl: Callable[..., Result]
) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "circus.ctl.cli",
            "--endpoint",
            upstream_daemon.pubsub_endpoint,
            "--json",
            "listen",
            "--count",
            "1",
            "watcher.sleeper.spawn",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # Keep causing spawns until the subscriber (which joins asynchronously) reports one.
        for _ in range(100):
            ok(ctl("incr", "sleeper", "--waiting"))
            ok(ctl("decr", "sleeper", "--waiting"))
            if proc.poll() is not None:
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    message = json.loads(out)
    assert message["topic"] == "watcher.sleeper.spawn"
    assert isinstance(message["payload"]["process_pid"], int)


@pytest.mark.slow
def test_installed_script_and_quit(upstream_daemon: UpstreamDaemon) -> None:
    script = Path(sys.executable).with_name("circusctl")
    argv = [str(script), "--endpoint", upstream_daemon.endpoint, "--timeout", "15"]
    listing = subprocess.run([*argv, "list"], capture_output=True, text=True, timeout=60)
    assert (listing.returncode, listing.stdout) == (0, "sleeper\n")
    quit_ = subprocess.run([*argv, "quit", "--waiting"], capture_output=True, text=True, timeout=60)
    assert (quit_.returncode, quit_.stdout) == (0, "ok\n")
    assert upstream_daemon.process is not None
    assert upstream_daemon.process.wait(30) == 0


@pytest.mark.slow
def test_top_once_on_upstream_stats(upstream_circus: UpstreamCircus, tmp_path: Path) -> None:
    watchers = {"sleeper": {"cmd": "sleep 1000", "numprocesses": 2}}
    with UpstreamDaemon(upstream_circus, tmp_path / "s", watchers, statsd=True) as daemon:
        import io

        buffer = io.StringIO()
        rc = top.main(["--ctl-endpoint", daemon.endpoint, "--once", "--wait", "20"], stdout=buffer)
        rows = [line.split() for line in buffer.getvalue().splitlines()]
    assert rc == 0
    assert rows[0] == ["WATCHER", "PID", "COMMAND", "CPU%", "MEM%", "AGE"]
    names = {row[0] for row in rows[1:]}
    assert "sleeper" in names
    assert [r for r in rows if r[:1] == ["sleeper"]][-1][:3] == ["sleeper", "(2)", "total"]
