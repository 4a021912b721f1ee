"""[watcher:NAME] sections (spec/config.md §4, §6): kwargs for circus.watcher.Watcher."""

from __future__ import annotations

import os
import pwd
import signal
import textwrap
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter.config import ConfigError, ConfigWarning, load_config


def write(tmp_path: Path, text: str, name: str = "circus.ini") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def watcher_kwargs(tmp_path: Path, body: str, **load: Any) -> dict[str, Any]:
    path = write(tmp_path, "[watcher:w]\n" + textwrap.dedent(body).lstrip("\n"))
    config = load_config(path, environ=load.get("environ", {}))
    assert len(config.watchers) == 1
    return config.watchers[0].kwargs


DEFAULTS = {
    "name": "w",
    "cmd": "run",
    "args": None,
    "numprocesses": 1,
    "warmup_delay": 0.0,
    "working_dir": None,
    "shell": False,
    "shell_args": None,
    "uid": None,
    "gid": None,
    "send_hup": False,
    "stop_signal": signal.SIGTERM,
    "stop_children": False,
    "env": {},
    "graceful_timeout": 30.0,
    "rlimits": {},
    "executable": None,
    "stdout_stream": None,
    "stderr_stream": None,
    "priority": 0,
    "singleton": False,
    "use_sockets": False,
    "copy_env": False,
    "copy_path": False,
    "max_age": 0,
    "max_age_variance": 30,
    "hooks": {},
    "respawn": True,
    "autostart": True,
    "on_demand": False,
    "virtualenv": None,
    "stdin_socket": None,
    "close_child_stdin": True,
    "close_child_stdout": False,
    "close_child_stderr": False,
    "virtualenv_py_ver": None,
    "umask": None,
    "max_retry": 5,
}


def test_defaults(tmp_path: Path) -> None:
    assert watcher_kwargs(tmp_path, "cmd = run") == DEFAULTS


def test_every_core_option_typed(tmp_path: Path) -> None:
    user = pwd.getpwuid(os.getuid()).pw_name
    kwargs = watcher_kwargs(
        tmp_path,
        f"""
        cmd = python -m http.server
        args = --bind 127.0.0.1
        numprocesses = 4
        warmup_delay = 0.5
        working_dir = /tmp
        shell = true
        shell_args = -e
        uid = {user}
        gid = 0
        send_hup = yes
        stop_signal = quit
        stop_children = on
        graceful_timeout = 2.5
        executable = /usr/bin/python3
        priority = -3
        use_sockets = 1
        copy_env = True
        copy_path = TRUE
        max_age = 3600
        max_age_variance = 10
        respawn = false
        autostart = no
        on_demand = off
        virtualenv = /srv/venv
        virtualenv_py_ver = 3.11
        close_child_stdin = false
        close_child_stdout = true
        close_child_stderr = true
        umask = 022
        max_retry = -1
        """,
    )
    assert kwargs == {
        **DEFAULTS,
        "cmd": "python -m http.server",
        "args": "--bind 127.0.0.1",
        "numprocesses": 4,
        "warmup_delay": 0.5,
        "working_dir": "/tmp",
        "shell": True,
        "shell_args": "-e",
        "uid": user,
        "gid": 0,
        "send_hup": True,
        "stop_signal": signal.SIGQUIT,
        "stop_children": True,
        "graceful_timeout": 2.5,
        "executable": "/usr/bin/python3",
        "priority": -3,
        "use_sockets": True,
        "copy_env": True,
        "copy_path": True,
        "max_age": 3600,
        "max_age_variance": 10,
        "respawn": False,
        "autostart": False,
        "on_demand": False,
        "virtualenv": "/srv/venv",
        "virtualenv_py_ver": "3.11",
        "close_child_stdin": False,
        "close_child_stdout": True,
        "close_child_stderr": True,
        "umask": 0o022,
        "max_retry": -1,
    }
    assert type(kwargs["stop_signal"]) is int


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("15", 15),
        ("TERM", signal.SIGTERM),
        ("SIGTERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        (" SigInt ", signal.SIGINT),
        ("SIGRTMIN+2", signal.SIGRTMIN + 2),
        ("RTMAX-1", signal.SIGRTMAX - 1),
    ],
)
def test_signals(tmp_path: Path, text: str, number: int) -> None:
    assert watcher_kwargs(tmp_path, f"cmd = run\nstop_signal = {text}")["stop_signal"] == number


