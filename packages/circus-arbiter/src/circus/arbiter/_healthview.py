"""How ``status`` shows the readiness of each process (circus.watcher "Readiness and liveness").

For a watcher with ``readiness``, ``liveness`` or ``watchdog_sec``, the ``status`` answer
gains ``health``: ``{pid: {"health", "status_text", "since"}}`` for one watcher, or
``{watcher name: {pid: ...}}`` without a name; ``health`` is ``starting``, ``ready``,
``unready`` or ``unhealthy``, ``status_text`` the process's last sd_notify ``STATUS=``. The key
is absent when no watcher has any of these options, so such an answer is exactly upstream's,
and Circus 0.19's ``circusctl`` (which prints ``status``/``statuses`` only) is not disturbed
either way. Reads in-memory state only: no syscall, however many processes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["health_of", "health_table"]


def _configured(watcher: Any) -> bool:
    settings = getattr(watcher, "settings", None)
    if settings is None or not hasattr(watcher, "health"):
        return False
    return any(getattr(settings, key, None) for key in ("readiness", "liveness", "watchdog_sec"))


def health_of(watcher: Any) -> dict[str, dict[str, Any]] | None:
    """``{pid (text): {"health", "status_text", "since"}}`` of the watcher's processes, or
    None for a watcher without readiness or liveness."""
    if not _configured(watcher):
        return None
    table: dict[str, dict[str, Any]] = {}
    for pid in watcher.pids:
        try:
            one = watcher.health(pid)
        except LookupError:  # ended between the listing and the look-up
            continue
        table[str(pid)] = {
            "health": one.get("state"),
            "status_text": one.get("status_text", ""),
            "since": one.get("since"),
        }
    return table


def health_table(watchers: Iterable[Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{watcher name: health_of(watcher)}`` for the watchers that have one."""
    tables = {w.name: health_of(w) for w in watchers}
    return {name: table for name, table in tables.items() if table is not None}
