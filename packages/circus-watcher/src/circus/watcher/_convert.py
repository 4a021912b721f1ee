"""Value converters shared by option validation: strings (as from an INI file) or native values.

Each converter returns the converted value or raises ``ValueError``/``TypeError``;
:mod:`._options` turns that into an :class:`~circus.watcher.OptionError` naming the option, the
value and what was expected. :func:`parse_bool` and :func:`parse_signal` are public
(``circus.watcher.parse_bool``, ``circus.watcher.parse_signal``): the daemon's config loader,
its control commands and its plugins read booleans and signals with them, so every layer
above the process layer agrees on what a boolean or a signal is. This module imports only
the standard library and the errors (the config loader loads it without asyncio or the
process layer).
"""

from __future__ import annotations

import re
import signal
from typing import Any

from ._errors import shorten

__all__ = ["BOOL_WORDS", "SIGNAL_WORDS", "parse_bool", "parse_signal"]


class Explained(ValueError):
    """A rejection whose message is worth showing next to the expected form."""


_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off"})
#: What :func:`parse_bool` accepts, in words (error messages end with it).
BOOL_WORDS = "a boolean (true/false, yes/no, on/off, 1/0)"
#: What :func:`parse_signal` accepts, in words.
SIGNAL_WORDS = "a signal name or number (TERM, SIGTERM, 15, SIGRTMIN+2)"


def parse_bool(value: Any) -> bool:
    """The boolean ``value`` means: a bool, the integer 0 or 1, or one of ``yes/true/on/1`` and
    ``no/false/off/0`` in any case, surrounding blanks ignored (Circus 0.19's ``to_bool``).

    Raises:
        ValueError: anything else (``"maybe"``, ``2``, ``""``, ``None``).
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ValueError(f"{shorten(value)} is not {BOOL_WORDS}")


def to_int(value: Any) -> int:
    """Accept an int or a decimal string (not a bool, not a float with a fraction)."""
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return int(value.strip())
    raise TypeError


def to_float(value: Any) -> float:
    """Accept an int, a float or a numeric string (not a bool, not NaN)."""
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        result = float(value.strip())
    else:
        raise TypeError
    if result != result:  # NaN
        raise ValueError
    return result


_VALID_SIGNALS = frozenset(int(number) for number in signal.valid_signals())
_REALTIME = re.compile(r"SIGRT(MIN|MAX)(?:\s*([+-])\s*(\d{1,3}))?")


def parse_signal(value: Any) -> int:
    """The signal number ``value`` names: a number (``15``, ``"15"``), a name with or without
    ``SIG`` in any case (``TERM``, ``SIGTERM``, ``term``), or a real-time signal with an
    offset (``SIGRTMIN+2``, ``RTMAX - 1``), as Circus 0.19's ``to_signum`` reads them; the
    number must be one this system can send.

    Raises:
        ValueError: not a signal (``SIGNOPE``, ``999``, ``SIG_IGN``, ``True``, ``None``).
    """
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{shorten(value)} is not {SIGNAL_WORDS}")
    if isinstance(value, int):
        if value in _VALID_SIGNALS:
            return int(value)
        raise ValueError(f"{shorten(value)} is not a signal number of this system")
    text = value.strip().upper()
    if text.isdigit() and len(text) <= 3:
        return parse_signal(int(text))
    name = text if text.startswith("SIG") else "SIG" + text
    realtime = _REALTIME.fullmatch(name)
    if realtime is not None:
        base = int(signal.SIGRTMIN if realtime.group(1) == "MIN" else signal.SIGRTMAX)
        offset = int(realtime.group(3) or 0)
        return parse_signal(base - offset if realtime.group(2) == "-" else base + offset)
    member = signal.Signals.__members__.get(name)
    if member is None:
        raise ValueError(f"{shorten(value)} is not {SIGNAL_WORDS}")
    return int(member)


def to_str(value: Any) -> str:
    """Accept a string."""
    if not isinstance(value, str):
        raise TypeError
    return value


def to_opt_str(value: Any) -> str | None:
    """Accept None, or a string (the empty string means None)."""
    if value is None:
        return None
    text = to_str(value)
    return text or None


def to_id(value: Any) -> int | str | None:
    """Accept None, a non-negative integer, a numeric string, or a user/group name."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        if value < 0:
            raise ValueError
        return value
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text.isdigit() else text
    raise TypeError


def to_umask(value: Any) -> int | None:
    """Accept None, an int, or an octal string such as ``'022'``."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        result = value
    elif isinstance(value, str):
        result = int(value.strip(), 8)
    else:
        raise TypeError
    if not 0 <= result <= 0o777:
        raise ValueError
    return result


def to_env(value: Any) -> dict[str, str]:
    """Accept None or a mapping of strings to strings (values are stripped, as upstream)."""
    if value is None:
        return {}
    if not hasattr(value, "items"):
        raise TypeError
    result: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not isinstance(item, str) or not key or "=" in key:
            raise ValueError
        if "\0" in key or "\0" in item:  # execve cannot pass it: every spawn would fail
            raise ValueError
        result[key] = item.strip()
    return result