def test_numeric_uid_and_zero_processes(tmp_path: Path) -> None:
    kwargs = watcher_kwargs(tmp_path, "cmd = run\nuid = 12345\nnumprocesses = 0")
    assert kwargs["uid"] == 12345
    assert kwargs["numprocesses"] == 0


def test_hooks(tmp_path: Path) -> None:
    kwargs = watcher_kwargs(
        tmp_path,
        """
        cmd = run
        hooks.before_start = my.hooks.check
        hooks.after_spawn = my.hooks:spawned, true
        hooks.after_reap = pkg.mod.fn , False
        """,
    )
    assert kwargs["hooks"] == {
        "before_start": ("my.hooks.check", False),
        "after_spawn": ("my.hooks:spawned", True),
        "after_reap": ("pkg.mod.fn", False),
    }


def test_rlimits(tmp_path: Path) -> None:
    kwargs = watcher_kwargs(
        tmp_path, "cmd = run\nrlimit_nofile = 4096\nrlimit_CORE =\nrlimit_nproc = -1"
    )
    assert kwargs["rlimits"] == {"nofile": 4096, "core": -1, "nproc": -1}


def test_free_form_options_flapping_and_check_flapping(tmp_path: Path) -> None:
    kwargs = watcher_kwargs(
        tmp_path,
        """
        cmd = run
        flapping.attempts = 3
        flapping.window = 1.5
        check_flapping = false
        my_plugin_key = some value
        """,
    )
    assert kwargs["flapping.attempts"] == "3"
    assert kwargs["flapping.window"] == "1.5"
    assert kwargs["check_flapping"] is False
    assert kwargs["my_plugin_key"] == "some value"


@pytest.mark.parametrize(
    ("line", "suggestion"),
    [
        ("numprocess = 3", "numprocesses"),
        ("NumProcesses = 3", "numprocesses"),
        ("gracefull_timeout = 3", "graceful_timeout"),
        ("backof_max = 3", "backoff_max"),
        ("stdout_steam.class = FileStream", "stdout_stream"),
        ("flapping.atempts = 3", "attempts"),
        ("hook.before_start = a.b", "hooks"),
    ],
)
def test_typo_warns_and_keeps_free_form(tmp_path: Path, line: str, suggestion: str) -> None:
    option, _, value = line.partition(" = ")
    with pytest.warns(ConfigWarning, match=rf"circus.ini:3: \[watcher:w\] {option}:") as rec:
        kwargs = watcher_kwargs(tmp_path, f"cmd = run\n{line}")
    assert f"did you mean {suggestion!r}" in str(rec[0].message)
    assert len(rec) == 1
    assert kwargs[option] == value
    assert kwargs["numprocesses"] == 1


def test_file_stream(tmp_path: Path) -> None:
    kwargs = watcher_kwargs(
        tmp_path,
        """
        cmd = run
        stdout_stream.class = FileStream
        stdout_stream.filename = out.log
        stdout_stream.max_bytes = 1024
        stdout_stream.backup_count = 2
        stdout_stream.time_format = %H:%M
        stdout_stream.refresh_time = 0.3
        stderr_stream.filename = err.log
        """,
    )
    assert kwargs["stdout_stream"] == {
        "class": "FileStream",
        "filename": "out.log",
        "max_bytes": 1024,
        "backup_count": 2,
        "time_format": "%H:%M",
    }
    assert kwargs["stderr_stream"] == {"class": "FileStream", "filename": "err.log"}


def test_timed_rotating_stream_quirks_fixed(tmp_path: Path) -> None:
    """utc = False is false (upstream: any non-empty string was true); rotate_when any case."""
    kwargs = watcher_kwargs(
        tmp_path,
        """
        cmd = run
        stdout_stream.class = TimedRotatingFileStream
        stdout_stream.filename = out.log
        stdout_stream.rotate_when = midnight
        stdout_stream.rotate_interval = 2
        stdout_stream.utc = False
        stderr_stream.class = timedrotatingfilestream
        stderr_stream.filename = err.log
        stderr_stream.rotate_when = w6
        stderr_stream.utc = yes
        """,
    )
    assert kwargs["stdout_stream"] == {
        "class": "TimedRotatingFileStream",
        "filename": "out.log",
        "rotate_when": "MIDNIGHT",
        "rotate_interval": 2,
        "utc": False,
    }
    assert kwargs["stderr_stream"]["class"] == "TimedRotatingFileStream"
    assert kwargs["stderr_stream"]["rotate_when"] == "W6"
    assert kwargs["stderr_stream"]["utc"] is True


