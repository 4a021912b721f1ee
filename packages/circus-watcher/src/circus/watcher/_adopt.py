"""Taking already-running processes into a watcher: no hook runs and nothing is spawned for
them.

Used after a crash of the daemon (processes of the previous generation, attached through
pidfds) and after a re-exec (the daemon's own children). An adopted process is counted
against ``numprocesses`` with the worker id it had, its pipes (if it still has any) are
pumped into the watcher's streams, and its later exit is handled as any other's: reaped,
reported, replaced by the restart policy.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ._errors import WatcherError
from ._lifecycle import WatcherState
from ._limits import MAX_PROCESSES
from ._procs import ProcessLike, close_process

if TYPE_CHECKING:
    from ._watcher import Watcher

__all__ = ["adopt"]


def _check(w: Watcher, procs: list[ProcessLike]) -> None:
    """Refuse the whole batch (nothing changed) on a duplicate or already-used pid or wid."""
    pids: set[int] = set()
    wids: set[int] = set()
    used = {p.wid for p in [*w._procs.counted.values(), *w._procs.retiring.values()]}
    for proc in procs:
        wid = proc.wid
        # Worker ids stay below twice the ceiling of processes (a reload's peak): a larger
        # one, from a corrupt record, would make the pool of free ids that large.
        if not isinstance(wid, int) or isinstance(wid, bool) or not 0 < wid <= 2 * MAX_PROCESSES:
            raise WatcherError(f"watcher {w.name!r}: cannot adopt pid {proc.pid}: bad wid {wid!r}")
        if proc.pid in pids or proc.pid in w._procs.counted or proc.pid in w._procs.retiring:
            raise WatcherError(f"watcher {w.name!r}: pid {proc.pid} is adopted twice")
        if wid in wids or wid in used:
            raise WatcherError(f"watcher {w.name!r}: wid {wid} is already in use")
        pids.add(proc.pid)
        wids.add(wid)


def _take(w: Watcher, proc: ProcessLike, emit: bool) -> None:
    w._procs.wids.claim(proc.wid)
    w._procs.add(proc)
    # the output first: its exit callback drains the pipes before ours reports the reap
    w._output.attach(proc)
    proc.add_exit_callback(w._spawner._exit_callback)
    w._health.adopted(proc)  # ready (it was serving); liveness probes resume
    max_age = w.settings.max_age
    if max_age > 0:
        # Its age counts from its spawn, not from the adoption.
        delay = max_age + random.uniform(0, w.settings.max_age_variance) - proc_age(proc)
        w._procs.arm_max_age(proc, max(delay, 0.0), w._spawner._on_max_age)
    if emit:
        w._emit("adopt", {"process_pid": proc.pid, "time": time.time(), "wid": proc.wid})


def proc_age(proc: ProcessLike) -> float:
    """Seconds since ``proc`` was spawned."""
    return max(time.time() - (proc.started or time.time()), 0.0)


async def adopt(w: Watcher, processes: Iterable[ProcessLike], *, emit: bool = True) -> list[int]:
    """See :meth:`Watcher.adopt`."""
    from ._reload import trim

    procs = []
    for proc in processes:
        if proc.returncode is None:
            procs.append(proc)
        else:  # reaped already: nothing to take in (one that died unnoticed is reaped below)
            close_process(proc)
    async with w._get_lock():
        _check(w, procs)
        if w._life.state is WatcherState.STOPPED:
            w._cancel_background()
            w._flapping.clear()
            w._policy.reset()
            w._inputs.reset()
            try:
                w._output.open()
            except Exception as exc:
                raise WatcherError(f"watcher {w.name!r}: cannot open its streams: {exc}") from exc
            w._life.change(WatcherState.STARTING)
            for proc in procs:
                _take(w, proc, emit)
            w._life.change(WatcherState.ACTIVE)
        elif w._life.state is WatcherState.STOPPING:
            raise WatcherError(f"watcher {w.name!r} is stopping: nothing can be adopted")
        else:
            for proc in procs:
                _take(w, proc, emit)
        # Counted against numprocesses: the oldest above it are ended, the missing spawned.
        await trim(w)
        return [proc.pid for proc in procs if proc.pid in w._procs]
