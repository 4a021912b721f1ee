"""Option validation: names, defaults, converters, error messages."""

from __future__ import annotations

import signal

import pytest
from circus.watcher import OptionError, UnknownOptionError, Watcher


def test_upstream_defaults() -> None:
    w = Watcher("w", "sleep 1")
    opts = w.options()
    assert opts["numprocesses"] == 1
    assert opts["graceful_timeout"] == 30.0
    assert opts["stop_signal"] == signal.SIGTERM
    assert opts["max_retry"] == 5
    assert opts["max_age"] == 0
    assert opts["max_age_variance"] == 30
    assert opts["close_child_stdin"] is True
    # upstream's view: respawn a boolean, our options only when they are set
    assert opts["respawn"] is True
    assert not any(key.startswith("flapping.") for key in opts)
    assert w.get_opt("respawn") == "always"
    assert w.get_opt("flapping.attempts") == 2
    assert w.get_opt("flapping.window") == 1.0
    assert w.get_opt("flapping.retry_in") == 7.0
    assert w.get_opt("flapping.max_retry") == 5
    assert w.status() == "stopped"
    assert w.pids == []


def test_unknown_option_names_it_suggests_and_lists() -> None:
    with pytest.raises(UnknownOptionError) as info:
        Watcher("w", "sleep 1", numprocess=2)
    message = str(info.value)
    assert "'numprocess'" in message
    assert "did you mean 'numprocesses'" in message
    assert "graceful_timeout" in message and "warmup_delay" in message
    assert info.value.suggestion == "numprocesses"


def test_unknown_option_without_close_match() -> None:
    with pytest.raises(UnknownOptionError) as info:
        Watcher("w", "sleep 1", zzzqqq=1)
    assert info.value.suggestion is None
    assert "did you mean" not in str(info.value)


@pytest.mark.parametrize(
    ("option", "value", "words"),
    [
        ("numprocesses", "three", "integer"),
        ("numprocesses", -1, "integer >= 0"),
        ("warmup_delay", "soon", "seconds"),
        ("shell", "maybe", "boolean"),
        ("stop_signal", "SIGNOPE", "signal"),
        ("respawn", "sometimes", "on-failure"),
        ("max_retry", -2, ">= -1"),
        ("umask", "999", "octal"),
        ("rlimits", {"bogus": 1}, "nofile"),
        ("env", {"A": 1}, "strings"),
        ("hooks", {"before_lunch": "os.getcwd"}, "before_start"),
        ("stdout_stream", {"max_bytes": "1"}, "'class'"),
        ("success_exit_codes", [300], "0..255"),
    ],
)
def test_bad_value_names_option_value_and_expectation(
    option: str, value: object, words: str
) -> None:
    with pytest.raises(OptionError) as info:
        Watcher("w", "sleep 1", **{option: value})
    message = str(info.value)
    assert repr(option) in message
    assert repr(value) in message
    assert words in message
    assert info.value.option == option


def test_strings_as_from_an_ini_file() -> None:
    w = Watcher(
        "w",
        "sleep 1",
        numprocesses="3",
        warmup_delay="0.5",
        shell="off",
        stop_signal="quit",
        umask="022",
        respawn="false",
        max_retry="-1",
        **{"flapping.active": "yes", "flapping.window": "2.5", "rlimit_nofile": "100"},
    )
    o = w.options()
    assert o["numprocesses"] == 3
    assert o["warmup_delay"] == 0.5
    assert o["shell"] is False
    assert o["stop_signal"] == signal.SIGQUIT
    assert o["umask"] == 0o022
    assert o["respawn"] is False
    assert o["max_retry"] == -1
    assert o["flapping.active"] is True
    assert o["flapping.window"] == 2.5
    assert o["rlimit_nofile"] == 100
    assert w.get_opt("rlimits") == {"nofile": 100}


def test_signal_spellings() -> None:
    for spelling in (15, "15", "TERM", "SIGTERM", "term"):
        assert Watcher("w", "x", stop_signal=spelling).get_opt("stop_signal") == 15
    rt = Watcher("w", "x", stop_signal="SIGRTMIN+2").get_opt("stop_signal")
    assert rt == signal.SIGRTMIN + 2


def test_respawn_modes() -> None:
    assert Watcher("w", "x", respawn=True).get_opt("respawn") == "always"
    assert Watcher("w", "x", respawn="on_failure").get_opt("respawn") == "on-failure"
    assert Watcher("w", "x", respawn="never").get_opt("respawn") == "never"


def test_singleton_and_copy_rules() -> None:
    with pytest.raises(OptionError, match="singleton"):
        Watcher("w", "x", singleton=True, numprocesses=2)
    with pytest.raises(OptionError, match="copy_env"):
        Watcher("w", "x", copy_path=True)
    with pytest.raises(OptionError, match="copy_env"):
        Watcher("w", "x", virtualenv="/nowhere")


def test_prefixed_stream_and_hook_keys_fold() -> None:
    w = Watcher(
        "w",
        "x",
        **{
            "stdout_stream.class": "FileStream",
            "stdout_stream.filename": "/tmp/x.log",
            "hooks.before_start": "os.getcwd, true",
        },
    )
    assert w.get_opt("stdout_stream") == {"class": "FileStream", "filename": "/tmp/x.log"}
    assert w.get_opt("stdout_stream.filename") == "/tmp/x.log"
    assert w.options()["stdout_stream_conf"] == {"filename": "/tmp/x.log"}
    assert w.get_opt("hooks.before_start") == "os.getcwd, true"


def test_unknown_hook_key_is_an_unknown_option() -> None:
    with pytest.raises(UnknownOptionError, match="did you mean 'hooks.before_start'"):
        Watcher("w", "x", **{"hooks.before_strat": "os.getcwd"})


def test_custom_options_are_kept_verbatim() -> None:
    w = Watcher("w", "x", custom_options={"__name__": "watcher:w", "team": "a"})
    assert w.options()["team"] == "a"
    assert w.get_opt("__name__") == "watcher:w"


def test_get_opt_unknown() -> None:
    with pytest.raises(UnknownOptionError):
        Watcher("w", "x").get_opt("nope")


def test_empty_cmd_and_name_rejected() -> None:
    with pytest.raises(OptionError, match="'cmd'"):
        Watcher("w", "")
    with pytest.raises(OptionError, match="'name'"):
        Watcher("", "x")


def test_options_view_is_upstreams_key_list() -> None:
    from circus.watcher import UPSTREAM_OPTION_KEYS

    opts = Watcher("w", "sleep 1").options()
    assert list(opts) == sorted(UPSTREAM_OPTION_KEYS)
    assert opts["args"] == "" and opts["stdout_stream_conf"] == {} and opts["env"] == {}
    assert isinstance(opts["max_age"], int) and isinstance(opts["graceful_timeout"], float)
    set_ours = Watcher("w", "sleep 1", respawn="on-failure", umask="022", custom_options={"t": 1})
    extra = set(set_ours.options()) - set(UPSTREAM_OPTION_KEYS)
    assert extra == {"respawn_mode", "umask", "t"}
