"""Graceful reload (new processes first, then the old ones stopped) and resizing.

Both run with the watcher's lock held. A host short of resources ends a reload early: the
old processes that were not replaced keep running.

A watcher with readiness (``watcher.has_readiness``) rolls instead: one new process, wait
until it is ready, then one old process stopped, and so on, so the count of *ready*
processes never drops below what it was. A new process that is not ready in
``readiness_timeout`` (or exits first) ends the roll: it is stopped, the old processes not
yet replaced keep serving, and :class:`RolloutError` says which process and why.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from ._errors import NotReady, ResourceShortage, RolloutError, WatcherError
from ._procs import ProcessLike

if TYPE_CHECKING:
    from ._watcher import Watcher

__all__ = ["replace_all", "trim"]

logger = logging.getLogger("circus.watcher")


async def replace_all(w: Watcher, sequential: bool) -> dict[str, Any]:
    """Replace every process (one new/old pair at a time when ``sequential``), new first;
    returns ``{"stopped", "started", "kept"}``.

    Raises:
        OptionError: an ``env_file`` or the ``virtualenv`` cannot be read (nothing replaced).
        WatcherError: a stream changed by ``set`` cannot be opened (nothing replaced).
    """
    w._inputs.reset()
    w._inputs.env()  # a bad env_file or virtualenv: nothing replaced, the old ones keep serving
    try:
        w._output.refresh()  # a stream changed by ``set``: new processes write there
    except Exception as exc:
        raise WatcherError(f"watcher {w.name!r}: cannot open its streams: {exc}") from exc
    generation = w._life.generation
    if w.has_readiness:
        info = await _roll(w)  # raises RolloutError: the old processes keep their streams
    else:
        info = await _replace_processes(w, sequential)
    if generation == w._life.generation:
        w._output.close_superseded()  # else the stop that interrupted us closes them
    return info


async def _roll(w: Watcher) -> dict[str, Any]:
    """One new process, ready, then one old one stopped; repeated for every old process."""
    old = list(w._procs)
    started: list[int] = []
    stopped: list[int] = []
    generation = w._life.generation
    warmup = w.settings.warmup_delay
    for index, proc in enumerate(old):
        if generation != w._life.generation:
            break  # a stop or restart is waiting for the lock: it wins
        try:
            new = await w._spawner.spawn(generation)
        except ResourceShortage as exc:
            logger.warning("watcher %s: reload stopped short: %s", w.name, exc)
            break
        if new is None:
            break
        reason = await _until_ready(w, new, generation)
        if generation != w._life.generation:
            break
        if reason is not None:
            await _discard(w, new, reason)
            kept = [p.pid for p in old[index:] if p.pid in w._procs]
            logger.error("watcher %s: reload stopped: process %d %s", w.name, new.pid, reason)
            raise RolloutError(w.name, {new.pid: reason}, started, stopped, kept)
        started.append(new.pid)
        if proc.pid in w._procs:  # it may have died meanwhile (then nothing to stop)
            stopped += await w._stopper.retire([proc])
        if warmup > 0 and index + 1 < len(old):
            await asyncio.sleep(warmup)
    if generation == w._life.generation:
        await trim(w)
    kept = [pid for pid in w.pids if pid not in started]
    return {"stopped": stopped, "started": started, "kept": kept}


# The roll's own deadline comes this much before the health monitor's readiness deadline
# (both count readiness_timeout from the spawn): the roll then stops the process as part of
# the reload, so a bad release is not also counted as a failed exit (backoff, crash loop,
# give_up_after, flapping) of a watcher whose old processes are serving fine. Should the
# monitor's come first anyway (a loop running late), its ending of the process waits for the
# watcher's lock, which the roll holds, and finds the process already ended by the roll.
_AHEAD = 0.2


async def _until_ready(w: Watcher, proc: ProcessLike, generation: int) -> str | None:
    """Wait until ``proc`` is ready; the reason it is not, or None (ready, or the wait
    was cut short by a stop, which the caller sees in the generation)."""
    limit = w.settings.readiness_timeout
    budget = max(0.05, limit - (time.time() - proc.started) - _AHEAD)
    loop = asyncio.get_running_loop()
    ready = asyncio.ensure_future(w.wait_ready([proc.pid], timeout=budget))
    try:
        while not ready.done():
            # Spawner.wake() (interrupt(), so every stop and restart) resolves the futures of
            # this set: a stop does not wait out readiness_timeout behind our lock.
            woken: asyncio.Future[None] = loop.create_future()
            w._spawner._backoffs.add(woken)
            try:
                await asyncio.wait({ready, woken}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                w._spawner._backoffs.discard(woken)
            if generation != w._life.generation:
                return None
        exc = ready.exception()
        if exc is None:
            return None
        if not isinstance(exc, NotReady):
            raise exc
        if proc.pid in w._procs and w.health(proc.pid)["state"] == "starting":
            return f"not ready after {limit:g} s"  # our deadline, just before the monitor's
        return exc.reasons.get(proc.pid) or str(exc)
    finally:
        if not ready.done():
            ready.cancel()
            await asyncio.gather(ready, return_exceptions=True)


async def _discard(w: Watcher, proc: ProcessLike, reason: str) -> None:
    """Stop a new process that failed its readiness, and anything spawned in its place, so
    the watcher is back to its old processes only."""
    if proc.pid in w._procs:
        # Ours to report when our deadline came first; else the health monitor did, and its
        # own ending of the process (queued behind our lock) finds it gone and counts nothing.
        if w.health(proc.pid)["state"] == "starting":
            payload = {"process_pid": proc.pid, "process_id": proc.wid, "reason": reason}
            w._emit("unready", payload)
        await w._stopper.retire([proc])
    else:  # the health monitor may be ending it already (readiness_timeout): see it gone
        exit_seen = w._procs.exits.get(proc.pid)
        if exit_seen is not None:
            await asyncio.shield(exit_seen)
    # Its death may have been taken for a crash and replaced: the newest go, never the old.
    excess = len(w._procs) + w._spawner.pending - w.numprocesses
    if excess > 0:
        excess -= w._spawner.drop_pending(excess)
    if excess > 0:
        newest = sorted(w._procs, key=lambda p: p.started)[-excess:]
        await w._stopper.retire(newest)


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
