"""Ending processes: stop signal, graceful wait, SIGKILL of the tree; watcher stop; flapping.

Processes the watcher ends are moved out of the counted table first, so their exits are
never taken for crashes (no respawn, no backoff step, no flapping verdict).
"""

from __future__ import annotations

import asyncio
import logging
import signal as _signal
import time
from typing import Any

from ._base import WatcherBase, close_process
from ._flapping import Verdict
from ._procs import ProcessLike

logger = logging.getLogger("circus.watcher")

_KILL_WAIT = 10.0  # after SIGKILL of a whole tree, how long we wait before giving up on it


class StoppingMixin(WatcherBase):
    """Stopping processes and the watcher; flapping stops and retries."""

    def _send(self, proc: ProcessLike, signum: int, **how: bool) -> bool:
        try:
            proc.send_signal(signum, **how)
        except (ProcessLookupError, PermissionError):
            return False
        except Exception as exc:  # the process layer's own errors: already gone, mostly
            logger.debug("watcher %s: signal %d to %d: %s", self.name, signum, proc.pid, exc)
            return False
        return True

    async def _retire(
        self,
        procs: list[ProcessLike],
        *,
        signum: int | None = None,
        graceful_timeout: float | None = None,
    ) -> list[int]:
        """End ``procs`` (stop signal, wait, SIGKILL the tree); emit kill then reap events."""
        if not procs:
            return []
        signum = self.settings.stop_signal if signum is None else signum
        timeout = self.settings.graceful_timeout if graceful_timeout is None else graceful_timeout
        stop_children = self.settings.stop_children
        for proc in procs:
            self._processes.pop(proc.pid, None)
            self._retiring[proc.pid] = proc
            timer = self._age_timers.pop(proc.pid, None)
            if timer is not None:
                timer.cancel()
        loop = asyncio.get_running_loop()
        # A future per process only while it is being stopped (set by _on_exit); one that
        # was reaped already (returncode set) has nothing to wait for.
        waits: dict[int, asyncio.Future[int | None]] = {}
        for proc in procs:
            if proc.returncode is None:
                waits[proc.pid] = self._exits[proc.pid] = loop.create_future()
        signal_hooks = "before_signal" in self._hooks or "after_signal" in self._hooks
        tree_stops: list[asyncio.Future[Any]] = []
        for proc in procs:
            if proc.pid not in waits:
                continue  # already dead
            sig = signum
            if signal_hooks and not await self._hook("before_signal", pid=proc.pid, signum=sig):
                sig = 0  # refused: no stop signal, but the SIGKILL after the timeout still comes
            if stop_children:
                # Opt-in and slower: the process layer pins the whole tree before signalling.
                for child in proc.children():
                    self._emit("kill", {"process_pid": child, "time": time.time()})
                if sig:
                    self._emit("kill", {"process_pid": proc.pid, "time": time.time()})
                tree_stops.append(loop.create_task(proc.astop(timeout, sig, True)))
            elif sig and self._send(proc, sig):
                self._emit("kill", {"process_pid": proc.pid, "time": time.time()})
            if signal_hooks:
                await self._hook("after_signal", pid=proc.pid, signum=sig)
        pending = [fut for fut in waits.values() if not fut.done()]
        if pending and timeout > 0:
            await asyncio.wait(pending, timeout=timeout)
        stubborn = [proc for proc in procs if proc.pid in waits and not waits[proc.pid].done()]
        for proc in stubborn:
            self._emit("kill", {"process_pid": proc.pid, "time": time.time()})
            if not stop_children:
                # Rare: SIGKILL the process, its group and its pinned tree.
                tree_stops.append(loop.create_task(proc.astop(0, _signal.SIGKILL, True)))
        if tree_stops:
            try:
                results = await asyncio.wait_for(
                    asyncio.gather(*tree_stops, return_exceptions=True), timeout + _KILL_WAIT
                )
            except TimeoutError:
                results = []
                logger.error("watcher %s: processes survived SIGKILL", self.name)
            for result in results:
                if isinstance(result, BaseException):
                    logger.warning("watcher %s: stopping a tree: %s", self.name, result)
        pending = [fut for fut in waits.values() if not fut.done()]
        if pending:
            await asyncio.wait(pending, timeout=_KILL_WAIT)
        reap_hooks = self._hooks.keys() & {"before_reap", "after_reap"}
        for proc in procs:
            self._retiring.pop(proc.pid, None)
            self._exits.pop(proc.pid, None)
            self._wids.release(proc.wid)
            if reap_hooks:
                await self._reap_with_hooks(proc)
            else:
                self._emit_reap(proc)
            close_process(proc)
        return [proc.pid for proc in procs]

    def _cancel_background(self) -> None:
        """Forget every pending respawn and flapping retry (a stop or start wins)."""
        self._generation += 1
        for handle in self._respawn_timers:
            handle.cancel()
        self._respawn_timers.clear()
        self._pending = 0
        self._halted = False
        if self._flap_timer is not None:
            self._flap_timer.cancel()
            self._flap_timer = None
        self._disarm_on_demand()

    async def _stop(self) -> list[int]:
        if self._status == "stopped":
            return []
        self._status = "stopping"
        self._cancel_background()
        await self._hook("before_stop")
        stopped = await self._retire(list(self._processes.values()))
        self._output.close()
        self._status = "stopped"
        self._emit("stop", {"time": time.time()})
        await self._hook("after_stop")
        return stopped

    async def _stop_from_inside(
        self, *, rearm: bool = False, generation: int | None = None
    ) -> None:
        async with self._get_lock():
            if generation is not None and generation != self._generation:
                return  # a stop or start happened meanwhile: it wins
            await self._stop()
        if rearm and self.on_demand:
            self._arm_on_demand()

    async def _flap(self, verdict: Verdict, generation: int) -> None:
        async with self._get_lock():
            if generation != self._generation or self._status not in ("active", "starting"):
                return  # the user stopped or restarted it meanwhile: that wins
            logger.warning("watcher %s is flapping: %s", self.name, verdict.value)
            await self._stop()
            if verdict is Verdict.RETRY_LATER:
                loop = asyncio.get_running_loop()
                self._flap_timer = loop.call_later(
                    self._flapping.retry_in, self._flap_retry_due, self._generation
                )

    def _flap_retry_due(self, generation: int) -> None:
        self._flap_timer = None
        if generation == self._generation and self._status == "stopped":
            self._spawn_task(self._flap_retry(generation))

    async def _flap_retry(self, generation: int) -> None:
        async with self._get_lock():
            if generation == self._generation and self._status == "stopped":
                self._flapping.clear(tries=False)
                await self._start()
