"""Client-side conversion of ``set`` / ``kill`` / ``signal`` values, as 0.19's CLI does.

Fixes two 0.19 bugs: ``set NAME env A=1,B=2`` crashed the CLI (we send an object), and
values are sent with their real JSON types (numbers as numbers) instead of strings.
"""

from __future__ import annotations

import difflib
import signal
from typing import Any

from ..errors import CtlError

__all__ = ["DAEMON_SET_KEYS", "SET_KEYS", "convert_set_value", "parse_bool", "parse_signal"]

_INT_KEYS = {"numprocesses", "max_retry", "max_age", "max_age_variance"}
_FLOAT_KEYS = {"warmup_delay", "retry_in", "graceful_timeout"}
_BOOL_KEYS = {
    "send_hup",
    "stop_children",
    "shell",
    "copy_env",
    "respawn",
    "singleton",
    "close_child_stdin",
    "close_child_stdout",
    "close_child_stderr",
}
_STR_KEYS = {"working_dir", "cmd", "args", "stdout_stream", "stderr_stream"}
SET_KEYS = frozenset(
    _INT_KEYS | _FLOAT_KEYS | _BOOL_KEYS | _STR_KEYS | {"uid", "gid", "stop_signal", "env", "hooks"}
)
"""Option keys ``set`` accepts (plus the prefixes below), as 0.19's daemon validates them."""
DAEMON_SET_KEYS = frozenset({"depends_on"})
"""Keys ``set`` also accepts that are the daemon's, not the watcher's: ``depends_on`` (the
watchers this one requires, comma-separated)."""
_PREFIXES = ("stdout_stream.", "stderr_stream.", "hooks.", "rlimit_")
_STREAM_INT_SUFFIXES = (".max_bytes", ".backup_count")

_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def parse_bool(value: str) -> bool:
    """Parse yes/true/on/1 and no/false/off/0 (any case).

    Raises:
        CtlError: for anything else.
    """
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise CtlError(f"{value!r} is not a boolean (use true/false, yes/no, on/off, 1/0)")


def parse_signal(value: str) -> int:
    """Turn ``QUIT``, ``SIGQUIT``, ``sigquit`` or ``3`` into a signal number.

    Raises:
        CtlError: for an unknown signal name.
    """
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(signal.Signals[name])
    except KeyError:
        raise CtlError(f"unknown signal {value!r}") from None


def signal_property(value: str) -> int | str:
    """Value sent as ``signum``: an int for digits, else the name (validated locally)."""
    text = value.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    upper = text.upper()
    if not upper.startswith("SIGRT") and not upper.startswith("RT"):
        parse_signal(text)  # a typo fails here, with a clear message, not in the daemon
    return text


def _number(key: str, value: str, kind: type) -> Any:
    try:
        return kind(value)
    except ValueError:
        noun = "an integer" if kind is int else "a number"
        raise CtlError(f"{key} must be {noun}, not {value!r}") from None


def _pairs(key: str, value: str) -> dict[str, str]:
    result: dict[str, str] = {}
    if not value.strip():
        return result
    separator = "=" if key == "env" else ":"
    for item in value.split(","):
        k, sep, v = item.partition(separator)
        if not sep or not k.strip():
            example = "A=1,B=2" if key == "env" else "before_start:mod.func,after_stop:mod.f2"
            raise CtlError(f"bad {key} value {value!r}: expected {example}")
        result[k.strip()] = v.strip() if key == "hooks" else v
    return result


def check_set_key(key: str) -> None:
    """Raise CtlError naming the closest valid key if ``key`` cannot be set."""
    if key in SET_KEYS or key in DAEMON_SET_KEYS or key.startswith(_PREFIXES):
        return
    valid = sorted(SET_KEYS | DAEMON_SET_KEYS)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise CtlError(f"unknown key {key!r}{hint}; valid keys: {', '.join(valid)}")


def convert_set_value(key: str, value: str) -> Any:
    """Convert a ``set`` value given on the command line to the JSON type the daemon expects.

    Raises:
        CtlError: for an unknown key or a value that does not convert.
    """
    check_set_key(key)
    if key in _INT_KEYS or key.startswith("rlimit_") or key.endswith(_STREAM_INT_SUFFIXES):
        return _number(key, value, int)
    if key in _FLOAT_KEYS:
        return _number(key, value, float)
    if key in _BOOL_KEYS:
        return parse_bool(value)
    if key == "stop_signal":
        return parse_signal(value)
    if key in ("uid", "gid"):
        return int(value) if value.isdigit() else value
    if key in ("env", "hooks"):
        return _pairs(key, value)
    if key == "depends_on":  # "db, cache" -> ["db", "cache"]; "" -> none
        return [name.strip() for name in value.split(",") if name.strip()]
    return value
