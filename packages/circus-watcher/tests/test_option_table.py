"""The one option table (``OPTIONS``), the frozen option values (``WatcherOptions``) and the
two parsers every layer above the process layer shares (``parse_bool``, ``parse_signal``)."""

from __future__ import annotations

import dataclasses
import signal
from typing import Any

import pytest
from circus.watcher import (
    LIMITS,
    OPTIONS,
    Effect,
    OptionError,
    Watcher,
    WatcherOptions,
    parse_bool,
    parse_signal,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [(True, True), (0, False), (1, True), ("yes", True), (" On ", True), ("TRUE", True),
     ("1", True), ("no", False), ("off", False), ("False", False), ("0", False)],
)  # fmt: skip
def test_parse_bool_reads_what_circus_calls_a_boolean(text: Any, value: bool) -> None:
    assert parse_bool(text) is value


@pytest.mark.parametrize("text", ["maybe", "", "y", "t", 2, -1, None, 1.0, [], "truee"])
def test_parse_bool_refuses_anything_else(text: Any) -> None:
    with pytest.raises(ValueError, match="boolean"):
        parse_bool(text)


@pytest.mark.parametrize(
    ("text", "number"),
    [(15, 15), ("15", 15), ("TERM", 15), ("sigterm", 15), (" SigInt ", 2), ("IOT", 6),
     ("SIGRTMIN+2", int(signal.SIGRTMIN) + 2), ("rtmax - 1", int(signal.SIGRTMAX) - 1),
     (int(signal.SIGRTMIN) + 3, int(signal.SIGRTMIN) + 3), ("SIGRTMIN", int(signal.SIGRTMIN))],
)  # fmt: skip
def test_parse_signal_reads_numbers_names_and_realtime_offsets(text: Any, number: int) -> None:
    assert parse_signal(text) == number and type(parse_signal(text)) is int


@pytest.mark.parametrize(
    "text", ["SIGNOPE", "999", 999, 0, -3, "-3", "SIG_IGN", "SIGRTMAX+1", "RTMIN-1", True, None,
             "9" * 5000, 3.0, ""],
)  # fmt: skip
def test_parse_signal_refuses_what_is_no_signal(text: Any) -> None:
    with pytest.raises(ValueError):
        parse_signal(text)


def test_a_realtime_signal_number_is_a_stop_signal_as_its_name_is() -> None:
    number = int(signal.SIGRTMIN) + 1
    assert Watcher("w", "x", stop_signal=number).settings.stop_signal == number
    assert Watcher("w", "x", stop_signal="SIGRTMIN+1").settings.stop_signal == number


def test_every_option_has_one_row_with_its_default_words_and_cost() -> None:
    w = Watcher("w", "sleep 1")
    for name, spec in OPTIONS.items():
        assert spec.name == name and spec.expected, name
        if name != "cmd":
            assert w.settings.get(name) == spec.parse(spec.default), name
        if spec.ceiling is not None:
            assert spec.ceiling is LIMITS[name]
    reloading = {name for name, spec in OPTIONS.items() if spec.effect is Effect.RELOAD}
    assert reloading == {"cmd", "args", "working_dir", "shell", "uid", "gid", "env", "env_file",
                         "max_age", "max_age_variance", "stdout_stream",
                         "stderr_stream"}  # fmt: skip
    assert [n for n, s in OPTIONS.items() if s.effect is Effect.RESIZE] == ["numprocesses"]
    assert not OPTIONS["priority"].settable and OPTIONS["graceful_timeout"].settable
    fields = {f.name for f in dataclasses.fields(WatcherOptions)}
    assert fields == {n for n in OPTIONS if "." not in n} | {"flapping", "custom"}


def test_options_are_typed_and_frozen() -> None:
    w = Watcher("w", "x", numprocesses="3", **{"flapping.window": "2.5", "rlimit_nofile": 10})
    settings = w.settings
    assert settings.numprocesses == 3 and settings.flapping.window == 2.5
    assert settings.get("flapping.window") == 2.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.numprocesses = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.rlimits["nofile"] = 20  # type: ignore[index]
    with pytest.raises(TypeError):
        settings.env["A"] = "1"  # type: ignore[index]


def test_set_makes_a_new_options_object(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300")
        before = w.settings
        await w.set_opt("graceful_timeout", 2)
        await w.set_opt("flapping.attempts", "4")
        await w.set_opt("rlimit_core", 0)
        assert before.graceful_timeout == 5.0 and before.flapping.attempts == 2
        assert before.rlimits == {}
        assert w.settings.graceful_timeout == 2.0 and w.settings.flapping.attempts == 4
        assert w.settings.rlimits == {"core": 0}
        w2 = make("sleep 300", singleton=True)
        with pytest.raises(OptionError, match="singleton"):
            w2.settings.replace("numprocesses", 2)
        assert w2.settings.numprocesses == 1

    run_async(main)


def test_errors_use_the_table_words() -> None:
    for name, value in [("shell", "maybe"), ("stop_signal", "SIGNOPE"), ("respawn", "sometimes"),
                        ("numprocesses", "x"), ("umask", "999")]:  # fmt: skip
        with pytest.raises(OptionError) as info:
            Watcher("w", "x", **{name: value})
        assert info.value.expected.startswith(OPTIONS[name].expected), name
