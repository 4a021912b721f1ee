"""Per-process information and the per-watcher aggregate of the stats channel.

The psutil and /proc reads of :func:`stats` run in a worker thread: with many processes, or
on a host crowded with unrelated ones, they take far longer than the loop may be held.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ._procs import ProcessLike

if TYPE_CHECKING:
    from ._watcher import Watcher

__all__ = ["info", "info_of", "stats", "summary"]

_GONE = "No such process (stopped?)"  # upstream's answer for a vanished process


def info_of(proc: ProcessLike) -> Any:
    """Upstream's info dict of one process (with ``wid``, ``started``, ``age``), or its
    "No such process (stopped?)" string for a process that vanished meanwhile."""
    try:
        raw = proc.info()
    except Exception:  # psutil's NoSuchProcess & co, whatever the process layer lets through
        return _GONE
    if not isinstance(raw, Mapping):
        return raw  # the process layer's own "vanished" string
    data = dict(raw)
    data.setdefault("wid", proc.wid)
    data.setdefault("started", proc.started)
    data.setdefault("age", time.time() - proc.started)
    return data


def info(procs: list[tuple[int, ProcessLike]]) -> dict[int, Any]:
    """``{pid: info}`` of ``procs``."""
    return {pid: info_of(proc) for pid, proc in procs}


async def stats(watcher: Watcher, extended: bool) -> dict[int, Any]:
    """:func:`info` of every process, read in a worker thread; with ``extended`` each dict
    also goes through the ``extended_stats`` hook."""
    procs = list(watcher._procs.counted.items())  # the table is read on the loop only
    result = await asyncio.to_thread(info, procs)
    if extended and "extended_stats" in watcher._hooks:
        for pid, data in result.items():
            if isinstance(data, dict):
                await watcher._hooks.call("extended_stats", pid=pid, stats=data)
    return result


def summary(infos: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Upstream's stats-channel aggregate: ``pid`` (list), ``cpu`` (mean %), ``mem`` (sum %),
    ``age`` (max s); ``"N/A"`` when any value is."""
    result: dict[str, Any] = {"pid": [data.get("pid") for data in infos]}
    combiners: tuple[tuple[str, Callable[[list[float]], float]], ...] = (
        ("cpu", _mean),
        ("mem", sum),
        ("age", max),
    )
    for key, combine in combiners:
        raw = [data.get(key) for data in infos]
        values = [float(v) for v in raw if isinstance(v, int | float)]
        if len(values) != len(raw):
            result[key] = "N/A"
        else:
            result[key] = combine(values) if values else 0
    return result


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
