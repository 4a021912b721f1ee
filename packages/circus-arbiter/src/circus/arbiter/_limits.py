"""The daemon's side of the ceilings (``circus.watcher.LIMITS`` is the one table).

A control command or an ``Arbiter(...)`` argument beyond a ceiling is refused before anything
changes; the watcher layer's words become an errno-3 answer (or a ValueError for the Python
API). The daemon adds one ceiling of its own: the ``numprocesses`` of every watcher, summed,
stays at most ``MAX_TOTAL_PROCESSES``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from circus.watcher import MAX_TOTAL_PROCESSES, OptionError, check_limit, check_option, shorten

from ._errors import MessageError

__all__ = ["check_property", "check_total", "check_arbiter_args"]


def check_property(key: str, value: Any) -> Any:
    """``value`` of a command property or ``set``/``add`` option that has a ceiling (``nb``,
    ``lines``, ``graceful_timeout``, ``max_retry``, ``rlimit_*`` …); others pass unchanged.

    Raises:
        MessageError: out of range (errno 3, naming the property, value and ceiling).
    """
    try:
        check_option(key, value)
    except OptionError as exc:
        raise MessageError(str(exc)) from None
    return value


def check_total(watchers: Iterable[Any], name: str, target: int) -> None:
    """Refuse to let the watcher called ``name`` (existing or about to be added) run
    ``target`` processes when the ``numprocesses`` of every watcher, summed, would then be
    above :data:`MAX_TOTAL_PROCESSES`. Stopped watchers count too: starting them would spawn
    their ``numprocesses``.

    Raises:
        MessageError: the total would be above the ceiling (errno 3).
    """
    others = sum(int(w.numprocesses) for w in watchers if w.name != name)
    total = others + int(target)
    if total > MAX_TOTAL_PROCESSES:
        raise MessageError(
            f"{shorten(name)} cannot run {int(target)} processes: the daemon would then run "
            f"{total} in total, above its ceiling of {MAX_TOTAL_PROCESSES} "
            f"(numprocesses of every watcher, summed)"
        )


def check_arbiter_args(**values: Any) -> None:
    """The daemon-wide numbers given to ``Arbiter(...)`` (``check_delay``, ``warmup_delay``,
    ``stats_interval``, ``output_lines``).

    Raises:
        OptionError: (a ValueError) out of range, naming the argument, value and ceiling.
    """
    for name, value in values.items():
        check_limit(name, value)
