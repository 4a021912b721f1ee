"""Exceptions raised by circus.watcher.

Every error of this layer derives from :class:`WatcherError`, so a caller (the daemon) can
translate the whole family into a control answer at one place. Errors raised by
``circus.process`` while spawning are wrapped here, never leaked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


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
        super().__init__(f"invalid value {value!r} for option {option!r}: expected {expected}")


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
        super().__init__(f"{problem} {option!r}{hint}; {listing}: {', '.join(self.valid)}")


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
