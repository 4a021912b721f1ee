"""Starting and stopping watchers in ``depends_on`` order (systemd's ``Requires=`` + ``After=``).

A watcher is started once every watcher it requires is started and ready (``wait_ready`` of
the watcher layer; a watcher without readiness counts as ready once its processes are
spawned); it is stopped only after every watcher that requires it is stopped. Watchers that do
not wait for each other start (or stop) concurrently; among those ready to go at the same
moment, launches follow the priority order, ``warmup_delay`` apart. A failed requirement
leaves its dependents stopped, each with a ``dependency_failed`` event naming the watcher at
the root of the failure and why.

No watcher's lock is held while another's is awaited (each start or stop takes only its own,
through ``WatcherSet``'s one-watcher methods), so concurrent cascades cannot deadlock; the
graph has no cycle (``DepGraph.check``), so the waits between watchers end.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import CommandError

if TYPE_CHECKING:
    from ._watcher_set import WatcherSet

__all__ = ["Failure", "settle", "start_in_order", "stop_in_order"]

log = logging.getLogger("circus.arbiter")

#: Why a watcher is not up: (the watcher at the root of the failure, why), or None when up.
Failure = tuple[str, str] | None


async def settle(watchers: WatcherSet, watcher: Any) -> str | None:
    """Why ``watcher`` (just started) does not count as up, or ``None`` once every process of
    it is ready (spawned, without readiness). A ``stopping`` daemon ends the wait."""
    status = watcher.status()
    if status != "active":
        if status == "stopped" and getattr(watcher, "on_demand", False):
            return None  # armed: its sockets are listening, it spawns on the first client
        return f"is {status}"
    wait = getattr(watcher, "wait_ready", None)
    if wait is None:  # a watcher layer without readiness: spawned is up
        return None
    waiting = asyncio.ensure_future(wait(None))
    shutting = asyncio.ensure_future(watchers.wait_shut())
    try:
        await asyncio.wait({waiting, shutting}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        shutting.cancel()
        if not waiting.done():
            waiting.cancel()
    if not waiting.done() or waiting.cancelled():
        return "was not ready when the daemon began to stop"
    exc = waiting.exception()
    if exc is not None:
        return f"is not ready: {exc}"
    return None


async def start_in_order(
    watchers: WatcherSet,
    names: Iterable[str],
    infos: dict[str, Any] | None = None,
    pace: Callable[[], Any] | None = None,
) -> dict[str, Failure]:
    """Start ``names`` (lowercase; they and everything they require), each once what it
    requires is up; returns ``{name: Failure}`` for every watcher of the run.

    ``infos`` receives each started watcher's start answer; ``pace()`` (awaited) is called
    before each launch. A name without a watcher fails (``is not loaded``).
    """
    graph = watchers.deps
    run = [w.name.lower() for w in watchers.ordered()]  # priority order
    wanted = graph.required_closure(names)
    order = [n for n in run if n in wanted] + sorted(n for n in wanted if n not in run)
    loop = asyncio.get_running_loop()
    done: dict[str, asyncio.Future[Failure]] = {n: loop.create_future() for n in order}

    async def one(name: str) -> Failure:
        for dep in graph.requires(name):
            failed = await asyncio.shield(done[dep])
            if failed is not None:
                _blocked(watchers, name, failed)
                return failed
        watcher = watchers.table.find(name)
        if watcher is None:
            return (name, "is not loaded (no watcher of that name)")
        if watchers.stopping:
            return (name, "was not started: the daemon is stopping")
        if pace is not None:
            await pace()
        try:
            info = await watchers.start_one(watcher)
        except Exception as exc:
            return (watcher.name, f"did not start: {exc}")
        if info is None:
            return (watcher.name, "was not started: the daemon is stopping")
        if infos is not None:
            infos[name] = info
        why = await settle(watchers, watcher)
        if why is None:
            why = _lost_requirement(watchers, name)
        return None if why is None else (watcher.name, why)

    async def run_one(name: str) -> None:
        try:
            result = await one(name)
        except BaseException as exc:  # never leave a dependent waiting forever
            done[name].set_result((name, f"failed: {exc!r}"))
            raise
        done[name].set_result(result)

    await asyncio.gather(*(run_one(n) for n in order), return_exceptions=True)
    return {n: done[n].result() for n in order if done[n].done()}


def _lost_requirement(watchers: WatcherSet, name: str) -> str | None:
    # A requirement stopped while this watcher was starting (a concurrent `stop`).
    for dep in watchers.deps.requires(name):
        other = watchers.table.find(dep)
        if other is None or (other.status() != "active" and not getattr(other, "on_demand", False)):
            return f"lost its dependency {dep!r} while starting"
    return None


def _blocked(watchers: WatcherSet, name: str, failed: tuple[str, str]) -> None:
    root, why = failed
    if watchers.stopping:
        return
    watcher = watchers.table.find(name)
    spelled = watcher.name if watcher is not None else name
    log.error("watcher %s not started: its dependency %s %s", spelled, root, why)
    watchers.publish_event(spelled, "dependency_failed", dependency=root, reason=why)


def failure_error(name: str, failed: tuple[str, str]) -> CommandError:
    """The answer to a ``start`` of ``name`` that did not happen because of ``failed``."""
    root, why = failed
    if root.lower() == name.lower():
        return CommandError(f"watcher {name!r} {why}")
    return CommandError(f"cannot start {name!r}: its dependency {root!r} {why}")


async def stop_in_order(watchers: WatcherSet, targets: Mapping[str, Any]) -> None:
    """Stop ``targets`` (``{lowercase name: watcher}``), each once every target requiring
    it is stopped; independent ones concurrently. A failed stop is logged, never blocks
    the rest."""
    graph = watchers.deps
    loop = asyncio.get_running_loop()
    done: dict[str, asyncio.Future[None]] = {n: loop.create_future() for n in targets}

    async def one(name: str, watcher: Any) -> None:
        try:
            for dependent in graph.dependents(name):
                if dependent in done and dependent != name:
                    await asyncio.shield(done[dependent])
            await watchers.stop_one(watcher)
        except Exception as exc:
            log.error("watcher %s failed to stop: %s", watcher.name, exc)
        finally:
            done[name].set_result(None)

    await asyncio.gather(*(one(n, w) for n, w in targets.items()), return_exceptions=True)
