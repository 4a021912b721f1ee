"""The daemon reads watcher options through the watcher's one table (``circus.watcher.OPTIONS``)
and booleans and signals through its two parsers: the config loader, ``set``/``add`` and the
command properties agree with the watcher on every option and every spelling."""

from __future__ import annotations

import signal
import textwrap
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter import Arbiter
from circus.arbiter.config import ConfigError, load_config
from circus.watcher import OPTIONS, OptionError, Watcher, parse_bool, parse_signal

RTMIN = int(signal.SIGRTMIN)


def _load(tmp_path: Path, body: str) -> dict[str, Any]:
    path = tmp_path / "circus.ini"
    path.write_text("[watcher:w]\ncmd = run\n" + textwrap.dedent(body).lstrip("\n"))
    return load_config(path, environ={}).watchers[0].kwargs


SIGNALS: list[Any] = ["TERM", "sigquit", " SigInt ", "15", 9, RTMIN + 2, "SIGRTMIN+2",
                      "rtmin + 2", "RTMAX-1", "SIGNOPE", "999", 999, "SIG_IGN", "SIGRTMAX+1",
                      "-3", ""]  # fmt: skip
BOOLEANS: list[Any] = ["yes", "On", " true ", "1", "no", "OFF", "false", "0", "y", "t",
                       "maybe", "2"]  # fmt: skip


def _outcome(read: Any, value: Any) -> Any:
    try:
        return read(value)
    except Exception:  # each reader words its refusal its own way
        return "refused"


@pytest.mark.parametrize("value", SIGNALS)
def test_every_signal_reader_agrees(value: Any) -> None:
    from circus.arbiter._props import to_signum
    from circus.arbiter.config._convert import to_signum as ini_signum

    expected = _outcome(parse_signal, value)
    assert _outcome(to_signum, value) == expected
    assert _outcome(lambda v: Watcher("w", "x", stop_signal=v).settings.stop_signal, value) == (
        expected
    )
    if isinstance(value, str):
        assert _outcome(ini_signum, value) == expected


@pytest.mark.parametrize("value", BOOLEANS)
def test_every_boolean_reader_agrees(value: str) -> None:
    from circus.arbiter._props import opt_bool
    from circus.arbiter.config._convert import to_bool as ini_bool
    from circus.arbiter.plugins._base import to_bool as plugin_bool

    expected = _outcome(parse_bool, value)
    assert _outcome(ini_bool, value) == expected
    assert _outcome(lambda v: opt_bool({"k": v}, "k"), value) == expected
    assert _outcome(lambda v: Watcher("w", "x", shell=v).settings.shell, value) == expected
    assert plugin_bool(value) is (expected is True)  # a plugin's option: not true is false


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("backoff_max = soon", OPTIONS["backoff_max"].expected),
        ("flapping.active = maybe", OPTIONS["flapping.active"].expected),
        ("flapping.attempts = many", OPTIONS["flapping.attempts"].expected),
        ("success_exit_codes = 0 300", OPTIONS["success_exit_codes"].expected),
        ("hook_timeout = -1", OPTIONS["hook_timeout"].expected),
    ],
)
def test_the_loader_checks_our_options_where_they_are_written(
    tmp_path: Path, line: str, words: str
) -> None:
    """Once the watcher was created from the file, these failed without a line number."""
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, line)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'circus.ini'}:3: [watcher:w] "), message
    assert message.endswith("expected " + words)


def test_the_loader_passes_every_table_option_a_file_may_give(tmp_path: Path) -> None:
    kwargs = _load(tmp_path, "backoff_max = 5\nflapping.window = 2\ncheck_flapping = no")
    assert (kwargs["backoff_max"], kwargs["flapping.window"], kwargs["check_flapping"]) == (
        "5",
        "2",
        False,
    )
    upstream = {name for name, spec in OPTIONS.items() if spec.upstream}
    computed = {"env", "rlimits", "hooks", "stdout_stream", "stderr_stream"}
    assert set(kwargs) - {"name", "backoff_max", "flapping.window", "check_flapping"} == (
        upstream - {"prereload_fn"}
    )
    assert computed <= upstream
    watcher = Watcher(**kwargs)
    assert watcher.settings.backoff_max == 5.0 and watcher.settings.flapping.window == 2.0


def test_other_option_lists_name_only_table_options() -> None:
    """circusctl's set keys (a package that may not import the watcher) and the owner's
    options of the authorisation policy are names from the table."""
    from circus.arbiter._authz import OWNER_OPTIONS
    from circus.ctl.cli._convert import SET_KEYS

    over_the_wire = {name for name, spec in OPTIONS.items() if spec.wire is not None}
    assert set(SET_KEYS) <= over_the_wire
    assert set(OWNER_OPTIONS) <= set(OPTIONS)


def test_set_and_add_take_what_the_table_says(run_arbiter: Any, make_sleeper: Any) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        ok = await c.call("set", name="sleeper", options={"respawn": "on-failure"}, waiting=True)
        assert ok["status"] == "ok", ok
        got = await c.call("get", name="sleeper", keys=["respawn", "respawn_mode"])
        # upstream's boolean, and the mode a boolean cannot say beside it
        assert got["options"] == {"respawn": True, "respawn_mode": "on-failure"}
        bad = await c.call("set", name="sleeper", options={"respawn": "sometimes"})
        assert bad["errno"] == 3 and "'respawn'" in bad["reason"], bad
        bad = await c.call("set", name="sleeper", options={"respawn": 1})
        assert bad["errno"] == 3, bad
        added = await c.call(
            "add", name="extra", cmd=make_sleeper()["cmd"],
            options={"umask": "022", "backoff_max": 3.0, "virtualenv_py_ver": "3.11"},
        )  # fmt: skip
        assert added["status"] == "ok", added
        settings = arbiter.get_watcher("extra").settings
        assert (settings.umask, settings.backoff_max) == (0o022, 3.0)
        bad = await c.call("add", name="x2", cmd="true", options={"backoff_max": "soon"})
        assert bad["errno"] == 3 and "'backoff_max'" in bad["reason"], bad
        bad = await c.call("add", name="x3", cmd="true", options={"hook_timeout": 1e308})
        assert bad["errno"] == 3 and "ceiling" in bad["reason"], bad

    run_arbiter([make_sleeper()], body)


def test_an_option_error_is_the_same_words_everywhere() -> None:
    with pytest.raises(OptionError) as info:
        Watcher("w", "x", backoff_max="soon")
    assert info.value.expected == OPTIONS["backoff_max"].expected
