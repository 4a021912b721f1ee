"""Exceptions raised by circus.watcher.

Every error of this layer derives from :class:`WatcherError`, so a caller (the daemon) can
translate the whole family into a control answer at one place. Errors raised by
``circus.process`` while spawning are wrapped here, never leaked.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

_SHOWN = 100


def shorten(value: Any) -> str:
    """``repr(value)`` cut to about 100 characters, safe for integers of any size: all that an
    error message echoes of a value it was given (the value itself may be megabytes)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 300:
        digits = int(value.bit_length() * math.log10(2)) + 1
        sign = "-" if value < 0 else ""
        return f"{sign}<an integer of about {digits} digits>"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        text = f"<{type(value).__name__}>"
    if len(text) > _SHOWN:
        text = f"{text[: _SHOWN - 25]}... ({len(text)} characters)"
    return text


class WatcherError(Exception):
    """Base class of every error raised by circus.watcher."""


class OptionError(WatcherError, ValueError):
    """An option has a value of the wrong type or out of range.

    Attributes:
        option: the option's name.
        value: the rejected value.
        expected: what would have been accepted, in words.
    """

    def __init__(self, option: str, value: Any, expected: str) -> None:
        self.option = option
        self.value = value
        self.expected = expected
        super().__init__(
            f"invalid value {shorten(value)} for option {shorten(option)}: expected {expected}"
        )


class CeilingError(OptionError):
    """A count or duration is above its ceiling (``circus.watcher.LIMITS``).

    Attributes:
        ceiling: the largest value accepted.
        unit: what the ceiling counts ("processes per watcher"), may be empty.
    """

    def __init__(
        self, option: str, value: Any, expected: str, ceiling: float, unit: str = ""
    ) -> None:
        self.ceiling = ceiling
        self.unit = unit
        super().__init__(option, value, expected)
        shown = int(ceiling) if float(ceiling).is_integer() else ceiling
        what = f" ({unit})" if unit else ""
        self.args = (
            f"invalid value {shorten(value)} for option {shorten(option)}: "
            f"above its ceiling of {shown}{what}",
        )


class UnknownOptionError(WatcherError, ValueError):
    """An option name is not one the watcher knows.

    Attributes:
        option: the unknown name.
        valid: the sorted names that would have been accepted.
        suggestion: the closest valid name, or None.
    """

    def __init__(
        self,
        option: str,
        valid: Iterable[str],
        suggestion: str | None,
        *,
        problem: str = "unknown option",
        listing: str = "valid options",
    ) -> None:
        self.option = option
        self.valid = sorted(valid)
        self.suggestion = suggestion
        hint = f" (did you mean {suggestion!r}?)" if suggestion else ""
        listed = ", ".join(self.valid)
        super().__init__(f"{problem} {shorten(option)}{hint}; {listing}: {listed}")


class HookError(OptionError):
    """A hook option is bad: unknown hook name, malformed spec, or a path that does not import.

    ``option`` is ``hooks.<name>`` and ``value`` the spec as given.
    """


class ProcessNotFoundError(WatcherError, LookupError):
    """A pid given to the watcher is not one of its processes."""

    def __init__(self, watcher: str, pid: int) -> None:
        self.watcher = watcher
        self.pid = pid
        super().__init__(f"process {pid} not found in {watcher!r}")


class SpawnFailedError(WatcherError):
    """A process could not be created after ``max_retry`` attempts."""


class ResourceShortage(WatcherError):
    """A spawn failed for want of descriptors, processes or memory; worth trying later.

    The watcher catches it itself and spawns the missing processes later (``_spawner``).
    """


class NotReady(WatcherError):
    """Processes did not become ready (``Watcher.wait_ready``).

    Attributes:
        watcher: the watcher's name.
        reasons: ``{pid: why}`` for every process that is not ready.
    """

    def __init__(self, watcher: str, reasons: dict[int, str]) -> None:
        self.watcher = watcher
        self.reasons = dict(reasons)
        listed = "; ".join(f"{pid}: {why}" for pid, why in sorted(self.reasons.items())[:20])
        more = f" (and {len(self.reasons) - 20} more)" if len(self.reasons) > 20 else ""
        super().__init__(
            f"watcher {watcher!r}: {len(self.reasons)} process(es) not ready: {listed}{more}"
        )


class RolloutError(NotReady):
    """A rolling reload stopped: a new process did not become ready (it was stopped).

    Attributes:
        reasons: ``{pid: why}`` of the new process that failed.
        started: pids of the new processes that became ready and stay.
        stopped: pids of the old processes they replaced.
        kept: pids of the old processes still running.
    """

    def __init__(
        self, watcher: str, reasons: dict[int, str], started: list[int], stopped: list[int],
        kept: list[int],
    ) -> None:  # fmt: skip
        super().__init__(watcher, reasons)
        self.started = list(started)
        self.stopped = list(stopped)
        self.kept = list(kept)
        why = "; ".join(f"process {pid}: {reason}" for pid, reason in sorted(reasons.items()))
        self.args = (
            f"watcher {watcher!r}: reload stopped, new process not ready ({why}); "
            f"{len(started)} replaced, {len(kept)} old kept running",
        )
