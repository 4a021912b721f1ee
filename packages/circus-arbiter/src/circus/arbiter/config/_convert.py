"""Turn option text into typed values; each converter raises ``ValueError`` when it cannot.

The caller (:class:`._section.SectionView`) turns that ``ValueError`` into a
:class:`ConfigError` naming the file, line, option, value and the ``EXPECTED_*`` text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

# The ceilings table, its errors and the two parsers: nothing heavier (no asyncio, no process
# layer) is loaded by importing them.
from circus.watcher import LIMITS, OptionError, check_limit, parse_bool, parse_signal

__all__ = [
    "capped",
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

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*([.:][A-Za-z_]\w*)")


def to_bool(text: str) -> bool:
    """``yes/true/on/1`` → True, ``no/false/off/0`` → False, any case, trimmed (spec §1):
    ``circus.watcher.parse_bool``, the one boolean parser of the daemon."""
    return parse_bool(text)


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
    """A signal number from ``15``, ``TERM``, ``SIGTERM``, ``term`` or ``SIGRTMIN+2``:
    ``circus.watcher.parse_signal``, the one signal parser of the daemon."""
    return parse_signal(text)


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