def test_other_streams_and_custom_class(tmp_path: Path) -> None:
    kwargs = watcher_kwargs(
        tmp_path,
        """
        cmd = run
        stdout_stream.class = circus.stream.FancyStdoutStream
        stdout_stream.color = red
        stderr_stream.class = my.streams.Sink
        stderr_stream.max_bytes = lots
        stderr_stream.whatever = 1
        """,
    )
    assert kwargs["stdout_stream"] == {"class": "FancyStdoutStream", "color": "red"}
    assert kwargs["stderr_stream"] == {
        "class": "my.streams.Sink",
        "max_bytes": "lots",
        "whatever": "1",
    }


def test_unknown_option_of_builtin_stream_is_dropped_with_warning(tmp_path: Path) -> None:
    with pytest.warns(ConfigWarning, match="StdoutStream takes no option 'color'"):
        kwargs = watcher_kwargs(
            tmp_path, "cmd = run\nstdout_stream.class = StdoutStream\nstdout_stream.color = red"
        )
    assert kwargs["stdout_stream"] == {"class": "StdoutStream"}
    with pytest.warns(ConfigWarning, match="did you mean 'max_bytes'"):
        kwargs = watcher_kwargs(
            tmp_path, "cmd = run\nstdout_stream.filename = x\nstdout_stream.max_byte = 1"
        )
    assert kwargs["stdout_stream"] == {"class": "FileStream", "filename": "x"}


