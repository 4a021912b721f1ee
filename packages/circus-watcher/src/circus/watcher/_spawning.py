"""Spawning and deaths: creating processes, and what an unrequested exit leads to.

The replacement for a dead process is spawned inside its exit callback (no await between
the kernel's report and the new fork/exec) unless a spawn hook or a failed spawn needs the
loop; backoff delays and ``max_age`` are timers, never a tick.

A spawn that fails because the host ran short (no file descriptor, no process slot, no
memory: ``EMFILE``, ``ENFILE``, ``EAGAIN``, ``ENOMEM``) is a transient failure: it does not
count against ``max_retry`` and never stops the watcher; the missing processes are spawned
later, 0.1 s after the first such failure, doubling up to 5 s while it lasts.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import time

from ._base import WatcherBase, close_process, process_status
from ._errors import ResourceShortage, SpawnFailedError
from ._flapping import Verdict
from ._procs import ProcessLike

logger = logging.getLogger("circus.watcher")

_SHORTAGE = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM})
_SHORTAGE_FIRST = 0.1
_SHORTAGE_MAX = 5.0


def is_shortage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is the host running short, not a bad option."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return False
        if getattr(seen, "errno", None) in _SHORTAGE:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SpawningMixin(WatcherBase):
    """Process creation, exit handling, respawn, backoff and max_age."""

    def _spawn_now(self) -> ProcessLike:
        """Create one process and register it; raises on failure (no retry here)."""
        wid = self._wids.acquire()
        try:
            proc = self._make_process(wid)
        except BaseException:
            self._wids.release(wid)
            raise
        self._register(proc)
        return proc

    def _make_process(self, wid: int) -> ProcessLike:
        from ._procs import make_process

        return make_process(self, wid)

    def _register(self, proc: ProcessLike) -> None:
        self._shortages = 0
        pid = proc.pid
        self._processes[pid] = proc
        loop = asyncio.get_running_loop()
        proc.add_exit_callback(self._exit_callback)
        self._output.attach(proc)
        max_age = self.settings.max_age
        if max_age > 0:
            delay = max_age + random.uniform(0, self.settings.max_age_variance)
            self._age_timers[pid] = loop.call_later(delay, self._on_max_age, proc)
        self._emit("spawn", {"process_pid": pid, "time": proc.started})

    async def _spawn(self, generation: int | None = None) -> ProcessLike | None:
        """Spawn one process with hooks and ``max_retry``; None when refused or stale.

        Raises:
            SpawnFailedError: every attempt failed; the caller stops the watcher.
            ResourceShortage: the host is short of descriptors, processes or memory; the
                caller spawns later (:meth:`_spawn_later`).
        """
        if "before_spawn" in self._hooks:
            if not await self._hook("before_spawn"):
                await self._refused("before_spawn")
                return None
            if generation is not None and generation != self._generation:
                return None
        attempt = 0
        while True:
            try:
                proc = self._spawn_now()
                break
            except Exception as exc:
                if is_shortage(exc):
                    raise ResourceShortage(str(exc)) from exc
                attempt += 1
                max_retry = self.settings.max_retry
                logger.warning("watcher %s: spawn attempt %d failed: %s", self.name, attempt, exc)
                if max_retry != -1 and attempt >= max(1, max_retry):
                    raise SpawnFailedError(
                        f"watcher {self.name!r}: cannot spawn after {attempt} attempts: {exc}"
                    ) from exc
                delay = max(self.settings.retry_in, self._policy.delay_for(attempt))
                await self._backoff(delay)
                if generation is not None and generation != self._generation:
                    return None
        if "after_spawn" in self._hooks and not await self._hook("after_spawn", pid=proc.pid):
            await self._refused("after_spawn")
            return None
        return proc

    async def _backoff(self, delay: float) -> None:
        """Sleep ``delay`` s before a spawn retry, or less if :meth:`interrupt` comes."""
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(delay, _wake, wake)
        self._backoffs.add(wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._backoffs.discard(wake)

    async def _refused(self, hook_name: str) -> None:
        logger.warning("watcher %s: hook %s refused; stopping", self.name, hook_name)
        self._refusal = True
        self._spawn_task(self._stop_from_inside(generation=self._generation))

    async def _spawn_up_to_target(self) -> list[int]:
        """Spawn the processes missing from ``numprocesses`` (``warmup_delay`` apart).

        The count is taken once: processes dying meanwhile are the restart policy's business,
        so a watcher whose processes exit at once cannot keep this loop going forever.
        """
        started: list[int] = []
        generation = self._generation
        warmup = self.settings.warmup_delay
        missing = self.numprocesses - len(self._processes) - self._pending
        for index in range(missing):
            if (
                generation != self._generation
                or self._halted
                or self._status not in ("starting", "active")
            ):
                break
            try:
                proc = await self._spawn(generation)
            except ResourceShortage as exc:
                self._spawn_later(missing - index, exc)
                break
            if proc is None:
                break
            started.append(proc.pid)
            if warmup > 0 and index + 1 < missing:
                await asyncio.sleep(warmup)
        return started

    def _on_exit(self, proc: ProcessLike) -> None:
        pid = proc.pid
        future = self._exits.pop(pid, None)
        if future is not None and not future.done():
            future.set_result(proc.returncode)
        timer = self._age_timers.pop(pid, None)
        if timer is not None:
            timer.cancel()
        if self._processes.pop(pid, None) is None:
            return  # retiring: the operation that ends it reports the reap
        self._wids.release(proc.wid)
        if self._hooks.keys() & {"before_reap", "after_reap"}:
            self._spawn_task(self._died_with_hooks(proc))
        else:
            self._emit_reap(proc)
            self._after_death(proc)

    def _emit_reap(self, proc: ProcessLike) -> None:
        self._emit(
            "reap", {"process_pid": proc.pid, "time": time.time(), "exit_code": proc.returncode}
        )

    async def _reap_with_hooks(self, proc: ProcessLike) -> None:
        now = time.time()
        await self._hook("before_reap", process_pid=proc.pid, time=now)
        self._emit_reap(proc)
        status = process_status(proc.returncode)
        await self._hook(
            "after_reap",
            process_pid=proc.pid,
            time=now,
            exit_code=proc.returncode,
            process_status=status,
        )

    async def _died_with_hooks(self, proc: ProcessLike) -> None:
        generation = self._generation
        await self._reap_with_hooks(proc)
        if generation == self._generation:
            self._after_death(proc)
        else:
            close_process(proc)

    def _after_death(self, proc: ProcessLike) -> None:
        """Decide what an unrequested death leads to: respawn now, later, or stop."""
        exit_code = proc.returncode
        lifetime = time.time() - proc.started
        close_process(proc)
        if self._status not in ("active", "starting") or self._halted:
            return  # stopping, or a flapping stop is already on its way: no respawn
        verdict = self._flapping.record(time.monotonic())
        if verdict is not Verdict.OK:
            self._halted = True  # until that stop runs (it may wait for the lock)
            self._spawn_task(self._flap(verdict, self._generation))
            return
        if not self._policy.wants_respawn(exit_code):
            if not self._processes and not self._pending and self._status == "active":
                self._spawn_task(self._stop_from_inside(rearm=True, generation=self._generation))
            return
        delay = self._policy.record_exit(exit_code, lifetime)
        if len(self._processes) + self._pending >= self.numprocesses:
            return  # e.g. decr raced the death
        self._pending += 1
        if delay > 0:
            loop = asyncio.get_running_loop()
            handle: list[asyncio.TimerHandle] = []
            handle.append(loop.call_later(delay, self._respawn_due, handle))
            self._respawn_timers.add(handle[0])
        else:
            self._respawn()

    def _respawn_due(self, handle: list[asyncio.TimerHandle]) -> None:
        self._respawn_timers.discard(handle[0])
        self._respawn()

    def _shortage_delay(self) -> float:
        """The next delay of the shortage backoff (0.1 s doubling to 5 s, jittered)."""
        delay = min(_SHORTAGE_MAX, _SHORTAGE_FIRST * 2**self._shortages)
        self._shortages += 1
        return delay * random.uniform(1.0, 1.25)

    def _spawn_later(self, count: int, exc: BaseException, pending: int = 0) -> None:
        """Spawn ``count`` processes after the shortage backoff (``pending`` of them are
        already counted in ``_pending``)."""
        delay = self._shortage_delay()
        if self._shortages == 1 or delay >= _SHORTAGE_MAX:
            logger.warning(
                "watcher %s: cannot spawn now (%s); %d process(es) tried again in %.1f s",
                self.name,
                exc,
                count,
                delay,
            )
        self._pending += count - pending
        loop = asyncio.get_running_loop()
        for _ in range(count):
            handle: list[asyncio.TimerHandle] = []
            handle.append(loop.call_later(delay, self._respawn_due, handle))
            self._respawn_timers.add(handle[0])

    def _respawn(self) -> None:
        if self._halted:
            self._pending -= 1
            return
        if self._hooks.keys() & {"before_spawn", "after_spawn"}:
            self._spawn_task(self._respawn_async(self._generation))
            return
        try:
            self._spawn_now()  # fast path: no await between the death and the new child
        except Exception as exc:
            if is_shortage(exc):
                self._spawn_later(1, exc, pending=1)
                return
            logger.warning("watcher %s: respawn failed: %s; retrying", self.name, exc)
            self._spawn_task(self._respawn_async(self._generation))
            return
        self._pending -= 1

    async def _respawn_async(self, generation: int) -> None:
        try:
            await self._spawn(generation)
        except ResourceShortage as exc:
            if generation == self._generation:
                self._spawn_later(1, exc, pending=1)
            return
        except SpawnFailedError as exc:
            logger.error("%s; stopping watcher %s", exc, self.name)
            if generation == self._generation:
                self._pending -= 1
                await self._stop_from_inside()
            return
        if generation == self._generation:
            self._pending -= 1

    def _on_max_age(self, proc: ProcessLike) -> None:
        self._age_timers.pop(proc.pid, None)
        if proc.pid in self._processes and self._status == "active":
            self._spawn_task(self._recycle(proc))

    async def _recycle(self, proc: ProcessLike) -> None:
        async with self._get_lock():
            if proc.pid not in self._processes or self._status != "active":
                return
            try:
                await self._spawn(self._generation)
            except ResourceShortage as exc:
                # keep the old process until a replacement can be spawned
                delay = self._shortage_delay()
                logger.warning("watcher %s: max_age replacement postponed: %s", self.name, exc)
                loop = asyncio.get_running_loop()
                self._age_timers[proc.pid] = loop.call_later(delay, self._on_max_age, proc)
                return
            except SpawnFailedError as exc:
                logger.error("%s (max_age replacement)", exc)
            await self._retire([proc])
