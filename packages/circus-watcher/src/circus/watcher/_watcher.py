"""The Watcher: N copies of one command, kept alive on the running asyncio loop.

The watcher is composed of parts that each own their state (README "How it is built"):
``settings`` (the frozen options), ``_life`` (the state machine: state, generation, halt),
``_procs`` (the process set), ``_spawner`` (spawns, deaths, respawns, backoff, max_age),
``_stopper`` (ending processes, the stop sequence, flapping stops), ``_hooks``,
``_output``, ``_events``, ``_on_demand`` and ``_tasks``. This module holds construction, the
public operations and the start sequence. Design (the why; the what is in the README):

* Dead children are seen through ``Process.add_exit_callback`` (pidfd, SIGCHLD fallback):
  nothing polls and nothing ticks. ``max_age`` arms one timer per process; backoff and
  flapping retries arm one timer each. An idle watcher schedules nothing.
* A process the watcher itself is ending (stop, decr, reload, kill, max_age) leaves the
  counted set first, so its exit is never mistaken for a crash.
* Spawning is synchronous (fork/exec is fast) and only awaits when a spawn hook, a warmup
  delay or a spawn retry asks for it, so starting 1,000 processes is one tight loop.
* Lifecycle operations (start, stop, reload, incr, decr, set) are serialised by one lock
  instead of failing with "already running" as upstream does; background work that may
  outlive an operation (respawn after a hook, flapping retries) checks the generation so a
  stop always wins.
"""

from __future__ import annotations

import asyncio
import signal as _signal
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from . import _settings, _stats
from ._crashloop import CrashWatch
from ._errors import OptionError, SpawnFailedError, WatcherError
from ._events import EventHub, Listener, OutputObserver
from ._flapping import FlappingDetector
from ._health import HealthMonitor
from ._hooks import HookRunner, resolve_all
from ._lifecycle import Halt, Lifecycle, WatcherState
from ._on_demand import OnDemand
from ._options import convert, to_limited_int
from ._output import OutputPump
from ._policy import RestartPolicy
from ._procs import ProcessFactory, ProcessLike
from ._procset import ProcessSet
from ._reload import replace_all, trim
from ._spawner import Spawner
from ._stopper import Stopper
from ._tasks import Background
from ._upstream_attrs import UpstreamAttributes
from ._upstream_view import upstream_options
from ._values import WatcherOptions


