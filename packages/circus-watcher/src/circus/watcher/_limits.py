"""Ceilings for every count and duration: the one table the watcher, the daemon and the
config loader all check against.

A value beyond its ceiling is refused before anything changes (no process spawned, no
option updated): :class:`~circus.watcher.OptionError` for a value below the floor, NaN or a
non-number, :class:`~circus.watcher.CeilingError` above the ceiling. The ceilings are far
above anything a Circus 0.19 config sensibly holds, and low enough that the daemon stays
answerable and no arithmetic overflows (README "Ceilings" gives the reasons).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ._errors import CeilingError, OptionError, shorten

__all__ = [
    "LIMITS",
    "Limit",
    "MAX_PROCESSES",
    "MAX_TOTAL_PROCESSES",
    "MAX_SECONDS",
    "MAX_COUNT",
    "check_limit",
    "as_number",
    "check_option",
    "limit_for",
    "shorten",
]

#: Processes one watcher may be asked to run (``numprocesses``, ``incr``/``decr`` ``nb``).
MAX_PROCESSES = 100_000
#: Processes a whole daemon may be asked to run: the ``numprocesses`` of every watcher, summed.
MAX_TOTAL_PROCESSES = 100_000
#: Any duration, in seconds: one year (365 days).
MAX_SECONDS = 31_536_000
#: Retry and attempt counts.
MAX_COUNT = 1_000_000
#: rlimit values: what ``setrlimit`` takes (a signed 64-bit C long).
MAX_RLIMIT = 2**63 - 1
#: uid/gid values: ``uid_t`` is 32 bits and ``(uid_t) -1`` means "unchanged".
MAX_ID = 2**32 - 2
#: Rotated files a file stream keeps (each rollover renames them one by one).
MAX_BACKUPS = 10_000
_INT32 = 2**31 - 1


@dataclass(frozen=True)
class Limit:
    """The accepted range of one option: ``low <= value <= high``, finite.

    Attributes:
        kind: ``"int"`` (an integer), ``"seconds"`` or ``"number"`` (a finite number).
        low: the floor.
        high: the ceiling.
        unit: what the ceiling counts, for messages ("processes per watcher", "1 year").
        note: what a special value means ("-1 = forever"), shown after the floor.
        unlimited: ``None``, ``-1``, ``""`` and ``"unlimited"`` mean "no limit" (rlimits).
    """

    kind: str
    low: float
    high: float
    unit: str = ""
    note: str = ""
    unlimited: bool = False

    def describe(self) -> str:
        """What is accepted, in words: ``an integer >= 0 and <= 100000 (its ceiling: …)``."""
        noun = {"int": "an integer", "seconds": "a number of seconds"}.get(self.kind, "a number")
        note = f" ({self.note})" if self.note else ""
        unit = f": {self.unit}" if self.unit else ""
        text = f"{noun} >= {_num(self.low)}{note} and <= {_num(self.high)} (its ceiling{unit})"
        if self.unlimited:
            text += ", or -1, empty or 'unlimited' for no limit"
        return text


def _seconds(low: float = 0, note: str = "") -> Limit:
    return Limit("seconds", low, MAX_SECONDS, "1 year", note)


def _count(low: int, note: str = "") -> Limit:
    return Limit("int", low, MAX_COUNT, "", note)


_PROCS = Limit("int", 0, MAX_PROCESSES, "processes per watcher")
_ID = Limit("int", 0, MAX_ID, "the largest uid/gid")
_PID = Limit("int", 1, 2**22, "the largest pid Linux gives")

#: Every option and command property with a ceiling, by the name it is given under.
LIMITS: Mapping[str, Limit] = MappingProxyType(
    {
        # watcher options
        "numprocesses": _PROCS,
        "warmup_delay": _seconds(),
        "graceful_timeout": _seconds(),
        "max_age": _seconds(note="0 = off"),
        "max_age_variance": _seconds(),
        "max_retry": _count(-1, "-1 = forever"),
        "retry_in": _seconds(),
        "backoff_initial": _seconds(),
        "backoff_factor": Limit("number", 1, 1000),
        "backoff_max": _seconds(),
        "backoff_reset": _seconds(),
        "give_up_after": _count(0, "0 = never"),
        "hook_timeout": _seconds(),
        "flapping.attempts": _count(1),
        "flapping.window": _seconds(),
        "flapping.retry_in": _seconds(),
        "flapping.max_retry": _count(-1, "-1 = forever"),
        "readiness_timeout": _seconds(0.01),
        "liveness_interval": _seconds(0.01),
        "liveness_timeout": _seconds(0.01),
        "liveness_failures": _count(1),
        "watchdog_sec": _seconds(note="0 = off"),
        "priority": Limit("int", -_INT32 - 1, _INT32, "a 32-bit integer"),
        "uid": _ID,
        "gid": _ID,
        "rlimit_*": Limit("int", 0, MAX_RLIMIT, "what setrlimit takes", unlimited=True),
        "*_stream.max_bytes": Limit("int", 0, MAX_RLIMIT, "", "0 = never rotate"),
        "*_stream.backup_count": Limit("int", 0, MAX_BACKUPS, "rotated files kept"),
        "*_stream.rotate_interval": Limit("int", 1, MAX_SECONDS, "a year of seconds"),
        # control command properties
        "nb": _PROCS,
        "lines": Limit("int", 0, MAX_COUNT, "lines of output"),
        # process ids named by a command (Linux never gives a pid above 2**22)
        "pid": _PID,
        "childpid": _PID,
        "process": _PID,
        # daemon options ([circus] and Arbiter(...))
        "check_delay": _seconds(-MAX_SECONDS, "<= 0 disables it, as Circus 0.19"),
        "stats_interval": _seconds(0.01),
        "output_lines": Limit("int", 0, MAX_COUNT, "lines kept per watcher"),
    }
)


def limit_for(key: str) -> tuple[str, Limit] | None:
    """The table entry for ``key`` (``rlimit_nofile`` → ``rlimit_*``,
    ``stdout_stream.backup_count`` → ``*_stream.backup_count``), or None when uncapped."""
    if key in LIMITS:
        return key, LIMITS[key]
    if key.startswith("rlimit_"):
        return key, LIMITS["rlimit_*"]
    head, dot, tail = key.partition(".")
    if dot and head in ("stdout_stream", "stderr_stream"):
        entry = LIMITS.get(f"*_stream.{tail}")
        if entry is not None:
            return key, entry
    return None


def check_limit(name: str, value: Any, limit: Limit | None = None) -> Any:
    """Return the number ``value`` when it is within ``limit`` (default ``LIMITS[name]``).

    Raises:
        OptionError: NaN, a non-integer where an integer is expected, below the floor.
        CeilingError: above the ceiling (infinity included).
    """
    limit = limit if limit is not None else LIMITS[name]
    if limit.unlimited and (value is None or value == -1):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OptionError(name, value, limit.describe())
    if isinstance(value, float) and math.isnan(value):
        raise OptionError(name, value, limit.describe())
    if value > limit.high:
        raise CeilingError(name, value, limit.describe(), limit.high, limit.unit)
    if value < limit.low or (limit.kind == "int" and not float(value).is_integer()):
        raise OptionError(name, value, limit.describe())
    return value


def check_option(key: str, value: Any) -> None:
    """Check ``key``'s value against its ceiling when it has one and is a number (or a
    numeric string, as circusctl sends some). Other values are left to the option's own
    converter, which rejects them with its own words.

    Raises:
        OptionError, CeilingError: as :func:`check`.
    """
    entry = limit_for(key)
    if entry is None:
        return
    name, limit = entry
    if limit.unlimited and _is_unlimited(value):
        return
    number = as_number(value)
    if number is not None:
        check_limit(name, number, limit)


def _is_unlimited(value: Any) -> bool:
    if value is None or (isinstance(value, int) and not isinstance(value, bool) and value == -1):
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "-1", "unlimited", "infinity")


def as_number(value: Any) -> int | float | None:
    """An int or float from a number or a numeric string; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text, 10)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return None
    return None


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
