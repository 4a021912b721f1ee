"""Graceful reload (new processes first, then the old ones stopped) and resizing.

Both run with the watcher's lock held. A host short of resources ends a reload early: the
old processes that were not replaced keep running.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ._errors import ResourceShortage, WatcherError

if TYPE_CHECKING:
    from ._watcher import Watcher

__all__ = ["replace_all", "trim"]

logger = logging.getLogger("circus.watcher")


async def replace_all(w: Watcher, sequential: bool) -> dict[str, Any]:
    """Replace every process (one new/old pair at a time when ``sequential``), new first;
    returns ``{"stopped", "started", "kept"}``.

    Raises:
        WatcherError: a stream changed by ``set`` cannot be opened (nothing replaced).
    """
    w._inputs.reset()
    try:
        w._output.refresh()  # a stream changed by ``set``: new processes write there
    except Exception as exc:
        raise WatcherError(f"watcher {w.name!r}: cannot open its streams: {exc}") from exc
    generation = w._life.generation
    info = await _replace_processes(w, sequential)
    if generation == w._life.generation:
        w._output.close_superseded()  # else the stop that interrupted us closes them
    return info


async def _replace_processes(w: Watcher, sequential: bool) -> dict[str, Any]:
    old = list(w._procs)
    started: list[int] = []
    stopped: list[int] = []
    generation = w._life.generation
    warmup = w.settings.warmup_delay
    short = False  # the host ran short of resources: keep the old processes not replaced
    if sequential:
        for proc in old:
            try:
                new = await w._spawner.spawn(generation)
            except ResourceShortage as exc:
                logger.warning("watcher %s: reload stopped short: %s", w.name, exc)
                break
            if new is None:
                break
            started.append(new.pid)
            if proc.pid in w._procs:
                stopped += await w._stopper.retire([proc])
            if warmup > 0:
                await asyncio.sleep(warmup)
    else:
        for index in range(w.numprocesses):
            try:
                new = await w._spawner.spawn(generation)
            except ResourceShortage as exc:
                logger.warning("watcher %s: reload stopped short: %s", w.name, exc)
                short = True
                break
            if new is None:
                break
            started.append(new.pid)
            if warmup > 0 and index + 1 < w.numprocesses:
                await asyncio.sleep(warmup)
        if generation == w._life.generation:
            retiring = old[: len(started)] if short else old
            stopped = await w._stopper.retire([p for p in retiring if p.pid in w._procs])
    if generation == w._life.generation:
        await trim(w)
    kept = [pid for pid in w.pids if pid not in started]
    return {"stopped": stopped, "started": started, "kept": kept}


async def trim(w: Watcher) -> None:
    """Stop the oldest processes above ``numprocesses``; spawn up to it."""
    excess = len(w._procs) + w._spawner.pending - w.numprocesses
    if excess > 0:
        excess -= w._spawner.drop_pending(excess)
    if excess > 0:
        await w._stopper.retire(w._procs.oldest(excess))
    elif excess < 0 and w.status() == "active":
        await w._spawner.spawn_up_to_target()