class Watcher(UpstreamAttributes):
    """N copies of one command, kept alive; usable from plain asyncio.

    Constructor keywords are upstream Circus 0.19's watcher options with its defaults
    (shared/spec/config.md §4); ``**options`` takes the prefixed keys (``hooks.X``,
    ``rlimit_X``, ``stdout_stream.X``, ``flapping.X``) and our extras (``respawn`` modes,
    ``success_exit_codes``, ``backoff_*``, ``hook_timeout``, ``retry_in``). Free-form keys
    that upstream keeps verbatim go in ``custom_options``; any other unknown key raises
    :class:`~circus.watcher.UnknownOptionError`, a bad value
    :class:`~circus.watcher.OptionError`. Every option is described by
    :data:`~circus.watcher.OPTIONS`; their values are :attr:`settings`.

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
        self.arbiter: Any = None
        #: ``{name: fd}`` (or socket objects) of the daemon's sockets; set by the arbiter.
        self.sockets: dict[str, Any] = {}
        self._factory = process_factory  # the test seam make_process honours
        self._events = EventHub()
        self._hooks = HookRunner(self, resolve_all(self.settings.hooks))
        self._life = Lifecycle(self._events.emit)
        self._procs = ProcessSet()
        self._spawner = Spawner(self)
        self._stopper = Stopper(self)
        self._output = OutputPump(self)
        self._inputs = _settings.ChildInputs(self)
        self._on_demand = OnDemand(self)
        self._tasks = Background(name)
        self._policy = RestartPolicy()
        self._flapping = FlappingDetector()
        self._crash = CrashWatch(name, self._emit)
        self._events.add_listener(self._crash.on_event)
        self._health = HealthMonitor(self)
        self._lock: asyncio.Lock | None = None
        self._apply_policies()

    # ------------------------------------------------------------------ public state

    def __repr__(self) -> str:
        return f"<Watcher {self.name!r} {self.status()} {len(self._procs)} processes>"

    @property
    def numprocesses(self) -> int:
        """The number of processes the watcher keeps running when active."""
        return self.settings.numprocesses

    @property
    def pids(self) -> list[int]:
        """Pids of the watcher's counted processes, oldest first."""
        return self._procs.pids

    @property
    def processes(self) -> dict[int, ProcessLike]:
        """``{pid: Process}`` of the watcher's counted processes (a copy)."""
        return dict(self._procs.counted)

    @property
    def ending(self) -> dict[int, ProcessLike]:
        """``{pid: Process}`` of the processes being ended (stop, decr, reload, kill), no
        longer counted but not reaped yet (a copy)."""
        return dict(self._procs.retiring)

    @property
    def priority(self) -> int:
        """Start order among watchers (higher first); used by the arbiter."""
        return self.settings.priority

    @property
    def autostart(self) -> bool:
        """Whether the arbiter starts this watcher at boot; the watcher ignores it."""
        return self.settings.autostart

    @property
    def singleton(self) -> bool:
        """At most one process."""
        return self.settings.singleton

    @property
    def on_demand(self) -> bool:
        """Start only when one of ``sockets`` becomes readable."""
        return self.settings.on_demand

    @property
    def state(self) -> WatcherState:
        """Where the watcher is in its lifecycle (``status()`` is its value)."""
        return self._life.state

    def status(self) -> str:
        """``'active'``, ``'stopped'``, ``'stopping'`` or ``'starting'``."""
        return self._life.state.value

    def is_stopped(self) -> bool:
        """True when the watcher is stopped."""
        return self._life.state is WatcherState.STOPPED

    def crash_loop(self) -> dict[str, Any] | None:
        """While the active watcher is crash-looping (README "Crash loops"): ``{"exits",
        "exit_code", "since", "last_exit", "next_retry"}`` (epoch seconds); else None."""
        if self._life.state is not WatcherState.ACTIVE:
            return None
        return self._crash.details()

    # ------------------------------------------------------------------ readiness

    @property
    def has_readiness(self) -> bool:
        """Whether processes must prove they are ready (the ``readiness`` option is set)."""
        return self._health.has_readiness

    async def wait_ready(
        self,
        pids: Iterable[int] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a deadline for the whole wait
    ) -> None:
        """Return once every process of ``pids`` (default: every current one) is ready.

        Without ``readiness``, a process is ready once spawned: this returns at once.

        Raises:
            NotReady: some are not, with ``reasons`` (pid -> why): not ready within
                ``timeout`` seconds, missed ``readiness_timeout`` (unready), failed its
                liveness, exited, or is not a process of this watcher.
        """
        await self._health.wait_ready(pids, timeout)

    def health(self, pid: int) -> dict[str, Any]:
        """``{"state", "status_text", "since"}`` of process ``pid``: ``state`` is
        ``starting``, ``ready``, ``unready`` or ``unhealthy``; ``status_text`` the last
        sd_notify ``STATUS=`` ("" if none); ``since`` when the state began (epoch).

        Raises:
            ProcessNotFoundError: ``pid`` is not one of this watcher's processes.
        """
        return self._health.health(int(pid))

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

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        self._events.emit(event, payload)

    # ------------------------------------------------------------------ plumbing

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _apply_policies(self) -> None:
        self._policy.configure(self.settings)
        self._flapping.configure(self.settings.flapping)

    def _cancel_background(self) -> None:
        """Forget every pending respawn and flapping retry (a stop or start wins)."""
        self._life.bump()
        self._life.halt = None
        self._spawner.cancel()
        self._stopper.cancel_flap_retry()
        self._on_demand.disarm()

    def _find(self, pid: int) -> ProcessLike:
        return self._procs.find(pid, self.name)

    # ------------------------------------------------------------------ starting

    async def _start(self) -> dict[str, list[int]]:
        """The start sequence (caller holds the lock)."""
        life = self._life
        if life.state is not WatcherState.STOPPED:
            return {"started": [], "kept": self.pids}
        self._cancel_background()
        life.change(WatcherState.STARTING)
        if not await self._hooks.call("before_start"):
            life.change(WatcherState.STOPPED)
            return {"started": [], "kept": []}
        self._inputs.reset()
        try:
            self._inputs.env()  # a bad virtualenv is a config error, not a spawn to retry
        except WatcherError:
            life.change(WatcherState.STOPPED)
            raise
        try:
            self._output.open()
        except Exception as exc:
            life.change(WatcherState.STOPPED)
            raise WatcherError(f"watcher {self.name!r}: cannot open its streams: {exc}") from exc
        generation = life.generation
        try:
            started = await self._spawner.spawn_up_to_target()
        except SpawnFailedError as exc:
            await self._stopper.stop()
            self._emit("give_up", {"reason": str(exc), "time": time.time()})
            raise
        if generation != life.generation:
            return {"started": started, "kept": []}  # a stop is waiting for the lock
        if life.halt is Halt.REFUSED:
            await self._stopper.stop()  # a spawn hook refused
            return {"started": [], "kept": []}
        life.change(WatcherState.ACTIVE)
        if not await self._hooks.call("after_start"):
            await self._stopper.stop()
            return {"started": [], "kept": []}
        if not self._procs and not self._spawner.pending and self.numprocesses > 0:
            # Every process already exited for good (respawn off): stopped, as upstream.
            self._tasks.run(self._stopper.stop_from_inside(rearm=True, generation=life.generation))
        return {"started": started, "kept": []}

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
            if self.on_demand and self.is_stopped():
                self._cancel_background()
                self._on_demand.arm()
                return {"started": [], "kept": []}
            return await self._start()

    def interrupt(self) -> None:
        """Make a start, reload or respawn in progress give up at its next step, at once if
        it is waiting to retry a failed spawn; for whoever is about to queue a stop or
        restart behind it (the lock it holds is not needed)."""
        self._life.bump()
        self._spawner.wake()

    async def stop(self) -> list[int]:
        """Stop every process (stop signal, ``graceful_timeout``, SIGKILL of the tree).

        Cancels pending respawns and flapping retries, and a start still retrying a spawn
        (even with ``max_retry = -1``). Returns the stopped pids.
        """
        self.interrupt()  # a start in progress stops spawning at its next step
        async with self._get_lock():
            self._flapping.clear()
            self._policy.reset()
            if self.is_stopped():
                self._cancel_background()
                return []
            return await self._stopper.stop()

    async def adopt(self, processes: Iterable[ProcessLike], *, emit: bool = True) -> list[int]:
        """Take in already-running processes with their worker ids; returns the pids kept.

        ``processes`` are ``circus.process.Process`` objects made by ``Process.attach`` (or
        any :class:`ProcessLike`), each with its ``wid``. No hook runs and nothing is spawned
        for them; a stopped watcher becomes active (its streams opened, ``start`` emitted,
        no ``before_start``/``after_start``). They count against ``numprocesses``: above
        it the oldest are ended as by ``decr``, below it the missing are spawned. Their
        exits are then handled as any other (reap, respawn). ``emit``: publish one
        ``adopt`` event per process (``process_pid``, ``wid``, ``time``).

        A process already reaped is closed and left out; one that died unnoticed is
        reaped and replaced as soon as it is watched.

        Raises:
            WatcherError: a wid or pid is used twice or already in use, or the watcher is
                stopping (nothing is adopted then).
        """
        from ._adopt import adopt

        return await adopt(self, processes, emit=emit)

    async def restart(self) -> dict[str, list[int]]:
        """Stop then start; returns ``{"stopped", "started", "kept"}``."""
        self.interrupt()
        async with self._get_lock():
            self._flapping.clear()
            self._policy.reset()
            stopped = await self._stopper.stop()
            info = await self._start()
        return {"stopped": stopped, **info}

    async def reload(self, graceful: bool = True, sequential: bool = False) -> dict[str, Any]:
        """Reload the processes; returns ``{"stopped", "started", "kept"}``.

        A stopped watcher is started. ``graceful=False`` is a restart. With ``send_hup``
        every process gets SIGHUP. Otherwise new processes are spawned *before* the old
        ones are stopped, so ``numprocesses`` stay up throughout: all at once, or one
        old/new pair at a time when ``sequential``. With ``readiness`` it rolls: one new
        process, ready, then one old one stopped, and so on. Emits ``reload``.

        Raises:
            RolloutError: a new process was not ready in time or exited first; it was
                stopped and the old processes not yet replaced keep running.
        """
        async with self._get_lock():
            return await self._reload_locked(graceful, sequential)

    async def _reload_locked(
        self, graceful: bool = True, sequential: bool = False
    ) -> dict[str, Any]:
        """:meth:`reload`, the caller holding the lock."""
        prereload = self.settings.prereload_fn
        if prereload is not None:
            prereload(self)
        if self.is_stopped():
            info: dict[str, Any] = {"stopped": [], **await self._start()}
        elif not graceful:
            stopped = await self._stopper.stop()
            info = {"stopped": stopped, **await self._start()}
        elif self.settings.send_hup:
            await self._stopper.signal_all(_signal.SIGHUP, list(self._procs))
            info = {"stopped": [], "started": [], "kept": self.pids}
        else:
            info = await replace_all(self, sequential)
        self._emit("reload", {"time": time.time()})
        return info

    async def redeploy(self, settings: WatcherOptions) -> dict[str, Any]:
        """Take a whole new set of options and roll every process to them (a deploy by
        config: see ``circus.watcher._redeploy``); a failed roll puts the old options back.

        Raises:
            WatcherError: not active with readiness before and after, or streams changed.
            RolloutError: a new process was not ready; the old processes keep serving.
        """
        from ._redeploy import redeploy

        return await redeploy(self, settings)

    async def set_numprocesses(self, n: int) -> int:
        """Set the target count, spawning or stopping (oldest first) as needed; returns it."""
        value = convert("numprocesses", n)
        async with self._get_lock():
            if self.singleton and value > 1:
                raise OptionError("numprocesses", value, "0 or 1 when singleton is set")
            self.settings = self.settings.replace("numprocesses", value)
            if self._life.running:
                await trim(self)
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
            self._stopper.signal_child(self._find(pid), int(childpid), number)
            return
        procs = [self._find(pid)] if pid is not None else list(self._procs)
        await self._stopper.signal_all(number, procs, children=children, recursive=recursive)

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
        await self._stopper.retire([proc], signum=number, graceful_timeout=timeout)
        if self.status() == "active" and self.settings.respawn != "never":
            async with self._get_lock():
                if self.status() == "active":
                    await trim(self)

    # ------------------------------------------------------------------ options and stats

    def options(self) -> dict[str, Any]:
        """What the ``options`` command answers: Circus 0.19's keys with its value types,
        then ours that differ from their default (see ``UPSTREAM_OPTION_KEYS``)."""
        return upstream_options(self.settings)

    def get_opt(self, key: str) -> Any:
        """One option's value (``hooks``, ``rlimits``, stream options included).

        Raises:
            UnknownOptionError: no such option.
        """
        return _settings.get_value(self, key)

    async def set_opt(self, key: str, value: Any) -> None:
        """Change one option at run time (``set``); emits ``updated``.

        What it costs is the option's :attr:`~circus.watcher.OptionSpec.effect`: ``cmd, args,
        working_dir, uid, gid, shell, env, max_age, max_age_variance`` gracefully reload a
        running watcher, as upstream, and so does any stream change (upstream: only a first
        stream); ``numprocesses`` resizes it; the others apply to processes spawned from
        then on.

        Raises:
            UnknownOptionError: no such option, or one that cannot change at run time.
            OptionError: bad value.
        """
        await _settings.set_value(self, key, value)

    async def set_opts(self, options: Mapping[str, Any]) -> None:
        """Change several options at once (``set`` with many keys); emits one ``updated``.

        Every key and value is checked first, and the result as a whole (cross-option
        rules, a changed stream's options): one bad key changes nothing. They are then
        applied together, and what they cost is paid once: at most one graceful reload of a
        running watcher (see :meth:`set_opt` for which options need one), whose new streams
        and environment are made before any process is replaced (a failure puts the old
        options back), then the process count adjusted for ``numprocesses``.

        Raises:
            UnknownOptionError: a key names no option, or one that cannot change at run time.
            OptionError: a bad value or combination (nothing changed).
            WatcherError: a changed stream cannot be opened (nothing changed).
            RolloutError: with readiness, a new process was not ready in time.
        """
        from ._setopts import apply_options

        await apply_options(self, options)

    def check_opts(self, options: Mapping[str, Any]) -> None:
        """Raise what :meth:`set_opts` would raise for ``options`` before changing anything
        (not what only opening a stream can tell); changes nothing.

        Raises:
            UnknownOptionError, OptionError: as :meth:`set_opts`.
        """
        from ._setopts import plan_options

        plan_options(self, options)

    def process_info(self, pid: int) -> Any:
        """Upstream's per-process info dict (with ``wid``, ``started``, ``age``), or its
        "No such process (stopped?)" string for a process that vanished meanwhile."""
        proc = self._find(pid)
        return self._health.extend(proc.pid, _stats.info_of(proc))

    def info(self) -> dict[int, Any]:
        """``{pid: info dict}`` for every process (a vanished one: upstream's string)."""
        result = _stats.info(list(self._procs.counted.items()))
        if self._health.configured:
            result = {pid: self._health.extend(pid, info) for pid, info in result.items()}
        return result

    async def stats(self, extended: bool = False) -> dict[int, Any]:
        """Like :meth:`info`, read in a worker thread; with ``extended`` each dict also goes
        through the ``extended_stats`` hook."""
        result = await _stats.stats(self, extended)
        if self._health.configured:
            result = {pid: self._health.extend(pid, info) for pid, info in result.items()}
        return result

    def summary(self) -> dict[str, Any]:
        """The per-watcher aggregate of upstream's stats channel: ``pid`` (list), ``cpu``
        (mean %), ``mem`` (sum %), ``age`` (max s); ``"N/A"`` when any value is."""
        return _stats.summary([i for i in self.info().values() if isinstance(i, Mapping)])
