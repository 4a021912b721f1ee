"""Ending processes (stop signal, graceful wait, SIGKILL of the tree), the watcher's stop
sequence, signals with their hooks, and the stop and retries a flapping verdict leads to.

Processes the watcher ends are moved out of the counted set first, so their exits are
never taken for crashes (no respawn, no backoff step, no flapping verdict).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal as _signal
import time
from typing import TYPE_CHECKING, Any

from ._errors import ProcessNotFoundError
from ._flapping import Verdict
from ._lifecycle import WatcherState
from ._procs import ProcessLike, close_process

if TYPE_CHECKING:
    from ._procset import ExitGroup
    from ._watcher import Watcher

__all__ = ["Stopper"]

logger = logging.getLogger("circus.watcher")

_KILL_WAIT = 10.0  # after SIGKILL of a whole tree, how long we wait before giving up on it


class _Ending:
    """Where one retirement stands, so that it can be taken on again after a cancel."""

    __slots__ = (
        "procs", "group", "signum", "timeout", "next", "asked", "deadline", "killed", "trees",
        "reported", "reap_due",
    )  # fmt: skip

    def __init__(
        self, procs: list[ProcessLike], group: ExitGroup, signum: int, timeout: float
    ) -> None:
        self.procs = procs
        self.group = group
        self.signum = signum
        self.timeout = timeout
        self.next = 0  # the first process not signalled yet
        self.asked = -1  # the last process whose before_signal hook was called
        self.deadline: float | None = None  # loop time when the graceful wait ends
        self.killed = False  # the stubborn ones were SIGKILLed
        self.trees: list[asyncio.Future[Any]] = []  # tree stops under way
        self.reported = 0  # the first process whose reap is not reported yet
        self.reap_due: int | None = None  # pid whose reap is being reported (its hooks run)


class Stopper:
    """Stops a watcher's processes and the watcher itself; owns the flapping retry timer."""

    def __init__(self, watcher: Watcher) -> None:
        self._w = watcher
        self._flap_timer: asyncio.TimerHandle | None = None
        self._endings: set[asyncio.Task[None]] = set()  # taken on after a cancelled caller

    def send(self, proc: ProcessLike, signum: int, **how: bool) -> bool:
        """Send ``signum`` to ``proc`` (``children``/``recursive`` as the process layer takes
        them); False when the process is gone or refuses."""
        try:
            proc.send_signal(signum, **how)
        except (ProcessLookupError, PermissionError):
            return False
        except Exception as exc:  # the process layer's own errors: already gone, mostly
            logger.debug("watcher %s: signal %d to %d: %s", self._w.name, signum, proc.pid, exc)
            return False
        return True

    async def signal_all(
        self, signum: int, procs: list[ProcessLike], *, children: bool = False,
        recursive: bool = False,
    ) -> None:  # fmt: skip
        """Send ``signum`` to each of ``procs``, through ``before_signal``/``after_signal``."""
        hooks = self._w._hooks
        hooked = hooks.any_of("before_signal", "after_signal")
        for proc in procs:
            if (
                hooked
                and not await hooks.call("before_signal", pid=proc.pid, signum=signum)
                and signum != _signal.SIGKILL
            ):
                continue
            self.send(proc, signum, children=children, recursive=recursive)
            if hooked:
                await hooks.call("after_signal", pid=proc.pid, signum=signum)

    def signal_child(self, proc: ProcessLike, childpid: int, signum: int) -> None:
        """Send ``signum`` to ``childpid``, a child of ``proc``.

        Raises:
            ProcessNotFoundError: ``childpid`` is not (or no longer) a child of ``proc``.
        """
        from circus.process import is_child_of  # two /proc reads, not a children listing

        if not is_child_of(childpid, proc.pid):
            raise ProcessNotFoundError(self._w.name, childpid)
        try:
            os.kill(childpid, signum)
        except ProcessLookupError:
            raise ProcessNotFoundError(self._w.name, childpid) from None

    async def retire(
        self,
        procs: list[ProcessLike],
        *,
        signum: int | None = None,
        graceful_timeout: float | None = None,
    ) -> list[int]:
        """End ``procs`` (stop signal, wait, SIGKILL the tree); emit kill then reap events.

        A caller cancelled meanwhile stops waiting, the ending does not: a task takes it on
        from where it was (SIGKILL after the timeout, the reap events, the descriptors
        closed), and :meth:`stop` waits for it. Abandoned half-way, the processes would be
        neither counted nor ended by anyone: alive for good, their exits never reported.
        """
        if not procs:
            return []
        o = self._w.settings
        ending = _Ending(
            procs,
            self._w._procs.retire(procs),
            o.stop_signal if signum is None else signum,
            o.graceful_timeout if graceful_timeout is None else graceful_timeout,
        )
        # Run inline, not in a task of its own: a task's hand-back costs the stop's answer
        # loop passes (the held reap events flushed, the orphan look) before it is sent.
        try:
            await self._end(ending)
        except asyncio.CancelledError:
            task = asyncio.get_running_loop().create_task(self._resume(ending))
            self._endings.add(task)
            task.add_done_callback(self._ended)
            raise
        except BaseException:
            self._w._procs.abandon(ending.group)
            raise
        return [proc.pid for proc in procs]

    async def _resume(self, ending: _Ending) -> None:
        try:
            await self._end(ending)
        except BaseException:
            # Cancelled itself (the loop shutting down) or failed: the countdown's entries go
            # with it, none left waiting for an exit nobody awaits.
            self._w._procs.abandon(ending.group)
            raise

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._endings.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "watcher %s: ending processes failed", self._w.name, exc_info=task.exception()
            )

    async def wait_endings(self) -> None:
        """Wait until no retirement is under way (one a cancelled caller left running)."""
        while self._endings:
            await asyncio.wait(list(self._endings))

    async def _end(self, e: _Ending) -> None:
        """Signal, wait, SIGKILL, report and close; re-entered after a cancel, it goes on
        from where ``e`` says it was (each step recorded once done)."""
        w = self._w
        stop_children = w.settings.stop_children
        procs, group, timeout = e.procs, e.group, e.timeout
        waits = group.waits
        loop = asyncio.get_running_loop()
        hooks = w._hooks
        signal_hooks = hooks.any_of("before_signal", "after_signal")
        # One at a time, each signal followed by its event: signalling 1,000 back to back
        # first was measured slower on 2 cores (the children, all runnable at once, take the
        # CPU from the daemon's own per-process work; bench/README.md, issue 19 notes).
        while e.next < len(procs):
            proc = procs[e.next]
            exit_seen = waits.get(proc.pid)
            if exit_seen is None or exit_seen.done():
                e.next += 1
                continue  # already dead (a signal hook awaited may let exits be seen)
            sig = e.signum
            if signal_hooks and e.asked != e.next:
                # Asked once: a hook cut by a cancel is not run again, and its process gets
                # the signal (no answer is no refusal).
                e.asked = e.next
                if not await hooks.call("before_signal", pid=proc.pid, signum=sig):
                    sig = 0  # refused: no stop signal, but the SIGKILL after the timeout comes
            e.next += 1
            if stop_children:
                # Opt-in and slower: the process layer pins the whole tree before signalling.
                for child in proc.children():
                    w._emit("kill", {"process_pid": child, "time": time.time()})
                if sig:
                    w._emit("kill", {"process_pid": proc.pid, "time": time.time()})
                e.trees.append(loop.create_task(proc.astop(timeout, sig, True)))
            elif sig and self.send(proc, sig):
                w._emit("kill", {"process_pid": proc.pid, "time": time.time()})
            if signal_hooks:
                await hooks.call("after_signal", pid=proc.pid, signum=sig)
        if e.deadline is None:
            e.deadline = loop.time() + timeout
        if not e.killed:
            left = e.deadline - loop.time()
            if left > 0 and not group.all_exited.done():
                await asyncio.wait([group.all_exited], timeout=left)
            e.killed = True
            for proc in procs:
                exit_seen = waits.get(proc.pid)
                if exit_seen is None or exit_seen.done():
                    continue
                w._emit("kill", {"process_pid": proc.pid, "time": time.time()})
                if not stop_children:
                    # Rare: SIGKILL the process, its group and its pinned tree.
                    e.trees.append(loop.create_task(proc.astop(0, _signal.SIGKILL, True)))
        if e.trees:
            await self._await_trees(e.trees, timeout + _KILL_WAIT)
            e.trees = []
        if not group.all_exited.done():
            await asyncio.wait([group.all_exited], timeout=_KILL_WAIT)
        reap_hooks = hooks.any_of("before_reap", "after_reap")
        spawner = w._spawner
        # Spawner.reap_with_hooks in steps, each recorded: a hook cut by a cancel does not
        # lose the reap, nor run again.
        while e.reported < len(procs):
            proc = procs[e.reported]
            if e.reap_due != proc.pid and w._procs.retired(proc):
                e.reap_due = proc.pid  # its reap is ours to report, even if a hook is cut
                if reap_hooks:
                    await spawner.before_reap(proc, time.time())
            if e.reap_due == proc.pid:
                e.reap_due = None
                spawner.emit_reap(proc)
                if reap_hooks:
                    await spawner.after_reap(proc, time.time())
            e.reported += 1
            close_process(proc)

    async def _await_trees(self, stops: list[asyncio.Future[Any]], limit: float) -> None:
        # shielded: a cancelled caller leaves the tree stops running for whoever resumes
        gathered = asyncio.gather(*stops, return_exceptions=True)
        try:
            results = await asyncio.wait_for(asyncio.shield(gathered), limit)
        except TimeoutError:
            results = []
            logger.error("watcher %s: processes survived SIGKILL", self._w.name)
        for result in results:
            if isinstance(result, BaseException):
                logger.warning("watcher %s: stopping a tree: %s", self._w.name, result)

    def cancel_flap_retry(self) -> None:
        """Forget a flapping retry not started yet."""
        if self._flap_timer is not None:
            self._flap_timer.cancel()
            self._flap_timer = None

    async def stop(self) -> list[int]:
        """The stop sequence (caller holds the lock): ``before_stop``, end every process,
        close the streams, ``stopped`` (emits ``stop``), ``after_stop``."""
        w = self._w
        if w._life.state is WatcherState.STOPPED:
            return []
        if w._life.state is not WatcherState.STOPPING:  # else a stop cancelled half-way
            w._life.change(WatcherState.STOPPING)
        w._cancel_background()
        await w._hooks.call("before_stop")
        stopped = await self.retire(list(w._procs))
        await self.wait_endings()  # a decr, reload, or stop whose caller was cancelled
        abandoned = list(w._procs.retiring.values())  # an ending itself given up half-way
        if abandoned:
            stopped += await self.retire(abandoned)
        w._output.close()
        w._life.change(WatcherState.STOPPED)
        await w._hooks.call("after_stop")
        return stopped

    async def stop_from_inside(self, *, rearm: bool = False, generation: int | None = None) -> None:
        """A stop the watcher decided itself (refusal, failure, nothing left to run); a user
        start or stop since ``generation`` wins. ``rearm``: an on_demand watcher waits on
        its sockets again."""
        w = self._w
        async with w._get_lock():
            if generation is not None and generation != w._life.generation:
                return  # a stop or start happened meanwhile: it wins
            await self.stop()
        if rearm and w.on_demand:
            w._on_demand.arm()

    async def flap(self, verdict: Verdict, generation: int) -> None:
        """Stop a flapping watcher; start it again after ``flapping.retry_in`` if the
        verdict allows a retry."""
        w = self._w
        async with w._get_lock():
            if generation != w._life.generation or not w._life.running:
                return  # the user stopped or restarted it meanwhile: that wins
            logger.warning("watcher %s is flapping: %s", w.name, verdict.value)
            await self.stop()
            if verdict is Verdict.GIVE_UP:
                reason = f"flapping: {w._flapping.attempts} exits within {w._flapping.window} s"
                w._emit("give_up", {"reason": reason + ", no retry left", "time": time.time()})
            if verdict is Verdict.RETRY_LATER:
                loop = asyncio.get_running_loop()
                self._flap_timer = loop.call_later(
                    w._flapping.retry_in, self._flap_retry_due, w._life.generation
                )

    async def give_up(self, failures: int, generation: int) -> None:
        """Stop for good a watcher whose processes failed ``give_up_after`` times in a row
        (each up less than ``backoff_reset``); emits ``give_up``."""
        w = self._w
        async with w._get_lock():
            if generation != w._life.generation or not w._life.running:
                return  # the user stopped or restarted it meanwhile: that wins
            logger.warning("watcher %s gives up: %d failed exits in a row", w.name, failures)
            await self.stop()
            reason = f"{failures} failed exits in a row (give_up_after)"
            w._emit("give_up", {"reason": reason, "time": time.time()})

    def _flap_retry_due(self, generation: int) -> None:
        self._flap_timer = None
        w = self._w
        if generation == w._life.generation and w._life.state is WatcherState.STOPPED:
            w._tasks.run(self._flap_retry(generation))

    async def _flap_retry(self, generation: int) -> None:
        w = self._w
        async with w._get_lock():
            if generation == w._life.generation and w._life.state is WatcherState.STOPPED:
                w._flapping.clear(tries=False)
                await w._start()