def test_env_and_circus_variables(tmp_path: Path) -> None:
    kwargs = watcher_kwargs(
        tmp_path,
        """
        cmd = run $(circus.wid) $(circus.env.HOME) ((circus.env.unknown)) $(circus.numprocesses)
        """,
        environ={"HOME": "/home/me"},
    )
    assert (
        kwargs["cmd"] == "run $(circus.wid) /home/me ((circus.env.unknown)) $(circus.numprocesses)"
    )


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("numprocesses = abc", "expected an integer >= 0"),
        ("numprocesses = -1", "expected an integer >= 0"),
        ("numprocesses = 1.5", "expected an integer >= 0"),
        ("warmup_delay = x", "expected a number of seconds >= 0"),
        ("graceful_timeout = -2", "expected a number of seconds >= 0"),
        ("graceful_timeout = nan", "expected a number of seconds >= 0"),
        ("shell = maybe", "expected a boolean"),
        ("stop_signal = SIGNOPE", "expected a signal name or number"),
        ("stop_signal = 999", "expected a signal name or number"),
        ("stop_signal = SIG_IGN", "expected a signal name or number"),
        ("priority = high", "expected an integer"),
        ("max_retry = -2", "expected an integer >= -1"),
        ("max_age = old", "expected an integer >= 0"),
        ("umask = 8", "expected an octal file mode mask"),
        ("uid = no-such-user-xyz", "expected an existing user name"),
        ("gid = no-such-group-xyz", "expected an existing group name"),
        ("hooks.before_start = not a path", "expected a dotted path"),
        ("hooks.before_start = a.b, perhaps", "expected 'dotted.path' or"),
        ("hooks.before_lunch = a.b", "expected a hook among before_start"),
        ("rlimit_bogus = 1", "expected rlimit_<name> with a name among"),
        ("rlimit_nofile = lots", "expected an integer >= 0, or empty"),
        ("stdout_stream.class = NoSuchStream", "expected a built-in stream class"),
        ("stdout_stream.max_bytes = 10", "expected stdout_stream.class or stdout_stream.filename"),
        ("copy_path = true", "requires copy_env = true"),
        ("virtualenv = /v", "requires copy_env = true"),
        ("check_flapping = sometimes", "expected a boolean"),
        ("respawn = sometimes", "expected a boolean or one of always, on-failure, never"),
    ],
)
def test_bad_values(tmp_path: Path, line: str, expected: str) -> None:
    option, _, value = line.partition(" = ")
    path = write(tmp_path, f"[watcher:web]\ncmd = run\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert message.startswith(f"{path}:3: [watcher:web] {option} = {value!r}: "), message
    assert expected in message
    assert info.value.lineno == 3
    assert info.value.section == "watcher:web"
    assert info.value.option == option


def test_bad_stream_values(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [watcher:web]
        cmd = run
        stdout_stream.filename = x
        stdout_stream.max_bytes = 100;x
        """,
    )
    with pytest.raises(ConfigError, match=r"circus.ini:4: .*max_bytes = '100;x': expected an int"):
        load_config(path)
    path = write(
        tmp_path,
        """
        [watcher:web]
        cmd = run
        stdout_stream.class = TimedRotatingFileStream
        stdout_stream.filename = x
        stdout_stream.rotate_when = fortnightly
        """,
    )
    with pytest.raises(ConfigError, match=r"circus.ini:5: .*expected one of S, M, H, D, MIDNIGHT"):
        load_config(path)
    path = write(
        tmp_path,
        "[watcher:web]\ncmd = run\nstdout_stream.class = TimedRotatingFileStream\n",
    )
    with pytest.raises(ConfigError, match=r"circus.ini:3: .*needs stdout_stream.rotate_when"):
        load_config(path)


def test_missing_cmd_and_singleton(tmp_path: Path) -> None:
    path = write(tmp_path, "[watcher:web]\nnumprocesses = 2\n")
    with pytest.raises(ConfigError, match=r"circus.ini:1: \[watcher:web\] cmd: expected a command"):
        load_config(path)
    path = write(tmp_path, "[watcher:web]\ncmd = run\nsingleton = true\nnumprocesses = 2\n")
    with pytest.raises(
        ConfigError, match=r"circus.ini:4: .*numprocesses = '2': expected 0 or 1 for a singleton"
    ):
        load_config(path)


def test_shell_args_without_shell_warns(tmp_path: Path) -> None:
    with pytest.warns(ConfigWarning, match="shell_args: ignored because shell is false"):
        watcher_kwargs(tmp_path, "cmd = run\nshell_args = -e")


def test_duplicate_watcher_names_case_insensitive(tmp_path: Path) -> None:
    path = write(tmp_path, "[watcher:Web]\ncmd = a\n\n[watcher:web]\ncmd = b\n")
    with pytest.raises(ConfigError, match=r"circus.ini:4: \[watcher:web\]: duplicate watcher name"):
        load_config(path)


def test_watchers_sorted_by_name_and_case_kept(tmp_path: Path) -> None:
    path = write(tmp_path, "[watcher:b]\ncmd = x\n[watcher:Alpha]\ncmd = x\n[watcher:c]\ncmd = x\n")
    config = load_config(path)
    assert [w.name for w in config.watchers] == ["Alpha", "b", "c"]
    assert config.watcher("ALPHA").name == "Alpha"
    with pytest.raises(KeyError):
        config.watcher("nope")


def test_kwargs_is_a_fresh_copy(tmp_path: Path) -> None:
    path = write(tmp_path, "[watcher:w]\ncmd = run\n[env]\nA = 1\n")
    watcher = load_config(path).watchers[0]
    kwargs = watcher.kwargs
    kwargs["env"]["B"] = "2"
    kwargs["numprocesses"] = 9
    assert watcher.kwargs["env"] == {"A": "1"}
    assert watcher.kwargs["numprocesses"] == 1
    with pytest.raises(AttributeError):
        watcher.name = "x"  # type: ignore[misc]


@pytest.mark.parametrize("key", ["env", "name", "hooks", "rlimits", "stdout_stream", "sockets"])
def test_reserved_keys_are_ignored_with_a_warning(tmp_path: Path, key: str) -> None:
    with pytest.warns(ConfigWarning, match=rf"circus.ini:3: \[watcher:w\] {key}: not a watcher"):
        kwargs = watcher_kwargs(tmp_path, f"cmd = run\n{key} = A=1")
    assert kwargs == DEFAULTS


@pytest.mark.parametrize(
    ("text", "value"),
    [("no", False), ("YES", True), ("on-failure", "on-failure"), ("Never", "never")],
)
def test_respawn_booleans_and_restart_modes(tmp_path: Path, text: str, value: object) -> None:
    assert watcher_kwargs(tmp_path, f"cmd = run\nrespawn = {text}")["respawn"] == value


def test_watcher_extras_pass_through(tmp_path: Path) -> None:
    kwargs = watcher_kwargs(
        tmp_path, "cmd = run\nbackoff_max = 5\nsuccess_exit_codes = 0 3\nhook_timeout = 2"
    )
    assert (kwargs["backoff_max"], kwargs["success_exit_codes"]) == ("5", "0 3")
    assert kwargs["hook_timeout"] == "2"
