"""Typed readers of a request's ``properties`` (spec/protocol.md §1.6).

Each reader raises :class:`MessageError` (errno 3) naming the property and what was expected, so
a wrongly typed request gets an answer instead of an internal exception. The readers accept the
quirky types the real 0.19 circusctl sends (``kill`` sends ``pid`` and ``graceful_timeout`` as
strings, ``signal`` sends ``signum`` as a name). A number property named like an entry of
``circus.watcher.LIMITS`` (``nb``, ``lines``, ``graceful_timeout``) is held to its ceiling, and
an error echoes at most ~100 characters of the value it was sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from circus.watcher import parse_bool, parse_signal, shorten

from ._errors import MessageError
from ._limits import check_property

__all__ = [
    "req_str",
    "opt_str",
    "opt_bool",
    "opt_int",
    "opt_float",
    "opt_names",
    "to_signum",
]

_MISSING = object()


def _get(props: Mapping[str, Any], key: str, required: bool) -> Any:
    value = props.get(key, _MISSING)
    if value is _MISSING or (value is None and required):
        if required:
            raise MessageError(f"message invalid '{key}' is missing")
        return _MISSING
    return value


def req_str(props: Mapping[str, Any], key: str) -> str:
    """A required non-empty string property."""
    value = _get(props, key, True)
    if not isinstance(value, str) or not value:
        raise MessageError(f"'{key}' must be a non-empty string, got {shorten(value)}")
    return value


def opt_str(props: Mapping[str, Any], key: str, default: str | None = None) -> str | None:
    """An optional string property (``None`` and absent give ``default``)."""
    value = _get(props, key, False)
    if value is _MISSING or value is None:
        return default
    if not isinstance(value, str):
        raise MessageError(f"'{key}' must be a string, got {shorten(value)}")
    return value


def opt_bool(props: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """An optional boolean; JSON booleans, 0/1 and yes/no strings are accepted (the daemon's one
    boolean parser, ``circus.watcher.parse_bool``); an empty string is false."""
    value = _get(props, key, False)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, str) and not value.strip():
        return False
    try:
        return parse_bool(value)
    except ValueError:
        raise MessageError(f"'{key}' must be a boolean, got {shorten(value)}") from None


def opt_int(
    props: Mapping[str, Any], key: str, default: int | None = None, *, required: bool = False
) -> int | None:
    """An integer property; numeric strings are accepted (circusctl sends some as strings)."""
    value = _get(props, key, required)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool):
        raise MessageError(f"'{key}' isn't an integer")
    if isinstance(value, int):
        return int(check_property(key, value))
    if isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            pass
        else:
            return int(check_property(key, number))
    raise MessageError(f"'{key}' isn't an integer")


def opt_float(props: Mapping[str, Any], key: str, default: float | None = None) -> float | None:
    """A number property; numeric strings are accepted."""
    value = _get(props, key, False)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool):
        raise MessageError(f"'{key}' isn't a number")
    if isinstance(value, int | float):
        return float(check_property(key, value))
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
        else:
            return float(check_property(key, number))
    raise MessageError(f"'{key}' isn't a number")


def opt_names(props: Mapping[str, Any], key: str) -> list[str] | None:
    """A name or a list of names (our ``logs`` command), ``None`` when absent."""
    value = _get(props, key, False)
    if value is _MISSING or value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise MessageError(f"'{key}' must be a string or a list of strings, got {shorten(value)}")


def to_signum(value: Any, key: str = "signum") -> int:
    """A signal number from an int, ``"15"``, ``"TERM"``, ``"SIGTERM"`` or ``"SIGRTMIN+2"``
    (the daemon's one signal parser, ``circus.watcher.parse_signal``)."""
    try:
        return parse_signal(value)
    except ValueError:
        raise MessageError(f"'{key}' is not a signal: {shorten(value)}") from None
