"""Turn option text into typed values; each converter raises ``ValueError`` when it cannot.

The caller (:class:`._section.SectionView`) turns that ``ValueError`` into a
:class:`ConfigError` naming the file, line, option, value and the ``EXPECTED_*`` text.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from typing import Any

# Only the ceilings table and its errors: importing circus.watcher loads nothing else.
from circus.watcher import LIMITS, OptionError, check_limit, check_option

__all__ = [
    "capped",
    "check_free",
    "to_rlimit",
    "EXPECTED_RLIMIT",
    "to_bool",
    "to_int",
    "to_float",
    "to_signum",
    "to_octal",
    "check_dotted",
    "EXPECTED_BOOL",
    "EXPECTED_SIGNAL",
    "EXPECTED_OCTAL",
    "EXPECTED_DOTTED",
]

EXPECTED_BOOL = "expected a boolean (true/false, yes/no, on/off, 1/0)"
EXPECTED_SIGNAL = "expected a signal name or number (TERM, SIGTERM, 15, SIGRTMIN+2)"
EXPECTED_OCTAL = "expected an octal file mode mask between 000 and 777 (e.g. 022)"
EXPECTED_DOTTED = "expected a dotted path like package.module.name or package.module:name"

_TRUE = frozenset({"1", "yes", "true", "on"})
_FALSE = frozenset({"0", "no", "false", "off"})
_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*([.:][A-Za-z_]\w*)")
_RT_OFFSET = re.compile(r"(SIGRTMIN|SIGRTMAX)\s*([+-])\s*(\d+)")


def to_bool(text: str) -> bool:
    """``yes/true/on/1`` → True, ``no/false/off/0`` → False, any case, trimmed (spec §1)."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(text)


def to_int(text: str, minimum: int | None = None) -> int:
    """A decimal integer, optionally at least ``minimum``."""
    value = int(text.strip(), 10)
    if minimum is not None and value < minimum:
        raise ValueError(text)
    return value


def to_float(text: str, minimum: float | None = None) -> float:
    """A finite decimal number (``0.5``, ``3``), optionally at least ``minimum``."""
    value = float(text.strip())
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(text)
    if minimum is not None and value < minimum:
        raise ValueError(text)
    return value


def capped(
    name: str, convert: Callable[[str], Any], words: str | None = None
) -> tuple[Callable[[str], Any], str]:
    """``(converter, expected)`` for an option held to ``circus.watcher.LIMITS[name]``: the
    converter runs ``convert`` then the range check; ``expected`` names the ceiling (``words``
    replaces the table's description, e.g. "an integer" where the loader wants one)."""
    limit = LIMITS[name]

    def converter(text: str) -> Any:
        value = convert(text)
        try:
            check_limit(name, value, limit)
        except OptionError:
            raise ValueError(text) from None
        return value

    return converter, "expected " + (words or limit.describe())


def check_free(key: str, text: str) -> None:
    """A free-form option kept as written (``flapping.attempts``, ``backoff_max``…) but held
    to its ceiling when it is a number; other text is left to the watcher.

    Raises:
        ValueError: a number out of range.
    """
    try:
        check_option(key, text)
    except OptionError:
        raise ValueError(text) from None


_UNLIMITED = frozenset({"", "-1", "unlimited", "infinity"})
EXPECTED_RLIMIT = (
    "expected an integer >= 0, or empty, -1 or 'unlimited' for no limit; "
    f"at most {int(LIMITS['rlimit_*'].high)} (its ceiling: what setrlimit takes)"
)


def to_rlimit(text: str) -> int:
    """An rlimit value: ``-1`` for no limit (empty, ``-1``, ``unlimited``, ``infinity``)."""
    if text.strip().lower() in _UNLIMITED:
        return -1
    value = to_int(text, 0)
    check_limit("rlimit_*", value)  # OptionError is a ValueError
    return value


def to_signum(text: str) -> int:
    """A signal number from ``15``, ``TERM``, ``SIGTERM``, ``term`` or ``SIGRTMIN+2``."""
    name = text.strip().upper()
    if name.isdigit():
        number = int(name)
        if number not in {int(s) for s in signal.valid_signals()}:
            raise ValueError(text)
        return number
    if not name.startswith("SIG"):
        name = "SIG" + name
    offset = _RT_OFFSET.fullmatch(name)
    if offset is not None:
        base = int(getattr(signal, offset.group(1)))
        delta = int(offset.group(3))
        number = base + delta if offset.group(2) == "+" else base - delta
        if not int(signal.SIGRTMIN) <= number <= int(signal.SIGRTMAX):
            raise ValueError(text)
        return number
    if name.startswith("SIG_"):
        raise ValueError(text)  # SIG_DFL/SIG_IGN are handlers, not signals
    member = getattr(signal, name, None)
    if not isinstance(member, signal.Signals):
        raise ValueError(text)
    return int(member)


def to_octal(text: str) -> int:
    """A umask written in octal (``022``, ``0o022``, ``2``) → its integer value."""
    stripped = text.strip().lower()
    if stripped.startswith("0o"):
        stripped = stripped[2:]
    value = int(stripped, 8)
    if not 0 <= value <= 0o777:
        raise ValueError(text)
    return value


def check_dotted(text: str) -> str:
    """Return ``text`` stripped if it looks like an importable dotted path, else raise."""
    stripped = text.strip()
    if _DOTTED.fullmatch(stripped) is None:
        raise ValueError(text)
    return stripped
