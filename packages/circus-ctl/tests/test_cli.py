"""circusctl: requests sent, plain and JSON output, exit codes, help for mistakes."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
from circus.ctl import protocol
from circus.ctl.cli import main
from circus.ctl.testing import FakeDaemon

Ctl = Callable[..., tuple[int, str, str]]


@pytest.mark.parametrize(
    ("argv", "command", "properties"),
    [
        (["list"], "list", {}),
        (["list", "w1"], "list", {"name": "w1"}),
        (["status", "w1"], "status", {"name": "w1"}),
        (["numwatchers"], "numwatchers", {}),
        (["start"], "start", {"waiting": False, "match": "glob"}),
        (
            ["stop", "w*", "--waiting", "--match", "regex"],
            "stop",
            {"name": "w*", "waiting": True, "match": "regex"},
        ),
        (["restart", "w1"], "restart", {"name": "w1", "waiting": False, "match": "glob"}),
        (
            ["reload", "w1", "--terminate", "--sequential"],
            "reload",
            {"name": "w1", "graceful": False, "waiting": False, "sequential": True},
        ),
        (["reloadconfig", "--waiting"], "reloadconfig", {"waiting": True}),
        (["quit"], "quit", {"waiting": False}),
        (["incr", "w1"], "incr", {"name": "w1", "waiting": False}),
        (["decr", "w1", "3", "--waiting"], "decr", {"name": "w1", "nb": 3, "waiting": True}),
        (
            ["get", "w1", "numprocesses", "cmd"],
            "get",
            {"name": "w1", "keys": ["numprocesses", "cmd"]},
        ),
        (["options", "w1"], "options", {"name": "w1"}),
        (["globaloptions", "check_delay"], "globaloptions", {"option": "check_delay"}),
        (
            ["add", "--start", "w2", "sleep 10"],
            "add",
            {"name": "w2", "cmd": "sleep 10", "start": True},
        ),
        (
            ["add", "w2", "sh", "-c", "echo a b"],
            "add",
            {"name": "w2", "cmd": "sh -c 'echo a b'", "start": False},
        ),
        # 0.19 dropped --waiting and --nostop here.
        (
            ["rm", "w1", "--waiting", "--nostop"],
            "rm",
            {"name": "w1", "waiting": True, "nostop": True},
        ),
        (
            ["signal", "w1", "HUP"],
            "signal",
            {"name": "w1", "children": False, "recursive": False, "signum": "HUP"},
        ),
        (
            ["signal", "w1", "123", "9", "--children"],
            "signal",
            {"name": "w1", "children": True, "recursive": False, "signum": 9, "pid": 123},
        ),
        # 0.19 sent pid and graceful_timeout as strings (breaking the SIGKILL escalation).
        (
            ["kill", "w1", "456", "--signum", "KILL", "--graceful_timeout", "3"],
            "kill",
            {"name": "w1", "pid": 456, "signum": 9, "graceful_timeout": 3.0, "waiting": False},
        ),
        (["stats"], "stats", {"extended": False}),
        (
            ["stats", "--extended", "w1", "12"],
            "stats",
            {"extended": True, "name": "w1", "process": 12},
        ),
        (["dstats"], "dstats", {}),
        (["listsockets"], "listsockets", {}),
        (
            ["set", "w1", "numprocesses", "3", "graceful_timeout", "2.5", "send_hup", "yes"],
            "set",
            {
                "name": "w1",
                "options": {"numprocesses": 3, "graceful_timeout": 2.5, "send_hup": True},
            },
        ),
        # 0.19 crashed on env; values starting with '-' work too.
        (
            ["set", "w1", "env", "A=1,B=x=y", "args", "-v", "--waiting"],
            "set",
            {
                "name": "w1",
                "options": {"env": {"A": "1", "B": "x=y"}, "args": "-v"},
                "waiting": True,
            },
        ),
        (
            ["set", "w1", "stop_signal", "QUIT", "hooks", "before_start:m.f,after_stop:m.g"],
            "set",
            {
                "name": "w1",
                "options": {
                    "stop_signal": 3,
                    "hooks": {"before_start": "m.f", "after_stop": "m.g"},
                },
            },
        ),
        # depends_on (ours): a comma-separated list of watchers, none when empty
        (
            ["set", "w1", "depends_on", "db, cache", "numprocesses", "2"],
            "set",
            {"name": "w1", "options": {"depends_on": ["db", "cache"], "numprocesses": 2}},
        ),
        (["set", "w1", "depends_on", ""], "set", {"name": "w1", "options": {"depends_on": []}}),
    ],
)
def test_requests(
    ctl: Ctl, daemon: FakeDaemon, argv: list[str], command: str, properties: dict
) -> None:
    rc, _, err = ctl(*argv)
    assert rc == 0, err
    request = daemon.requests[-1]
    assert request["command"] == command
    assert request["properties"] == properties
    # What the CLI sends is valid by the protocol table the daemon validates with.
    protocol.validate_properties(command, request["properties"])


# Expected plain outputs: the layouts printed by Circus 0.19's circusctl for the same answers
# (tests/interop/test_ctl_output_parity.py checks them against the real one).
@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["status"], "circusd-stats: active\nechoer: stopped\nsleeper: active\n"),
        (["status", "sleeper"], "active\n"),
        (["list"], "circusd-stats,echoer,sleeper\n"),
        (["list", "sleeper"], "7692,7693\n"),
        (["numprocesses"], "4\n"),
        (["numwatchers"], "3\n"),
        (["incr", "sleeper"], "ok\n"),
        (["incr", "sleeper", "--waiting"], "5\n"),
        (["start"], "ok\n"),
        (
            ["options", "sleeper"],
            "numprocesses: 2\ncmd: sleep 1000\nenv: A=1,B=2\nuid: \nshell: False\n"
            "stdout_stream_conf: {}\n__name__: watcher:sleeper\n",
        ),
        (["get", "sleeper", "numprocesses", "cmd"], "numprocesses: 2\ncmd: sleep 1000\n"),
        (
            ["globaloptions"],
            "endpoint: ipc:///x/ctrl.sock\nstats_endpoint: ipc:///x/stats.sock\n"
            "pubsub_endpoint: ipc:///x/pub.sock\ncheck_delay: 1.0\nmulticast_endpoint: \n",
        ),
        (["listsockets"], "6:socket 'web' at 127.0.0.1:44179\n7:socket 'unix' at /tmp/x.sock\n"),
        (["dstats"], "Main Process:\n    7686  python root 0 33.61M 2.44M 0.0 0.006 0:00.0\n"),
        (
            ["stats"],
            "echoer:\n7690: 7690  sh root 0 1.65M 2.53M 0.0 0.007 0:00.0\n"
            "   7750  sleep root 0 1.50M 2.44M 0.0 0.006 0:00.0\n"
            "sleeper:\n7692: 7692  sleep root 0 1.52M 2.44M 0.0 0.006 0:00.0\n",
        ),
        (["stats", "sleeper"], "sleeper:\n7692: 7692  sleep root 0 1.52M 2.44M 0.0 0.006 0:00.0\n"),
        (
            ["stats", "echoer", "7690"],
            "7690: 7690  sh root 0 1.65M 2.53M 0.0 0.007 0:00.0\n"
            "   7750  sleep root 0 1.50M 2.44M 0.0 0.006 0:00.0\n\n",
        ),
    ],
)
def test_plain_output(ctl: Ctl, argv: list[str], expected: str) -> None:
    rc, out, err = ctl(*argv)
    assert (rc, err) == (0, "")
    assert out == expected


def test_error_answer_exit_3_and_reason_on_stderr(ctl: Ctl) -> None:
    rc, out, err = ctl("ipython")
    assert rc == 3
    assert out == ""
    assert err.startswith("error: unknown command: 'ipython'")


def test_json_prints_raw_answer_even_for_errors(ctl: Ctl) -> None:
    rc, out, _ = ctl("--json", "status")
    assert rc == 0
    answer = json.loads(out)
    assert answer["statuses"]["sleeper"] == "active"
    rc, out, _ = ctl("--json", "ipython")
    assert rc == 0  # as 0.19: --json exits 0 and the caller reads "status"
    assert json.loads(out)["errno"] == 2
    rc, out, _ = ctl("--prettify", "numwatchers")
    assert out.startswith("{\n  ")
    assert json.loads(out)["numwatchers"] == 3


@pytest.mark.parametrize(
    "command", ["status", "list", "stats", "dstats", "listsockets", "globaloptions"]
)
def test_json_for_every_read_command(ctl: Ctl, command: str) -> None:
    rc, out, _ = ctl("--json", command)
    assert rc == 0
    assert json.loads(out)["status"] == "ok"
    assert "\x1b[" not in out


def test_unknown_command_suggests_closest(ctl: Ctl) -> None:
    rc, out, err = ctl("stauts")
    assert rc == 2
    assert "unknown command 'stauts'" in err
    assert "Did you mean 'status'?" in err


def test_missing_argument_is_explained_not_a_traceback(ctl: Ctl) -> None:
    rc, _, err = ctl("incr")
    assert rc == 1
    assert "NAME" in err and "usage: circusctl incr NAME [N] [--waiting]" in err
    assert "Traceback" not in err
    rc, _, err = ctl("set", "w1", "numprocesses")
    assert rc == 1 and "missing the VALUE for 'numprocesses'" in err


def test_bad_values_are_explained(ctl: Ctl, daemon: FakeDaemon) -> None:
    rc, _, err = ctl("set", "w1", "numprocesess", "3")
    assert rc == 1 and "did you mean 'numprocesses'" in err
    rc, _, err = ctl("set", "w1", "numprocesses", "many")
    assert rc == 1 and "numprocesses must be an integer" in err
    rc, _, err = ctl("signal", "w1", "SIGBOGUS")
    assert rc == 1 and "unknown signal" in err
    assert "set" not in daemon.commands() and "signal" not in daemon.commands()


def test_global_option_after_command_gets_a_hint(ctl: Ctl) -> None:
    rc, _, err = ctl("status", "--json")
    assert rc == 2
    assert "--json is a global option" in err


def test_unreachable_daemon_names_endpoint_fast(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"ipc://{tmp_path / 'nobody.sock'}"
    started = time.monotonic()
    rc = main(["--endpoint", endpoint, "--timeout", "0.5", "status"])
    _, err = capsys.readouterr()
    assert time.monotonic() - started < 3
    assert rc == 1
    assert endpoint in err and "Is circusd running?" in err
    assert "Traceback" not in err


def test_endpoint_from_environment(daemon: FakeDaemon, monkeypatch, capsys) -> None:
    monkeypatch.setenv("CIRCUSCTL_ENDPOINT", daemon.endpoint)
    assert main(["numwatchers"]) == 0
    assert capsys.readouterr().out == "3\n"


def test_timeout_when_daemon_is_silent(fake_daemon, capsys) -> None:
    daemon = fake_daemon({"list": lambda r: None})
    assert main(["--endpoint", daemon.endpoint, "--timeout", "0.5", "list"]) == 1
    assert "timed out" in capsys.readouterr().err


def test_version_and_help(capsys) -> None:
    from circus.ctl import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"circusctl {__version__}\n"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("add", "logs", "listen", "stats", "status", "stop"):
        assert f"\n  {command} " in out
    assert main(["--help", "kill"]) == 0
    assert "--graceful_timeout" in capsys.readouterr().out
    assert main(["help", "logs"]) == 0
    assert "--follow" in capsys.readouterr().out


def test_ssh_without_tunnel_library_says_so(daemon: FakeDaemon, capsys) -> None:
    from circus.ctl._core import ssh_tunnel_library

    if ssh_tunnel_library() is not None:
        pytest.skip("paramiko or pexpect is installed")
    rc = main(["--endpoint", daemon.endpoint, "--ssh", "me@host:22", "status"])
    assert rc == 1
    assert "--ssh needs paramiko or pexpect" in capsys.readouterr().err


def test_no_colour_when_piped_colour_on_tty_and_no_color(monkeypatch) -> None:
    from circus.ctl.cli._color import Palette, use_color

    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert use_color(Tty()) is True
    assert use_color(Tty(), json_mode=True) is False
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(Tty()) is False
    assert Palette(True).state("active") == "\x1b[32mactive\x1b[0m"
    assert Palette(False).state("active") == "active"


def test_colour_on_a_real_terminal(daemon: FakeDaemon) -> None:
    import os
    import pty
    import subprocess
    import sys

    leader, follower = pty.openpty()
    try:
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
        env["TERM"] = "xterm"
        argv = [sys.executable, "-m", "circus.ctl.cli", "--endpoint", daemon.endpoint, "status"]
        proc = subprocess.run(argv, stdout=follower, stderr=subprocess.PIPE, env=env, timeout=30)
        assert proc.returncode == 0
        data = os.read(leader, 65536).decode()
    finally:
        os.close(leader)
        os.close(follower)
    assert "\x1b[32mactive\x1b[0m" in data
    piped = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=30)
    assert "\x1b[" not in piped.stdout and "active" in piped.stdout


def test_interactive_shell_runs_commands_from_stdin(daemon: FakeDaemon, ctl_process) -> None:
    import subprocess

    proc = ctl_process("--endpoint", daemon.endpoint, stdin=subprocess.PIPE)
    out, err = proc.communicate("list\nstauts\nhelp incr\nnumwatchers\nexit\n", timeout=30)
    assert proc.returncode == 0
    lines = out.splitlines()
    assert lines[0].startswith("circusctl ")
    assert "sleeper: active" in lines  # status printed first, as 0.19 does
    assert "circusd-stats,echoer,sleeper" in lines
    assert "3" in lines
    assert "usage: circusctl incr NAME [N] [--waiting]" in out
    assert "Did you mean 'status'?" in err
    assert daemon.commands() == ["status", "list", "numwatchers"]


def test_shell_completion(daemon: FakeDaemon) -> None:
    from circus.ctl.cli._app import Context
    from circus.ctl.cli._shell import CircusShell

    ctx = Context(endpoint=daemon.endpoint, timeout=3)
    try:
        shell = CircusShell(ctx)
        assert shell.completenames("sta") == ["start", "stats", "status"]
        assert shell.complete_incr("sl", "incr sl", 5, 7) == ["sleeper"]
        assert shell.complete_stop("--", "stop --", 5, 7) == ["--waiting", "--match"]
        assert shell.complete_help("li", "help li", 5, 7) == ["list", "listen", "listsockets"]
    finally:
        ctx.close()


def test_bash_completion_protocol(monkeypatch, capsys) -> None:
    monkeypatch.setenv("AUTO_COMPLETE", "1")
    monkeypatch.setenv("COMP_WORDS", "circusctl --timeout 3 sta")
    monkeypatch.setenv("COMP_CWORD", "3")
    assert main([]) == 0
    assert capsys.readouterr().out == "start stats status\n"
    monkeypatch.setenv("COMP_WORDS", "circusctl status w")
    monkeypatch.setenv("COMP_CWORD", "2")
    assert main([]) == 0
    assert capsys.readouterr().out == "\n"


def test_json_mode_reports_transport_errors_as_json(tmp_path, capsys) -> None:
    endpoint = f"ipc://{tmp_path / 'nobody.sock'}"
    assert main(["--endpoint", endpoint, "--timeout", "0.3", "--json", "list"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "error"
    assert report["endpoint"] == endpoint
    assert endpoint in report["reason"]
