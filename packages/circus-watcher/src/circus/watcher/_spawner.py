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
from typing import TYPE_CHECKING

from ._errors import ResourceShortage, SpawnFailedError
from ._flapping import Verdict
from ._lifecycle import Halt
from ._procs import ProcessLike, close_process, make_process, process_status

if TYPE_CHECKING:
    from ._watcher import Watcher

__all__ = ["Spawner", "is_shortage"]

logger = logging.getLogger("circus.watcher")

_SHORTAGE = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM})
_SHORTAGE_FIRST = 0.1
_SHORTAGE_MAX = 5.0
#: Processes a start spawns together (one hand-over to the spawn thread, one loop pass).
BATCH = 64


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


class Spawner:
    """Creates a watcher's processes and replaces the ones that die on their own.

    Owns the replacements decided but not spawned yet (``pending``, their ``timers``), the
    shortage backoff, and the spawn retries waiting out a delay (woken by :meth:`wake`).
    """

    def __init__(self, watcher: Watcher) -> None:
        self._w = watcher
        self.pending = 0  # replacements decided but not spawned yet
        self.timers: set[asyncio.TimerHandle] = set()  # delayed replacements
        self._shortages = 0  # spawns failed for want of resources in a row
        self._backoffs: set[asyncio.Future[None]] = set()  # spawn retries waiting
        self._exit_callback = self.on_exit  # bound once, shared by every process

    # ------------------------------------------------------------------ creating

    def spawn_now(self) -> ProcessLike:
        """Create one process and count it; raises on failure (no retry here)."""
        w = self._w
        wid = w._procs.wids.acquire()
        try:
            proc = make_process(w, wid)
        except BaseException:
            w._procs.wids.release(wid)
            raise
        self._register(proc)
        return proc

    def _register(self, proc: ProcessLike) -> None:
        w = self._w
        self._shortages = 0
        w._procs.add(proc)
        # The event first: what follows is not waited for (output waits in its pipes, and
        # nothing of the loop runs before this function returns).
        w._emit("spawn", {"process_pid": proc.pid, "time": proc.started})
        # The output first: exit callbacks run in the order they were added, and its drains
        # the pipes, so every byte the process wrote is delivered before its reap (which
        # flushes a held partial line: after the reap, the rest of that line came apart).
        w._output.attach(proc)
        proc.add_exit_callback(self._exit_callback)
        max_age = w.settings.max_age
        if max_age > 0:
            delay = max_age + random.uniform(0, w.settings.max_age_variance)
            w._procs.arm_max_age(proc, delay, self._on_max_age)
        w._health.track(proc)

    async def spawn(self, generation: int | None = None) -> ProcessLike | None:
        """Spawn one process with hooks and ``max_retry``; None when refused or stale.

        Raises:
            SpawnFailedError: every attempt failed; the caller stops the watcher.
            ResourceShortage: the host is short of descriptors, processes or memory; the
                caller spawns later (:meth:`spawn_later`).
        """
        w = self._w
        if "before_spawn" in w._hooks:
            if not await w._hooks.call("before_spawn"):
                self._refused("before_spawn")
                return None
            if generation is not None and generation != w._life.generation:
                return None
        attempt = 0
        while True:
            try:
                proc = self.spawn_now()
                break
            except Exception as exc:
                if is_shortage(exc):
                    raise ResourceShortage(str(exc)) from exc
                attempt += 1
                max_retry = w.settings.max_retry
                logger.warning("watcher %s: spawn attempt %d failed: %s", w.name, attempt, exc)
                if max_retry != -1 and attempt >= max(1, max_retry):
                    raise SpawnFailedError(
                        f"watcher {w.name!r}: cannot spawn after {attempt} attempts: {exc}"
                    ) from exc
                await self._backoff(max(w.settings.retry_in, w._policy.delay_for(attempt)))
                if generation is not None and generation != w._life.generation:
                    return None
        if "after_spawn" in w._hooks and not await w._hooks.call("after_spawn", pid=proc.pid):
            self._refused("after_spawn")
            return None
        return proc

    async def _backoff(self, delay: float) -> None:
        """Sleep ``delay`` s before a spawn retry, or less if :meth:`wake` comes."""
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        timer = loop.call_later(delay, _wake, wake)
        self._backoffs.add(wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._backoffs.discard(wake)

    def wake(self) -> None:
        """End the wait of every spawn retry now (its generation check then gives up)."""
        for backoff in self._backoffs:
            _wake(backoff)

    def _refused(self, hook_name: str) -> None:
        w = self._w
        logger.warning("watcher %s: hook %s refused; stopping", w.name, hook_name)
        w._life.halt = Halt.REFUSED
        w._tasks.run(w._stopper.stop_from_inside(generation=w._life.generation))

    async def spawn_up_to_target(self) -> list[int]:
        """Spawn the processes missing from ``numprocesses`` (``warmup_delay`` apart).

        The count is taken once: processes dying meanwhile are the restart policy's business,
        so a watcher whose processes exit at once cannot keep this loop going forever.
        """
        w = self._w
        started: list[int] = []
        generation = w._life.generation
        warmup = w.settings.warmup_delay
        missing = w.numprocesses - len(w._procs) - self.pending
        first = 0
        if missing > 1 and warmup <= 0 and not w._hooks.any_of("before_spawn", "after_spawn"):
            from ._procs import batchable

            if batchable(w):
                done = await self._spawn_batches(missing, started, generation)
                if done is None:
                    return started
                first = done
        for index in range(first, missing):
            if generation != w._life.generation or w._life.halt or not w._life.running:
                break
            try:
                proc = await self.spawn(generation)
            except ResourceShortage as exc:
                self.spawn_later(missing - index, exc)
                break
            if proc is None:
                break
            started.append(proc.pid)
            if warmup > 0 and index + 1 < missing:
                await asyncio.sleep(warmup)
        return started

    async def _spawn_batches(self, missing: int, started: list[int], generation: int) -> int | None:
        """Spawn ``missing`` processes :data:`BATCH` at a time (``make_processes``), the
        loop run between batches (a stop, a status request, output get their turn).

        Returns how many are dealt with; after a failed spawn the caller spawns that one
        and the rest one by one (their retries and ``max_retry``). None: the start ends
        here (a stop came, or the host is short and the rest are spawned later).
        """
        from ._procs import make_processes

        w = self._w
        done = 0
        while done < missing:
            if generation != w._life.generation or w._life.halt or not w._life.running:
                return None
            results = make_processes(w, min(BATCH, missing - done))
            failed: Exception | None = None
            for result in results:
                if isinstance(result, Exception):
                    failed = failed or result
                else:
                    self._register(result)
                    started.append(result.pid)
            ok = sum(not isinstance(result, Exception) for result in results)
            done += ok
            if failed is not None:
                if is_shortage(failed):
                    self.spawn_later(missing - done, failed)
                    return None
                logger.warning("watcher %s: spawn failed: %s", w.name, failed)
                return done
            if done < missing:
                await asyncio.sleep(0)
        return done

    # ------------------------------------------------------------------ deaths

    def on_exit(self, proc: ProcessLike) -> None:
        """Exit callback of every process (bound once, shared by all)."""
        w = self._w
        if not w._procs.exited(proc):
            # Being ended: the operation ending it reports the reap, all in one loop pass
            # (reported here, as each exits, a stop of 1,000 took 5 ms more of the daemon's
            # CPU: a subscription read, a flush and a ZeroMQ wake-up per loop pass).
            return
        if w._hooks.any_of("before_reap", "after_reap"):
            w._tasks.run(self._died_with_hooks(proc))
        else:
            self.emit_reap(proc)
            self._after_death(proc)

    def emit_reap(self, proc: ProcessLike) -> None:
        """Publish ``reap`` for ``proc``."""
        self._w._emit(
            "reap", {"process_pid": proc.pid, "time": time.time(), "exit_code": proc.returncode}
        )

    async def reap_with_hooks(self, proc: ProcessLike) -> None:
        """``before_reap``, the ``reap`` event, ``after_reap``."""
        now = time.time()
        await self.before_reap(proc, now)
        self.emit_reap(proc)
        await self.after_reap(proc, now)

    async def before_reap(self, proc: ProcessLike, now: float) -> None:
        """The ``before_reap`` hook of ``proc``'s reap at ``now``."""
        await self._w._hooks.call("before_reap", process_pid=proc.pid, time=now)

    async def after_reap(self, proc: ProcessLike, now: float) -> None:
        """The ``after_reap`` hook of ``proc``'s reap at ``now``."""
        await self._w._hooks.call(
            "after_reap",
            process_pid=proc.pid,
            time=now,
            exit_code=proc.returncode,
            process_status=process_status(proc.returncode),
        )

    async def _died_with_hooks(self, proc: ProcessLike) -> None:
        generation = self._w._life.generation
        await self.reap_with_hooks(proc)
        if generation == self._w._life.generation:
            self._after_death(proc)
        else:
            close_process(proc)

    def after_failure(self, proc: ProcessLike) -> None:
        """Count the end of ``proc``, ended by the watcher because it failed its readiness
        or liveness, as a failed exit, and decide as for a crash (respawn, backoff, stop)."""
        self._after_death(proc, failed=True)

    def _after_death(self, proc: ProcessLike, failed: bool = False) -> None:
        """Decide what an unrequested death leads to: respawn now, later, or stop.

        A replacement spawned at once is forked and announced before the dead process is
        closed and its exit recorded and logged: nobody waits for those, everybody waits
        for the ``spawn`` event.
        """
        w = self._w
        exit_code = proc.returncode
        if failed and (exit_code is None or exit_code in w.settings.success_exit_codes):
            exit_code = -1  # ended by us: never a success, whatever status it left
        lifetime = time.time() - proc.started
        if not w._life.running or w._life.halt:
            close_process(proc)
            return  # stopping, or a stop from inside is on its way: no respawn
        verdict = w._flapping.record(time.monotonic())
        if verdict is not Verdict.OK:
            close_process(proc)
            w._life.halt = Halt.FLAPPING  # until that stop runs (it may wait for the lock)
            w._tasks.run(w._stopper.flap(verdict, w._life.generation))
            return
        failed = w._policy.is_failure(exit_code)
        if not w._policy.wants_respawn(exit_code):
            self._closed(proc, exit_code, lifetime, failed, 0, None)
            if not w._procs and not self.pending and w.status() == "active":
                w._tasks.run(w._stopper.stop_from_inside(rearm=True, generation=w._life.generation))
            return
        delay = w._policy.record_exit(exit_code, lifetime)
        streak = w._policy.streak
        if (
            delay <= 0
            and not w._policy.exhausted()
            and len(w._procs) + self.pending < w.numprocesses
        ):
            self.pending += 1
            try:
                self._respawn()  # the fork and the spawn event first
            finally:
                self._closed(proc, exit_code, lifetime, failed, streak, delay)
            return
        self._closed(proc, exit_code, lifetime, failed, streak, delay)
        if w._policy.exhausted():
            w._life.halt = Halt.FLAPPING  # until that stop runs (it may wait for the lock)
            w._tasks.run(w._stopper.give_up(streak, w._life.generation))
            return
        if len(w._procs) + self.pending >= w.numprocesses:
            return  # e.g. decr raced the death
        self.pending += 1
        self._later(delay)

    def _closed(
        self,
        proc: ProcessLike,
        exit_code: int | None,
        lifetime: float,
        failed: bool,
        failures: int,
        delay: float | None,
    ) -> None:
        """Close the dead ``proc`` and record its exit (the crash-loop record and log)."""
        close_process(proc)
        self._w._crash.exited(proc.pid, exit_code, lifetime, failed=failed, failures=failures,
                              delay=delay, reset_after=self._w.settings.backoff_reset)  # fmt: skip

    def _later(self, delay: float) -> None:
        """Spawn one (already pending) replacement in ``delay`` seconds."""
        loop = asyncio.get_running_loop()
        handle: list[asyncio.TimerHandle] = []
        handle.append(loop.call_later(delay, self._respawn_due, handle))
        self.timers.add(handle[0])

    def _respawn_due(self, handle: list[asyncio.TimerHandle]) -> None:
        self.timers.discard(handle[0])
        self._respawn()

    def _shortage_delay(self) -> float:
        """The next delay of the shortage backoff (0.1 s doubling to 5 s, jittered)."""
        # the exponent is capped: 2.0**1100 would overflow after ~90 minutes of shortage
        delay = min(_SHORTAGE_MAX, _SHORTAGE_FIRST * 2.0 ** min(self._shortages, 16))
        self._shortages += 1
        return delay * random.uniform(1.0, 1.25)

    def spawn_later(self, count: int, exc: BaseException, pending: int = 0) -> None:
        """Spawn ``count`` processes after the shortage backoff (``pending`` of them are
        already counted in :attr:`pending`)."""
        delay = self._shortage_delay()
        if self._shortages == 1 or delay >= _SHORTAGE_MAX:
            logger.warning(
                "watcher %s: cannot spawn now (%s); %d process(es) tried again in %.1f s",
                self._w.name,
                exc,
                count,
                delay,
            )
        self.pending += count - pending
        for _ in range(count):
            self._later(delay)

    def cancel(self) -> None:
        """Forget every replacement not spawned yet."""
        for handle in self.timers:
            handle.cancel()
        self.timers.clear()
        self.pending = 0

    def drop_pending(self, count: int) -> int:
        """Cancel up to ``count`` delayed replacements; return how many were cancelled."""
        dropped = 0
        while dropped < count and self.timers:
            self.timers.pop().cancel()
            self.pending -= 1
            dropped += 1
        return dropped

    def _respawn(self) -> None:
        w = self._w
        if w._life.halt:
            self.pending -= 1
            return
        if w._hooks.any_of("before_spawn", "after_spawn"):
            w._tasks.run(self._respawn_async(w._life.generation))
            return
        try:
            self.spawn_now()  # fast path: no await between the death and the new child
        except Exception as exc:
            if is_shortage(exc):
                self.spawn_later(1, exc, pending=1)
                return
            logger.warning("watcher %s: respawn failed: %s; retrying", w.name, exc)
            w._tasks.run(self._respawn_async(w._life.generation))
            return
        self.pending -= 1

    async def _respawn_async(self, generation: int) -> None:
        w = self._w
        try:
            await self.spawn(generation)
        except ResourceShortage as exc:
            if generation == w._life.generation:
                self.spawn_later(1, exc, pending=1)
            return
        except SpawnFailedError as exc:
            logger.error("%s; stopping watcher %s", exc, w.name)
            if generation == w._life.generation:
                self.pending -= 1
                await w._stopper.stop_from_inside()
                w._emit("give_up", {"reason": str(exc), "time": time.time()})
            return
        if generation == w._life.generation:
            self.pending -= 1

    # ------------------------------------------------------------------ max_age

    def _on_max_age(self, proc: ProcessLike) -> None:
        w = self._w
        w._procs.age_timers.pop(proc.pid, None)
        if proc.pid in w._procs and w.status() == "active":
            w._tasks.run(self._recycle(proc))

    async def _recycle(self, proc: ProcessLike) -> None:
        w = self._w
        async with w._get_lock():
            if proc.pid not in w._procs or w.status() != "active":
                return
            try:
                new = await self.spawn(w._life.generation)
            except ResourceShortage as exc:
                # keep the old process until a replacement can be spawned
                delay = self._shortage_delay()
                logger.warning("watcher %s: max_age replacement postponed: %s", w.name, exc)
                w._procs.arm_max_age(proc, delay, self._on_max_age)
                return
            except SpawnFailedError as exc:
                logger.error("%s (max_age replacement)", exc)
            else:
                if new is not None and w.has_readiness:
                    generation = w._life.generation
                    ready = await self._ready(new)
                    if generation != w._life.generation:
                        return  # a stop or restart is waiting for the lock: it ends both
                    if not ready:
                        # the old process keeps serving; a replacement is tried again later
                        delay = max(1.0, w.settings.readiness_timeout)
                        w._procs.arm_max_age(proc, delay, self._on_max_age)
                        return
            await w._stopper.retire([proc])

    async def _ready(self, new: ProcessLike) -> bool:
        """Whether the max_age replacement ``new`` became ready (readiness configured);
        False at once when :meth:`wake` (a stop or restart) interrupts the wait."""
        from ._errors import NotReady

        w = self._w
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        waiter = loop.create_task(w.wait_ready([new.pid]))
        self._backoffs.add(wake)
        try:
            await asyncio.wait([waiter, wake], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._backoffs.discard(wake)
            if not waiter.done():
                waiter.cancel()
        if not waiter.done() or waiter.cancelled():
            return False  # interrupted
        exc = waiter.exception()
        if isinstance(exc, NotReady):
            logger.warning("watcher %s: max_age replacement not ready: %s", w.name, exc)
            return False
        if exc is not None:
            raise exc
        return True
