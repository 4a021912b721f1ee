"""The configs the bench generates for each daemon, its /proc helpers and launch timing,
without real daemons."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from benchkit import procs  # noqa: E402 - bench/ is not a package
from benchkit.backends import ProgramSpec  # noqa: E402
from benchkit.backends.circus import OursBackend, UpstreamBackend, render_ini  # noqa: E402
from benchkit.backends.daemon import PYCACHE, DaemonSession, daemon_env  # noqa: E402
from benchkit.backends.supervisor import render_conf  # noqa: E402


def parse(text: str) -> configparser.RawConfigParser:
    cp = configparser.RawConfigParser()
    cp.read_string(text)
    return cp


def test_circus_ini_turns_backoff_off_only_where_asked_and_only_for_ours(tmp_path: Path) -> None:
    spec = ProgramSpec("w", ("/bin/sleep", "3600"), "sleep", 3, no_backoff=True)
    ours = parse(render_ini(spec, "ipc://c", "ipc://p", OursBackend.no_backoff))
    assert ours["watcher:w"]["backoff_initial"] == "0"
    assert ours["watcher:w"]["numprocesses"] == "3"
    assert ours["watcher:w"]["autostart"] == "false"
    assert ours["circus"]["multicast_endpoint"] == ""  # no UDP socket on 0.0.0.0
    upstream = parse(render_ini(spec, "ipc://c", "ipc://p", UpstreamBackend().no_backoff))
    assert "backoff_initial" not in upstream["watcher:w"]
    plain = ProgramSpec("w", ("/bin/sleep", "3600"), "sleep", 3)
    assert (
        "backoff_initial"
        not in parse(render_ini(plain, "c", "p", OursBackend.no_backoff))["watcher:w"]
    )


def test_circus_ini_sends_stdout_to_a_file_stream(tmp_path: Path) -> None:
    spec = ProgramSpec("p", ("/usr/bin/python3", "x y.py"), "python3", 1, False, tmp_path / "o")
    w = parse(render_ini(spec, "c", "p"))["watcher:p"]
    assert (w["stdout_stream.class"], w["stdout_stream.filename"]) == (
        "FileStream",
        f"{tmp_path}/o",
    )
    assert (w["cmd"], w["args"], w["respawn"]) == ("/usr/bin/python3", "'x y.py'", "false")


def test_supervisor_conf_escapes_percent_and_names_each_process(tmp_path: Path) -> None:
    spec = ProgramSpec("g", ("/bin/echo", "100%"), "echo", 4)
    text = render_conf(spec, tmp_path / "s.sock", tmp_path)
    prog = parse(text)["program:g"]
    assert prog["command"] == "/bin/echo 100%%"
    assert prog["numprocs"] == "4" and "%(process_num)d" in prog["process_name"]
    assert prog["stdout_logfile"] == "NONE" and prog["autorestart"] == "true"


def test_running_children_counts_exec_d_live_children_only() -> None:
    kids = [subprocess.Popen(["sleep", "30"]) for _ in range(3)]
    try:
        mine = procs.running_children(os.getpid(), "sleep")
        assert {k.pid for k in kids} <= mine
        kids[0].kill()
        kids[0].wait()
        assert kids[0].pid not in procs.running_children(os.getpid(), "sleep")
        assert procs.comm_state(kids[1].pid)[0] == "sleep"  # type: ignore[index]
        known = procs.identify([k.pid for k in kids])
        assert set(known) == {kids[1].pid, kids[2].pid}  # the reaped one is gone
    finally:
        for k in kids:
            k.kill()
            k.wait()


def test_autostart_reaches_both_configs(tmp_path: Path) -> None:
    spec = ProgramSpec("w", ("/bin/sleep", "3600"), "sleep", 2, autostart=True)
    assert parse(render_ini(spec, "c", "p"))["watcher:w"]["autostart"] == "true"
    prog = parse(render_conf(spec, tmp_path / "s.sock", tmp_path))["program:w"]
    assert (prog["autostart"], prog["startsecs"]) == ("true", "0")
    plain = ProgramSpec("w", ("/bin/sleep", "3600"), "sleep", 2)
    assert parse(render_ini(plain, "c", "p"))["watcher:w"]["autostart"] == "false"


def test_daemons_get_a_bytecode_cache_whatever_the_caller_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    env = daemon_env()
    assert "PYTHONDONTWRITEBYTECODE" not in env
    assert env["PYTHONPYCACHEPREFIX"] == str(PYCACHE)


def test_launch_is_timed_from_exec_to_every_copy_running(tmp_path: Path) -> None:
    # A stand-in "daemon": a shell that starts three sleeps, one of them late.
    script = "sleep 30 & sleep 30 & (sleep 0.3; exec sleep 30) & wait"
    spec = ProgramSpec("w", ("/bin/sleep",), "sleep", 3, autostart=True)

    class Shell(DaemonSession):
        def start(self, wait: bool = True) -> None:
            raise NotImplementedError

        def stop(self) -> None:
            raise NotImplementedError

        def ask_quit(self) -> None:
            self.proc.terminate()

    with Shell(spec, tmp_path, ["/bin/sh", "-c", script], "sh.log") as sess:
        assert sess.launch_took is not None and sess.launch_took >= 0.3
        assert len(sess.pids()) == 3
        kids = sess.pids()
    for pid in kids:
        procs.wait_for(lambda pid=pid: procs.comm_state(pid) is None, 30, f"pid {pid} gone")
