"""The Watcher: N copies of one command, kept alive on the running asyncio loop.

Design (the why; the what is in the README):

* Dead children are seen through ``Process.add_exit_callback`` (pidfd, SIGCHLD fallback):
  nothing polls and nothing ticks. ``max_age`` arms one timer per process; backoff and
  flapping retries arm one timer each. An idle watcher schedules nothing.
* ``self._processes`` holds the processes the watcher counts. A process the watcher itself
  is ending (stop, decr, reload, kill, max_age) is first moved to ``self._retiring``, so
  its exit is never mistaken for a crash: it cannot trigger a respawn, a backoff step or a
  flapping verdict.
* Spawning is synchronous (fork/exec is fast) and only awaits when a spawn hook, a warmup
  delay or a spawn retry asks for it, so starting 1,000 processes is one tight loop.
* Lifecycle operations (start, stop, reload, incr, decr, set) are serialised by one lock
  instead of failing with "already running" as upstream does; background work that may
  outlive an operation (respawn after a hook, flapping retries) checks a generation number
  so a stop always wins.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal as _signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from ._env import build_env
from ._errors import OptionError, ProcessNotFoundError, SpawnFailedError, WatcherError
from ._events import EventHub, Listener, OutputObserver
from ._flapping import FlappingDetector, Verdict
from ._hooks import Hook, call_hook, resolve_all
from ._options import SPECS, build, check_consistency, convert, fold, unknown
from ._output import OutputPump
from ._policy import RestartPolicy
from ._procs import ProcessFactory, ProcessLike
from ._wids import WidPool

logger = logging.getLogger("circus.watcher")

_KILL_WAIT = 10.0  # after SIGKILL of a whole tree, how long we wait before giving up on it


class Watcher:
    """N copies of one command, kept alive; usable from plain asyncio.

    Constructor keywords are upstream Circus 0.19's watcher options with its defaults
    (shared/spec/config.md §4); ``**options`` takes the prefixed keys (``hooks.X``,
    ``rlimit_X``, ``stdout_stream.X``, ``flapping.X``) and our extras (``respawn`` modes,
    ``success_exit_codes``, ``backoff_*``, ``hook_timeout``, ``retry_in``). Free-form keys
    that upstream keeps verbatim go in ``custom_options``; any other unknown key raises
    :class:`~circus.watcher.UnknownOptionError`, a bad value
    :class:`~circus.watcher.OptionError`.

    Constructing a watcher starts nothing and needs no loop; every ``async`` method must run
    on the same asyncio loop.
    """

    def __init__(
        self,
        name: str,
        cmd: str,
        args: str | None = None,
        numprocesses: int = 1,
        warmup_delay: float = 0.0,
        working_dir: str | None = None,
        shell: bool = False,
        shell_args: str | None = None,
        uid: int | str | None = None,
        gid: int | str | None = None,
        send_hup: bool = False,
        stop_signal: int | str = _signal.SIGTERM,
        stop_children: bool = False,
        env: Mapping[str, str] | None = None,
        graceful_timeout: float = 30.0,
        prereload_fn: Callable[[Watcher], Any] | None = None,
        rlimits: Mapping[str, int | None] | None = None,
        executable: str | None = None,
        stdout_stream: Any = None,
        stderr_stream: Any = None,
        priority: int = 0,
        singleton: bool = False,
        use_sockets: bool = False,
        copy_env: bool = False,
        copy_path: bool = False,
        max_age: float = 0,
        max_age_variance: float = 30,
        hooks: Mapping[str, Any] | None = None,
        respawn: bool | str = True,
        autostart: bool = True,
        on_demand: bool = False,
        virtualenv: str | None = None,
        stdin_socket: str | None = None,
        close_child_stdin: bool = True,
        close_child_stdout: bool = False,
        close_child_stderr: bool = False,
        virtualenv_py_ver: str | None = None,
        umask: int | str | None = None,
        max_retry: int = 5,
        *,
        custom_options: Mapping[str, Any] | None = None,
        process_factory: ProcessFactory | None = None,
        **options: Any,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise OptionError("name", name, "a non-empty string")
        given = dict(
            cmd=cmd, args=args, numprocesses=numprocesses, warmup_delay=warmup_delay,
            working_dir=working_dir, shell=shell, shell_args=shell_args, uid=uid, gid=gid,
            send_hup=send_hup, stop_signal=stop_signal, stop_children=stop_children, env=env,
            graceful_timeout=graceful_timeout, prereload_fn=prereload_fn, rlimits=rlimits,
            executable=executable, stdout_stream=stdout_stream, stderr_stream=stderr_stream,
            priority=priority, singleton=singleton, use_sockets=use_sockets,
            copy_env=copy_env, copy_path=copy_path, max_age=max_age,
            max_age_variance=max_age_variance, hooks=hooks, respawn=respawn,
            autostart=autostart, on_demand=on_demand, virtualenv=virtualenv,
            stdin_socket=stdin_socket, close_child_stdin=close_child_stdin,
            close_child_stdout=close_child_stdout, close_child_stderr=close_child_stderr,
            virtualenv_py_ver=virtualenv_py_ver, umask=umask, max_retry=max_retry,
        )  # fmt: skip
        for key in options:
            if key in given:
                raise OptionError(key, options[key], "to be given once")
        given.update(options)
        self.name = name
        self._opts = build(given)
        if not self._opts["cmd"]:
            raise OptionError("cmd", cmd, "a non-empty command line")
        self._hooks: dict[str, Hook] = resolve_all(self._opts["hooks"])
        self._custom: dict[str, Any] = dict(custom_options or {})
        self.arbiter: Any = None
        #: ``{name: fd}`` (or socket objects) of the daemon's sockets; set by the arbiter.
        self.sockets: dict[str, Any] = {}
        self._factory = process_factory
        self._processes: dict[int, ProcessLike] = {}
        self._retiring: dict[int, ProcessLike] = {}
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._age_timers: dict[int, asyncio.TimerHandle] = {}
        self._respawn_timers: set[asyncio.TimerHandle] = set()
        self._pending = 0  # replacements decided but not spawned yet
        self._tasks: set[asyncio.Task[Any]] = set()
        self._status = "stopped"
        self._generation = 0
        self._lock: asyncio.Lock | None = None
        self._wids = WidPool()
        self._events = EventHub()
        self._output = OutputPump(self)
        self._policy = RestartPolicy()
        self._flapping = FlappingDetector()
        self._flap_timer: asyncio.TimerHandle | None = None
        self._refusal = False
        self._demand_fds: list[int] = []
        self._env: dict[str, str] | None = None
        self._template: dict[str, str] | None = None
        self._apply_policies()

    # ------------------------------------------------------------------ public state

    def __repr__(self) -> str:
        return f"<Watcher {self.name!r} {self._status} {len(self._processes)} processes>"

    @property
    def numprocesses(self) -> int:
        """The number of processes the watcher keeps running when active."""
        return int(self._opts["numprocesses"])

    @property
    def pids(self) -> list[int]:
        """Pids of the watcher's counted processes, oldest first."""
        return list(self._processes)

    @property
    def processes(self) -> dict[int, ProcessLike]:
        """``{pid: Process}`` of the watcher's counted processes (a copy)."""
        return dict(self._processes)

    @property
    def priority(self) -> int:
        """Start order among watchers (higher first); used by the arbiter."""
        return int(self._opts["priority"])

    @property
    def autostart(self) -> bool:
        """Whether the arbiter starts this watcher at boot; the watcher ignores it."""
        return bool(self._opts["autostart"])

    @property
    def singleton(self) -> bool:
        """At most one process."""
        return bool(self._opts["singleton"])

    @property
    def on_demand(self) -> bool:
        """Start only when one of ``sockets`` becomes readable."""
        return bool(self._opts["on_demand"])

    def status(self) -> str:
        """``'active'``, ``'stopped'``, ``'stopping'`` or ``'starting'``."""
        return self._status

    def is_stopped(self) -> bool:
        """True when the watcher is stopped."""
        return self._status == "stopped"

    # ------------------------------------------------------------------ events

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event, payload)`` for each event (protocol.md §2.2 payloads)."""
        self._events.add_listener(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._events.remove_listener(listener)

    def events(self) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """``async for event, payload in watcher.events()``: events emitted while iterating."""
        return self._events.iterate()

    def add_output_observer(self, observer: OutputObserver) -> None:
        """Call ``observer(pid, stream_name, data)`` for every output chunk of processes
        spawned from now on (their stdout/stderr are piped even without a stream)."""
        self._events.observers.append(observer)
        self._output.observers_changed()

    def remove_output_observer(self, observer: OutputObserver) -> None:
        """Stop sending output chunks to ``observer``."""
        try:
            self._events.observers.remove(observer)
        except ValueError:
            pass
        self._output.observers_changed()

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        self._events.emit(event, payload)

    # ------------------------------------------------------------------ plumbing

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("watcher %s: background task failed", self.name, exc_info=task.exception())

    def _apply_policies(self) -> None:
        o = self._opts
        self._policy.respawn = o["respawn"]
        self._policy.success_exit_codes = o["success_exit_codes"]
        self._policy.backoff_initial = o["backoff_initial"]
        self._policy.backoff_factor = o["backoff_factor"]
        self._policy.backoff_max = o["backoff_max"]
        self._policy.backoff_reset = o["backoff_reset"]
        self._flapping.active = o["flapping.active"]
        self._flapping.attempts = o["flapping.attempts"]
        self._flapping.window = o["flapping.window"]
        self._flapping.retry_in = o["flapping.retry_in"]
        self._flapping.max_retry = o["flapping.max_retry"]

    async def _hook(self, name: str, **kwargs: Any) -> bool:
        hook = self._hooks.get(name)
        if hook is None:
            return True
        kwargs.update(watcher=self, arbiter=self.arbiter, hook_name=name)
        return await call_hook(hook, kwargs, self._opts["hook_timeout"], self._emit)

    def _child_env(self) -> dict[str, str]:
        if self._env is None:
            o = self._opts
            self._env = build_env(
                o["env"],
                copy_env=o["copy_env"],
                copy_path=o["copy_path"],
                virtualenv=o["virtualenv"],
                virtualenv_py_ver=o["virtualenv_py_ver"],
            )
        return self._env

    def _template_vars(self) -> dict[str, str]:
        if self._template is None:
            values: dict[str, str] = {}
            for key, value in {**self.options(), **self._custom}.items():
                if key == "env":
                    continue  # $(circus.env.X) is the process layer's, from the child env
                if isinstance(value, Mapping):
                    for sub, item in value.items():
                        values[f"{key}.{sub}"] = "" if item is None else str(item)
                else:
                    values[key] = "" if value is None else str(value)
            self._template = values
        return self._template

    # ------------------------------------------------------------------ spawning

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
        pid = proc.pid
        self._processes[pid] = proc
        loop = asyncio.get_running_loop()
        self._exits[pid] = loop.create_future()
        proc.add_exit_callback(self._on_exit)
        self._output.attach(proc)
        max_age = self._opts["max_age"]
        if max_age > 0:
            delay = max_age + random.uniform(0, self._opts["max_age_variance"])
            self._age_timers[pid] = loop.call_later(delay, self._on_max_age, proc)
        self._emit("spawn", {"process_pid": pid, "time": proc.started})

    async def _spawn(self, generation: int | None = None) -> ProcessLike | None:
        """Spawn one process with hooks and ``max_retry``; None when refused or stale.

        Raises:
            SpawnFailedError: every attempt failed; the caller stops the watcher.
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
                attempt += 1
                max_retry = self._opts["max_retry"]
                logger.warning("watcher %s: spawn attempt %d failed: %s", self.name, attempt, exc)
                if max_retry != -1 and attempt >= max(1, max_retry):
                    raise SpawnFailedError(
                        f"watcher {self.name!r}: cannot spawn after {attempt} attempts: {exc}"
                    ) from exc
                delay = max(self._opts["retry_in"], self._policy.delay_for(attempt))
                await asyncio.sleep(delay)
                if generation is not None and generation != self._generation:
                    return None
        if "after_spawn" in self._hooks and not await self._hook("after_spawn", pid=proc.pid):
            await self._refused("after_spawn")
            return None
        return proc

    async def _refused(self, hook_name: str) -> None:
        logger.warning("watcher %s: hook %s refused; stopping", self.name, hook_name)
        self._refusal = True
        self._spawn_task(self._stop_from_inside(generation=self._generation))

    async def _spawn_up_to_target(self) -> list[int]:
        """Spawn until the watcher holds ``numprocesses`` (honouring ``warmup_delay``)."""
        started: list[int] = []
        generation = self._generation
        warmup = self._opts["warmup_delay"]
        while (
            generation == self._generation
            and self._status in ("starting", "active")
            and len(self._processes) + self._pending < self.numprocesses
        ):
            proc = await self._spawn(generation)
            if proc is None:
                break
            started.append(proc.pid)
            if warmup > 0 and len(self._processes) + self._pending < self.numprocesses:
                await asyncio.sleep(warmup)
        return started

    # ------------------------------------------------------------------ deaths

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
        status = _process_status(proc.returncode)
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
            _close(proc)

    def _after_death(self, proc: ProcessLike) -> None:
        """Decide what an unrequested death leads to: respawn now, later, or stop."""
        exit_code = proc.returncode
        lifetime = time.time() - proc.started
        _close(proc)
        if self._status not in ("active", "starting"):
            return
        verdict = self._flapping.record(time.monotonic())
        if verdict is not Verdict.OK:
            self._spawn_task(self._flap(verdict))
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

    def _respawn(self) -> None:
        if self._hooks.keys() & {"before_spawn", "after_spawn"}:
            self._spawn_task(self._respawn_async(self._generation))
            return
        try:
            self._spawn_now()  # fast path: no await between the death and the new child
        except Exception as exc:
            logger.warning("watcher %s: respawn failed: %s; retrying", self.name, exc)
            self._spawn_task(self._respawn_async(self._generation))
            return
        self._pending -= 1

    async def _respawn_async(self, generation: int) -> None:
        try:
            await self._spawn(generation)
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
            except SpawnFailedError as exc:
                logger.error("%s (max_age replacement)", exc)
            await self._retire([proc])

    # ------------------------------------------------------------------ stopping

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
        signum = self._opts["stop_signal"] if signum is None else signum
        timeout = self._opts["graceful_timeout"] if graceful_timeout is None else graceful_timeout
        stop_children = self._opts["stop_children"]
        for proc in procs:
            self._processes.pop(proc.pid, None)
            self._retiring[proc.pid] = proc
            timer = self._age_timers.pop(proc.pid, None)
            if timer is not None:
                timer.cancel()
        waits = {proc.pid: self._exits[proc.pid] for proc in procs if proc.pid in self._exits}
        signal_hooks = "before_signal" in self._hooks or "after_signal" in self._hooks
        loop = asyncio.get_running_loop()
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
            _close(proc)
        return [proc.pid for proc in procs]

    def _cancel_background(self) -> None:
        """Forget every pending respawn and flapping retry (a stop or start wins)."""
        self._generation += 1
        for handle in self._respawn_timers:
            handle.cancel()
        self._respawn_timers.clear()
        self._pending = 0
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

    async def _flap(self, verdict: Verdict) -> None:
        async with self._get_lock():
            if self._status not in ("active", "starting"):
                return
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

    # ------------------------------------------------------------------ starting

    async def _start(self) -> dict[str, list[int]]:
        if self._status != "stopped":
            return {"started": [], "kept": self.pids}
        self._cancel_background()
        self._status = "starting"
        if not await self._hook("before_start"):
            self._status = "stopped"
            return {"started": [], "kept": []}
        self._env = None
        self._template = None
        try:
            self._output.open()
        except Exception as exc:
            self._status = "stopped"
            raise WatcherError(f"watcher {self.name!r}: cannot open its streams: {exc}") from exc
        self._refusal = False
        generation = self._generation
        try:
            started = await self._spawn_up_to_target()
        except SpawnFailedError:
            await self._stop()
            raise
        if generation != self._generation:
            return {"started": started, "kept": []}  # a stop is waiting for the lock
        if self._refusal:
            await self._stop()  # a spawn hook refused
            return {"started": [], "kept": []}
        self._status = "active"
        self._emit("start", {"time": time.time()})
        if not await self._hook("after_start"):
            await self._stop()
            return {"started": [], "kept": []}
        if not self._processes and not self._pending and self.numprocesses > 0:
            # Every process already exited for good (respawn off): stopped, as upstream.
            self._spawn_task(self._stop_from_inside(rearm=True, generation=self._generation))
        return {"started": started, "kept": []}

    def _arm_on_demand(self) -> None:
        fds = [_fileno(sock) for sock in self.sockets.values()]
        if not fds:
            raise WatcherError(f"watcher {self.name!r} is on_demand but has no sockets")
        self._disarm_on_demand()
        loop = asyncio.get_running_loop()
        for fd in fds:
            loop.add_reader(fd, self._on_demand_ready)
        self._demand_fds = fds

    def _disarm_on_demand(self) -> None:
        if self._demand_fds:
            loop = asyncio.get_running_loop()
            for fd in self._demand_fds:
                loop.remove_reader(fd)
            self._demand_fds = []

    def _on_demand_ready(self) -> None:
        self._disarm_on_demand()
        self._spawn_task(self._start_locked())

    async def _start_locked(self) -> dict[str, list[int]]:
        async with self._get_lock():
            return await self._start()

    # ------------------------------------------------------------------ operations

    async def start(self) -> dict[str, list[int]]:
        """Start the watcher: spawn ``numprocesses`` processes (``warmup_delay`` apart).

        An ``on_demand`` watcher only arms its sockets here and starts when one becomes
        readable. Returns ``{"started": [pids], "kept": [pids]}`` (upstream's ``info``).

        Raises:
            SpawnFailedError: ``max_retry`` spawn attempts failed; the watcher is stopped.
        """
        async with self._get_lock():
            self._flapping.clear()
            self._policy.reset()
            if self.on_demand and self._status == "stopped":
                self._cancel_background()
                self._arm_on_demand()
                return {"started": [], "kept": []}
            return await self._start()

    async def stop(self) -> list[int]:
        """Stop every process (stop signal, ``graceful_timeout``, SIGKILL of the tree).

        Cancels pending respawns and flapping retries. Returns the stopped pids.
        """
        self._generation += 1  # a start in progress stops spawning at its next step
        async with self._get_lock():
            self._flapping.clear()
            self._policy.reset()
            if self._status == "stopped":
                self._cancel_background()
                return []
            return await self._stop()

    async def restart(self) -> dict[str, list[int]]:
        """Stop then start; returns ``{"stopped", "started", "kept"}``."""
        async with self._get_lock():
            stopped = await self._stop()
            info = await self._start()
        return {"stopped": stopped, **info}

    async def reload(self, graceful: bool = True, sequential: bool = False) -> dict[str, Any]:
        """Reload the processes; returns ``{"stopped", "started", "kept"}``.

        A stopped watcher is started. ``graceful=False`` is a restart. With ``send_hup``
        every process gets SIGHUP. Otherwise new processes are spawned *before* the old
        ones are stopped, so ``numprocesses`` stay up throughout: all at once, or one
        old/new pair at a time when ``sequential``. Emits ``reload``.
        """
        async with self._get_lock():
            prereload = self._opts["prereload_fn"]
            if prereload is not None:
                prereload(self)
            if self._status == "stopped":
                info: dict[str, Any] = {"stopped": [], **await self._start()}
            elif not graceful:
                stopped = await self._stop()
                info = {"stopped": stopped, **await self._start()}
            elif self._opts["send_hup"]:
                await self._signal_all(_signal.SIGHUP, list(self._processes.values()))
                info = {"stopped": [], "started": [], "kept": self.pids}
            else:
                info = await self._replace_all(sequential)
            self._emit("reload", {"time": time.time()})
            return info

    async def _replace_all(self, sequential: bool) -> dict[str, Any]:
        self._env = None
        self._template = None
        old = list(self._processes.values())
        started: list[int] = []
        stopped: list[int] = []
        generation = self._generation
        warmup = self._opts["warmup_delay"]
        if sequential:
            for proc in old:
                new = await self._spawn(generation)
                if new is None:
                    break
                started.append(new.pid)
                if proc.pid in self._processes:
                    stopped += await self._retire([proc])
                if warmup > 0:
                    await asyncio.sleep(warmup)
        else:
            for index in range(self.numprocesses):
                new = await self._spawn(generation)
                if new is None:
                    break
                started.append(new.pid)
                if warmup > 0 and index + 1 < self.numprocesses:
                    await asyncio.sleep(warmup)
            if generation == self._generation:
                stopped = await self._retire([p for p in old if p.pid in self._processes])
        if generation == self._generation:
            await self._trim()
        kept = [pid for pid in self.pids if pid not in started]
        return {"stopped": stopped, "started": started, "kept": kept}

    async def _trim(self) -> None:
        """Stop the oldest processes above ``numprocesses``; spawn up to it."""
        excess = len(self._processes) + self._pending - self.numprocesses
        while excess > 0 and self._respawn_timers:
            self._respawn_timers.pop().cancel()
            self._pending -= 1
            excess -= 1
        if excess > 0:
            oldest = sorted(self._processes.values(), key=lambda p: p.started)[:excess]
            await self._retire(oldest)
        elif excess < 0 and self._status == "active":
            await self._spawn_up_to_target()

    async def set_numprocesses(self, n: int) -> int:
        """Set the target count, spawning or stopping (oldest first) as needed; returns it."""
        value = convert("numprocesses", n)
        async with self._get_lock():
            if self.singleton and value > 1:
                raise OptionError("numprocesses", value, "0 or 1 when singleton is set")
            self._opts["numprocesses"] = value
            self._template = None
            if self._status in ("active", "starting"):
                await self._trim()
            return self.numprocesses

    async def incr(self, n: int = 1) -> int:
        """Add ``n`` processes (no change for a singleton); returns the new count."""
        if self.singleton:
            return self.numprocesses
        return await self.set_numprocesses(self.numprocesses + convert("numprocesses", n))

    async def decr(self, n: int = 1) -> int:
        """Remove ``n`` processes, oldest first (no change for a singleton); returns the count."""
        if self.singleton:
            return self.numprocesses
        return await self.set_numprocesses(max(0, self.numprocesses - convert("numprocesses", n)))

    def _find(self, pid: int) -> ProcessLike:
        try:
            return self._processes[int(pid)]
        except (KeyError, TypeError, ValueError):
            raise ProcessNotFoundError(self.name, pid) from None

    async def _signal_all(
        self, signum: int, procs: list[ProcessLike], *, children: bool = False,
        recursive: bool = False,
    ) -> None:  # fmt: skip
        hooked = "before_signal" in self._hooks or "after_signal" in self._hooks
        for proc in procs:
            if (
                hooked
                and not await self._hook("before_signal", pid=proc.pid, signum=signum)
                and signum != _signal.SIGKILL
            ):
                continue
            self._send(proc, signum, children=children, recursive=recursive)
            if hooked:
                await self._hook("after_signal", pid=proc.pid, signum=signum)

    async def signal(
        self, signum: int | str, pid: int | None = None, children: bool = False,
        recursive: bool = False,
    ) -> None:  # fmt: skip
        """Send ``signum`` to one process (``pid``) or all; ``children``: to their direct
        children only; ``recursive``: to the process and its whole subtree.

        Raises:
            ProcessNotFoundError: ``pid`` is not one of this watcher's processes.
            OptionError: ``signum`` is not a signal.
        """
        number = convert("stop_signal", signum)
        procs = [self._find(pid)] if pid is not None else list(self._processes.values())
        await self._signal_all(number, procs, children=children, recursive=recursive)

    async def kill_process(
        self, pid: int, signum: int | str | None = None, graceful_timeout: float | None = None
    ) -> None:
        """End one process like a stop (upstream's ``kill``) and replace it if active.

        Raises:
            ProcessNotFoundError: ``pid`` is not one of this watcher's processes.
        """
        proc = self._find(pid)
        number = None if signum is None else convert("stop_signal", signum)
        timeout = (
            None if graceful_timeout is None else convert("graceful_timeout", graceful_timeout)
        )
        await self._retire([proc], signum=number, graceful_timeout=timeout)
        if self._status == "active" and self._opts["respawn"] != "never":
            async with self._get_lock():
                if self._status == "active":
                    await self._trim()

    # ------------------------------------------------------------------ options

    def options(self) -> dict[str, Any]:
        """Every option value, as upstream's ``options`` command answers (+ ours)."""
        o = self._opts
        result: dict[str, Any] = {}
        for name in SPECS:
            if name in ("hooks", "prereload_fn", "stdout_stream", "stderr_stream", "rlimits"):
                continue
            value = o[name]
            result[name] = sorted(value) if isinstance(value, frozenset) else value
        result["env"] = dict(o["env"])
        for stream in ("stdout_stream", "stderr_stream"):
            conf = o[stream]
            if isinstance(conf, Mapping):
                result[f"{stream}_conf"] = {k: v for k, v in conf.items() if k != "class"}
            else:
                result[f"{stream}_conf"] = None
        for name, value in o["rlimits"].items():
            result[f"rlimit_{name}"] = value
        result.update(self._custom)
        return result

    def get_opt(self, key: str) -> Any:
        """One option's value (``hooks``, ``rlimits``, stream options included).

        Raises:
            UnknownOptionError: no such option.
        """
        if key in ("hooks", "rlimits", "stdout_stream", "stderr_stream", "prereload_fn"):
            value = self._opts[key]
            if key == "hooks":
                return {name: hook.spec for name, hook in self._hooks.items()}
            return dict(value) if isinstance(value, Mapping) else value
        if key.startswith("hooks."):
            hook = self._hooks.get(key[len("hooks.") :])
            return hook.spec if hook else None
        if key.startswith(("stdout_stream.", "stderr_stream.")):
            head, _, tail = key.partition(".")
            conf = self._opts[head]
            return conf.get(tail) if isinstance(conf, Mapping) else None
        options = self.options()
        if key in options:
            return options[key]
        if key.startswith("rlimit_"):
            return None
        raise unknown(key)

    async def set_opt(self, key: str, value: Any) -> None:
        """Change one option at run time (``set``); emits ``updated``.

        ``cmd, args, working_dir, uid, gid, shell, env, max_age, max_age_variance`` (and a
        stream given for the first time) gracefully reload a running watcher, as upstream;
        ``numprocesses`` resizes it; the others apply to processes spawned from then on.

        Raises:
            UnknownOptionError: no such option, or one that cannot change at run time.
            OptionError: bad value.
        """
        folded = fold({key: value})
        if key in self._custom and key not in SPECS:
            self._custom[key] = value
            self._template = None
            self._emit("updated", {"time": time.time()})
            return
        ((name, raw),) = folded.items()
        spec = SPECS.get(name)
        if spec is None:
            raise unknown(key)
        if not spec.settable and not key.startswith("rlimit_"):
            raise unknown(key)
        if isinstance(raw, Mapping) and name in ("hooks", "stdout_stream", "stderr_stream"):
            if key != name:  # a prefixed key merges into the current mapping
                current = self._opts[name] if isinstance(self._opts[name], Mapping) else {}
                raw = {**current, **raw}
        elif name == "rlimits":
            raw = {**self._opts["rlimits"], **raw}
        new_value = convert(name, raw)
        if name == "numprocesses":
            await self.set_numprocesses(new_value)
            self._emit("updated", {"time": time.time()})
            return
        candidate = {**self._opts, name: new_value}
        check_consistency(candidate)
        hooks = resolve_all(new_value) if name == "hooks" else self._hooks
        async with self._get_lock():
            self._opts = candidate
            self._hooks = hooks
            self._env = None
            self._template = None
            self._apply_policies()
        self._emit("updated", {"time": time.time()})
        # Unlike upstream, any stream change reloads: running processes keep their pipes.
        if (spec.reload or name.endswith("_stream")) and self._status == "active":
            await self.reload(graceful=True)

    # ------------------------------------------------------------------ stats

    def process_info(self, pid: int) -> dict[str, Any]:
        """Upstream's per-process info dict (with ``wid``, ``started``, ``age``)."""
        return _info(self._find(pid))

    def info(self) -> dict[int, Any]:
        """``{pid: info dict}`` for every process (a vanished one: upstream's string)."""
        return {pid: _info(proc) for pid, proc in list(self._processes.items())}

    async def stats(self, extended: bool = False) -> dict[int, Any]:
        """Like :meth:`info`; with ``extended`` each dict also goes through ``extended_stats``."""
        result = self.info()
        if extended and "extended_stats" in self._hooks:
            for pid, stats in result.items():
                if isinstance(stats, dict):
                    await self._hook("extended_stats", pid=pid, stats=stats)
        return result


def _info(proc: ProcessLike) -> Any:
    try:
        data = dict(proc.info())
    except Exception:
        return "No such process (stopped?)"
    data.setdefault("wid", proc.wid)
    data.setdefault("started", proc.started)
    data.setdefault("age", time.time() - proc.started)
    return data


def _process_status(returncode: int | None) -> int | None:
    """A wait()-style status word for ``after_reap`` (upstream passes the raw status)."""
    if returncode is None:
        return None
    return -returncode if returncode < 0 else returncode << 8


def _fileno(sock: Any) -> int:
    return sock if isinstance(sock, int) else int(sock.fileno())


def _close(proc: ProcessLike) -> None:
    try:
        proc.close()
    except Exception:
        logger.debug("closing process %s failed", proc.pid, exc_info=True)
