"""Value converters shared by option validation: strings (as from an INI file) or native values.

Each converter returns the converted value or raises ``ValueError``/``TypeError`` with no
message; :mod:`._options` turns that into an :class:`~circus.watcher.OptionError` naming the
option, the value and what was expected.
"""

from __future__ import annotations

import re
import signal
from typing import Any


class Explained(ValueError):
    """A rejection whose message is worth showing next to the expected form."""


_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}


def to_bool(value: Any) -> bool:
    """Accept a bool, 0/1, or yes/true/on/1 and no/false/off/0 (any case, trimmed)."""
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
    raise ValueError


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


_RT_OFFSET = re.compile(r"^(?:SIG)?RTM(IN|AX)\s*([+-]\s*\d+)?$")


def to_signum(value: Any) -> int:
    """Accept a signal number, ``'15'``, ``TERM``, ``SIGTERM``, ``term``, ``SIGRTMIN+2``."""
    if isinstance(value, bool):
        raise TypeError
    if isinstance(value, int):
        return int(signal.Signals(value))
    if not isinstance(value, str):
        raise TypeError
    text = value.strip().upper()
    if text.isdigit():
        return int(signal.Signals(int(text)))
    match = _RT_OFFSET.match(text)
    if match:
        base = signal.SIGRTMIN if match.group(1) == "IN" else signal.SIGRTMAX
        offset = int(match.group(2).replace(" ", "")) if match.group(2) else 0
        number = int(base) + offset
        if not signal.SIGRTMIN <= number <= signal.SIGRTMAX:
            raise ValueError
        return number
    name = text if text.startswith("SIG") else "SIG" + text
    return int(signal.Signals[name])


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
        result[key] = item.strip()
    return result
