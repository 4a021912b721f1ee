"""The Watcher: N copies of one command, kept alive on the running asyncio loop.

This module holds construction, the public operations and start; spawning and deaths are
in ``_spawning``, stopping and flapping in ``_stopping``, options and stats in
``_settings``, shared state in ``_base``. Design (the why; the what is in the README):

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
import os
import signal as _signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from ._child_sockets import is_reuseport
from ._errors import (
    OptionError,
    ProcessNotFoundError,
    ResourceShortage,
    SpawnFailedError,
    WatcherError,
)
from ._events import EventHub, Listener, OutputObserver
from ._flapping import FlappingDetector
from ._hooks import Hook, resolve_all
from ._options import convert, to_limited_int
from ._output import OutputPump
from ._policy import RestartPolicy
from ._procs import ProcessFactory, ProcessLike, socket_fd
from ._settings import SettingsMixin
from ._spawning import SpawningMixin, logger
from ._stopping import StoppingMixin
from ._values import WatcherOptions
from ._wids import WidPool


class Watcher(SettingsMixin, StoppingMixin, SpawningMixin):
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
        #: Every option value, typed and frozen; ``set_opt`` replaces it with a new one.
        self.settings = WatcherOptions.build(given, custom_options)
        if not self.settings.cmd:
            raise OptionError("cmd", cmd, "a non-empty command line")
        self._hooks: dict[str, Hook] = resolve_all(self.settings.hooks)
        self.arbiter: Any = None
        #: ``{name: fd}`` (or socket objects) of the daemon's sockets; set by the arbiter.
        self.sockets: dict[str, Any] = {}
        self._factory = process_factory
        self._processes: dict[int, ProcessLike] = {}
        self._retiring: dict[int, ProcessLike] = {}
        self._exits: dict[int, asyncio.Future[int | None]] = {}
        self._exit_callback = self._on_exit  # bound once, shared by every process
        self._age_timers: dict[int, asyncio.TimerHandle] = {}
        self._respawn_timers: set[asyncio.TimerHandle] = set()
        self._pending = 0  # replacements decided but not spawned yet
        self._shortages = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._status = "stopped"
        self._generation = 0
        self._backoffs: set[asyncio.Future[None]] = set()
        self._lock: asyncio.Lock | None = None
        self._wids = WidPool()
        self._events = EventHub()
        self._output = OutputPump(self)
        self._policy = RestartPolicy()
        self._flapping = FlappingDetector()
        self._flap_timer: asyncio.TimerHandle | None = None
        self._refusal = False
        self._halted = False
        self._demand_fds: list[int] = []
        self._env: dict[str, str] | None = None
        self._template: dict[str, str] | None = None
        self._apply_policies()

    # ------------------------------------------------------------------ public state

    def __repr__(self) -> str:
        return f"<Watcher {self.name!r} {self._status} {len(self._processes)} processes>"

    @property
    def processes(self) -> dict[int, ProcessLike]:
        """``{pid: Process}`` of the watcher's counted processes (a copy)."""
        return dict(self._processes)

    @property
    def priority(self) -> int:
        """Start order among watchers (higher first); used by the arbiter."""
        return int(self.settings.priority)

    @property
    def autostart(self) -> bool:
        """Whether the arbiter starts this watcher at boot; the watcher ignores it."""
        return bool(self.settings.autostart)

    @property
    def singleton(self) -> bool:
        """At most one process."""
        return bool(self.settings.singleton)

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
        """``async for event, payload in watcher.events()``: every event emitted from the
        iteration's first step until the loop is left (one unbounded queue per iteration)."""
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
            self._child_env()  # a bad virtualenv is a config error, not a spawn to retry
        except WatcherError:
            self._status = "stopped"
            raise
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
        # A so_reuseport socket only reserves its address (bound, never listening): the
        # kernel reports it as hung up, i.e. always "readable", so it cannot wake us.
        fds = [socket_fd(s) for s in self.sockets.values() if not is_reuseport(s)]
        if not fds:
            raise WatcherError(
                f"watcher {self.name!r} is on_demand but has no socket to wait on "
                "(so_reuseport sockets cannot start a watcher on demand)"
            )
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

    def interrupt(self) -> None:
        """Make a start, reload or respawn in progress give up at its next step, at once if
        it is waiting to retry a failed spawn; for whoever is about to queue a stop or
        restart behind it (the lock it holds is not needed)."""
        self._generation += 1
        for backoff in self._backoffs:
            if not backoff.done():
                backoff.set_result(None)

    async def stop(self) -> list[int]:
        """Stop every process (stop signal, ``graceful_timeout``, SIGKILL of the tree).

        Cancels pending respawns and flapping retries, and a start still retrying a spawn
        (even with ``max_retry = -1``). Returns the stopped pids.
        """
        self.interrupt()  # a start in progress stops spawning at its next step
        async with self._get_lock():
            self._flapping.clear()
            self._policy.reset()
            if self._status == "stopped":
                self._cancel_background()
                return []
            return await self._stop()

    async def restart(self) -> dict[str, list[int]]:
        """Stop then start; returns ``{"stopped", "started", "kept"}``."""
        self.interrupt()
        async with self._get_lock():
            self._flapping.clear()
            self._policy.reset()
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
            prereload = self.settings.prereload_fn
            if prereload is not None:
                prereload(self)
            if self._status == "stopped":
                info: dict[str, Any] = {"stopped": [], **await self._start()}
            elif not graceful:
                stopped = await self._stop()
                info = {"stopped": stopped, **await self._start()}
            elif self.settings.send_hup:
                await self._signal_all(_signal.SIGHUP, list(self._processes.values()))
                info = {"stopped": [], "started": [], "kept": self.pids}
            else:
                info = await self._replace_all(sequential)
            self._emit("reload", {"time": time.time()})
            return info

    async def _replace_all(self, sequential: bool) -> dict[str, Any]:
        self._env = None
        self._template = None
        try:
            self._output.refresh()  # a stream changed by ``set``: new processes write there
        except Exception as exc:
            raise WatcherError(f"watcher {self.name!r}: cannot open its streams: {exc}") from exc
        generation = self._generation
        info = await self._replace_processes(sequential)
        if generation == self._generation:
            self._output.close_superseded()  # else the stop that interrupted us closes them
        return info

    async def _replace_processes(self, sequential: bool) -> dict[str, Any]:
        old = list(self._processes.values())
        started: list[int] = []
        stopped: list[int] = []
        generation = self._generation
        warmup = self.settings.warmup_delay
        short = False  # the host ran short of resources: keep the old processes not replaced
        if sequential:
            for proc in old:
                try:
                    new = await self._spawn(generation)
                except ResourceShortage as exc:
                    logger.warning("watcher %s: reload stopped short: %s", self.name, exc)
                    break
                if new is None:
                    break
                started.append(new.pid)
                if proc.pid in self._processes:
                    stopped += await self._retire([proc])
                if warmup > 0:
                    await asyncio.sleep(warmup)
        else:
            for index in range(self.numprocesses):
                try:
                    new = await self._spawn(generation)
                except ResourceShortage as exc:
                    logger.warning("watcher %s: reload stopped short: %s", self.name, exc)
                    short = True
                    break
                if new is None:
                    break
                started.append(new.pid)
                if warmup > 0 and index + 1 < self.numprocesses:
                    await asyncio.sleep(warmup)
            if generation == self._generation:
                retiring = old[: len(started)] if short else old
                stopped = await self._retire([p for p in retiring if p.pid in self._processes])
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
            self.settings = self.settings.replace("numprocesses", value)
            self._template = None
            if self._status in ("active", "starting"):
                await self._trim()
            return self.numprocesses

    async def incr(self, n: int = 1) -> int:
        """Add ``n`` processes (no change for a singleton); returns the new count."""
        if self.singleton:
            return self.numprocesses
        return await self.set_numprocesses(self.numprocesses + to_limited_int("nb", n))

    async def decr(self, n: int = 1) -> int:
        """Remove ``n`` processes, oldest first (no change for a singleton); returns the count."""
        if self.singleton:
            return self.numprocesses
        return await self.set_numprocesses(max(0, self.numprocesses - to_limited_int("nb", n)))

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
        recursive: bool = False, childpid: int | None = None,
    ) -> None:  # fmt: skip
        """Send ``signum`` to one process (``pid``) or all; ``children``: to their direct
        children only; ``recursive``: to the process and its whole subtree; ``childpid``
        (with ``pid``): to that one child of the process.

        Raises:
            ProcessNotFoundError: ``pid`` is not one of this watcher's processes, or
                ``childpid`` is not one of its children.
            OptionError: ``signum`` is not a signal, or ``childpid`` without ``pid``.
        """
        number = convert("stop_signal", signum)
        if childpid is not None:
            if pid is None:
                raise OptionError("childpid", childpid, "to come with a pid")
            proc = self._find(pid)
            from circus.process import is_child_of  # two /proc reads, not a children listing

            if not is_child_of(int(childpid), proc.pid):
                raise ProcessNotFoundError(self.name, int(childpid))
            try:
                os.kill(int(childpid), number)
            except ProcessLookupError:
                raise ProcessNotFoundError(self.name, int(childpid)) from None
            return
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
        if self._status == "active" and self.settings.respawn != "never":
            async with self._get_lock():
                if self._status == "active":
                    await self._trim()
