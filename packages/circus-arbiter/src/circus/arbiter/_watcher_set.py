"""The watcher set: the daemon's watchers, each changed under its own lock.

Built on :class:`~._registry.WatcherTable` (names, order, locks). A watcher that joins is
wired to the sockets it may use (:class:`~._sockets.SocketSet`), to the output hub (its lines
published and kept for ``logs``, streams without a class forwarded to circusd's stdio) and to
the events channel (through the ``publish`` callable given here; a reaped worker also makes
the set look for orphans it left). Without ``depends_on``, starts go in priority order,
``warmup_delay`` apart, one watcher's failure never keeping the others down, and stops run all
at once. With it (:attr:`WatcherSet.deps`, ordered by ``_deporder``) a watcher starts once
what it requires is ready and stops before it; starting one starts what it requires, stopping
one stops what requires it, restarting one restarts what requires it and was running. Once
:meth:`WatcherSet.shut` is called nothing starts any more. The sum of every watcher's
``numprocesses`` is capped by :meth:`WatcherSet.check_total`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from circus.ctl.protocol import event_topic

from ._crashview import crash_loop_of, shown_status
from ._depgraph import DependencyError, DepGraph, parse_names
from ._deporder import failure_error, start_in_order, stop_in_order
from ._errors import ArbiterError, ConflictError, MessageError
from ._forward import OutputForwarder
from ._limits import check_total
from ._orphans import reap_adopted
from ._output import OutputHub
from ._registry import WatcherTable
from ._sockets import SocketSet
from ._watchers import make_watcher

__all__ = ["WatcherSet"]

log = logging.getLogger("circus.arbiter")

Publish = Callable[[str, Mapping[str, Any]], None]

# Events after which the set of running processes differs.
_PROCESS_EVENTS = frozenset({"spawn", "reap", "adopt"})


class WatcherSet:
    """The daemon's watchers, their sockets and their output.

    Args:
        sockets: ``CircusSocket`` objects or dicts of their keyword arguments.
        publish: ``publish(topic, payload)`` on the events channel.
        wanted: ``wanted(topic)``: does any subscriber want it (output lines nobody wants
            are not even turned into messages).
        output_lines: lines of output kept per watcher for ``logs``.
        warmup_delay: seconds between two starts in :meth:`start_all`.
        owner: what each watcher's ``arbiter`` attribute refers to (hooks receive it).
    """

    def __init__(
        self,
        sockets: Iterable[Any],
        publish: Publish,
        wanted: Callable[[str], bool],
        output_lines: int = 1000,
        warmup_delay: float = 0.0,
        owner: Any = None,
    ) -> None:
        self.table = WatcherTable()
        self.deps = DepGraph()  # depends_on: which watcher requires which
        # watchers whose depends_on a daemon-reexec handed over (none included): the
        # config's does not replace it
        self.deps_handed: set[str] = set()
        self.sockets = SocketSet(sockets)
        self.output = OutputHub(publish, keep=output_lines, wanted=wanted)
        self.warmup_delay = warmup_delay
        self._publish = publish
        self._owner = owner
        self._shut = False
        self._shutting = asyncio.Event()  # cuts a warmup pause short
        self._orphan_check = False  # a reap_adopted is scheduled
        #: ``observer(watcher_name, event)`` for every watcher event (circusd's STATUS=)
        self.observers: list[Callable[[str, str], None]] = []
        #: Called after a process started, was adopted or was reaped (the crash state file).
        self.process_changed: Callable[[], None] | None = None
        #: ``on_give_up(watcher, reason)``: a watcher stopped for good on its own.
        self.on_give_up: Callable[[Any, str], None] | None = None

    # ------------------------------------------------------------------ views

    @property
    def stopping(self) -> bool:
        """True once :meth:`shut` was called: nothing starts any more."""
        return self._shut

    def get(self, name: str) -> Any:
        """The watcher called ``name`` (any case); ``NotFoundError`` otherwise."""
        return self.table.get(name)

    def ordered(self, reverse: bool = False) -> list[Any]:
        """Watchers in start order, or stop order with ``reverse``."""
        return self.table.ordered(reverse=reverse)

    def statuses(self) -> dict[str, str]:
        """``{watcher name: status}`` for every watcher (:func:`shown_status`)."""
        return {w.name: shown_status(w) for w in self.table.ordered()}

    def crash_loops(self) -> dict[str, dict[str, Any]]:
        """``{watcher name: crash loop details}`` of the watchers crash-looping now."""
        loops = {w.name: crash_loop_of(w) for w in self.table.ordered()}
        return {name: loop for name, loop in loops.items() if loop is not None}

    def numprocesses(self) -> int:
        """Running processes, all watchers together."""
        return sum(len(w.pids) for w in self.table.ordered())

    def check_total(self, name: str, target: int) -> None:
        """Refuse to let watcher ``name`` (existing or about to be added) run ``target``
        processes when every watcher's ``numprocesses``, summed, would pass the daemon's
        ceiling (``MessageError``, errno 3)."""
        check_total(self.table.ordered(), name, target)

    # ------------------------------------------------------------------ membership

    def open(self) -> None:
        """Ready the output path (a forwarder to circusd's stdio, unless one was set)."""
        if self.output.forwarder is None:
            self.output.forwarder = OutputForwarder()

    def bind_sockets(self) -> None:
        """Bind every socket not bound yet (``ArbiterError``-like errors name the socket)."""
        self.sockets.bind_all()

    def register(self, watcher: Any) -> None:
        """Add an existing watcher object, wired to sockets, output and events (no event
        is published: see :meth:`create`).

        Raises:
            ConflictError: a watcher with that name exists.
        """
        if watcher.name in self.table:
            raise ConflictError(f"'{watcher.name}' already exist")
        name = watcher.name
        topics: dict[str, str] = {}  # event -> its topic: a stop of 1,000 publishes 2,000

        def on_event(event: str, payload: Mapping[str, Any]) -> None:
            topic = topics.get(event)
            if topic is None:
                topic = topics[event] = event_topic(name, event)
            self._publish(topic, payload)
            for observer in self.observers:
                observer(name, event)
            if event in _PROCESS_EVENTS and self.process_changed is not None:
                self.process_changed()
            if event == "updated":  # a `set` may have given a stream a class, or taken it
                _route_output(self.output, watcher)
            elif event == "give_up" and self.on_give_up is not None:
                self.on_give_up(watcher, str(payload.get("reason", "")))
            elif event == "reap":
                pid = payload.get("process_pid")
                if isinstance(pid, int):
                    self.output.flush_pid(name, pid)
                # a dead worker's own children may now be orphans we adopted: one look per
                # loop pass, however many workers died in it (each look lists every child)
                if not self._orphan_check:
                    self._orphan_check = True
                    asyncio.get_running_loop().call_soon(self._reap_adopted)

        watcher.arbiter = self._owner
        self.sockets.attach(watcher)
        watcher.add_listener(on_event)
        watcher.add_output_observer(self.output.observer(name))
        _route_output(self.output, watcher)
        self.table.add(watcher)

    def register_spec(self, spec: Any) -> None:
        """:meth:`register` a watcher object, or one made from a dict of its arguments
        (whose ``depends_on`` is recorded unchecked: :meth:`check_dependencies` once every
        watcher is registered)."""
        if isinstance(spec, Mapping):
            spec = dict(spec)
            deps = _names(spec.pop("depends_on", None))
            self.register(make_watcher(spec))
            self.deps.set(spec["name"], deps)
        else:
            self.register(spec)

    def check_dependencies(self) -> None:
        """Check every recorded ``depends_on`` against the registered watchers.

        Raises:
            ArbiterError: a dependency names no watcher, or closes a cycle.
        """
        edges = self.deps.as_dict()
        # watchers registered without their spec (handed over by a daemon-reexec) get the
        # depends_on of the config the daemon runs
        config = getattr(self._owner, "loaded_config", None)
        for cfg in getattr(config, "watchers", ()):
            key = cfg.name.lower()
            if cfg.depends_on and key not in edges and key in self.table:
                if key in self.deps_handed:
                    continue
                edges[key] = tuple(cfg.depends_on)
        self.deps = DepGraph()
        for name, deps in edges.items():
            try:
                self.deps.check(name, deps, known=lambda d: d in self.table)
            except DependencyError as exc:
                raise ArbiterError(f"watcher {name!r} depends_on: {exc}") from None
            self.deps.set(name, deps)

    def dependencies_of(self, name: str) -> list[str]:
        """What watcher ``name`` requires (``depends_on``), by the watchers' own names."""
        names = []
        for dep in self.deps.requires(name):
            watcher = self.table.find(dep)
            names.append(watcher.name if watcher is not None else dep)
        return names

    def check_dependencies_of(self, name: str, deps: Any) -> tuple[str, ...]:
        """The names watcher ``name`` would require with ``deps`` (see
        :meth:`set_dependencies`); changes nothing.

        Raises:
            MessageError: ``deps`` is not a list of names, names no watcher (or ``name``
                itself), or closes a cycle.
        """
        names = _names(deps)
        try:
            self.deps.check(name, names, known=lambda d: d in self.table)
        except DependencyError as exc:
            raise MessageError(f"depends_on: {exc}") from None
        return names

    def set_dependencies(self, name: str, deps: Any, check: bool = True) -> tuple[str, ...]:
        """Make watcher ``name`` require ``deps`` (names, or a string of comma-separated
        names) from now on; nothing is started or stopped. Returns the names recorded.

        Raises:
            MessageError: ``deps`` is not a list of names, names no watcher (with ``check``),
                or closes a cycle.
        """
        names = _names(deps)
        try:
            self.deps.check(name, names, known=lambda d: d in self.table or not check)
        except DependencyError as exc:
            raise MessageError(f"depends_on: {exc}") from None
        self.deps.set(name, names)
        return names

    def _reap_adopted(self) -> None:
        self._orphan_check = False
        reap_adopted()

    def create(self, name: str, cmd: str, depends_on: Any = None, **options: Any) -> Any:
        """Create and register a stopped watcher; publishes ``add``. ``depends_on``: the
        watchers it requires (names, or one string of comma-separated names).

        Raises:
            ConflictError: a watcher with that name exists (``'<name>' already exist``).
            MessageError: an option is invalid (the watcher layer's message), the name
                is longer than a command may name a watcher by (256 characters), or
                ``depends_on`` names no watcher or closes a cycle.
        """
        from ._patterns import check_pattern

        check_pattern(name)
        if name in self.table:
            raise ConflictError(f"'{name}' already exist")
        deps = _names(depends_on)
        try:
            self.deps.check(name, deps, known=lambda d: d in self.table)
        except DependencyError as exc:
            raise MessageError(f"depends_on: {exc}") from None
        watcher = make_watcher({"name": name, "cmd": cmd, **options})
        self.register(watcher)
        self.deps.set(name, deps)
        self.publish_event(name, "add")
        return watcher

    async def remove(self, watcher: Any, nostop: bool = False) -> None:
        """Unregister a watcher (object or name; publishes ``remove``) and stop it unless
        ``nostop``."""
        if isinstance(watcher, str):
            watcher = self.table.get(watcher)
        self.table.remove(watcher)
        self.publish_event(watcher.name, "remove")
        if not nostop:
            await self.stop(watcher)
        self.deps.discard(watcher.name)
        _close_watcher(watcher)
        self.output.forget(watcher.name)
        self.table.drop_lock(watcher.name)

    def publish_event(self, watcher_name: str, event: str, **payload: Any) -> None:
        """Publish ``watcher.<name>.<event>`` with ``time`` added."""
        body = dict(payload)
        body.setdefault("time", time.time())
        self._publish(event_topic(watcher_name, event), body)

    # ------------------------------------------------------------------ one watcher

    async def start(self, watcher: Any) -> Any:
        """Start one watcher, after what it requires (``depends_on``) is started and ready;
        the watcher's ``{"started", "kept"}`` (``None`` once shut, or when it was removed
        meanwhile).

        Raises:
            CommandError: a requirement did not start or get ready (the watcher is left
                stopped; ``dependency_failed`` was published), or the watcher itself did not.
        """
        name = watcher.name.lower()
        if not self.deps.requires(name):
            return await self.start_one(watcher)
        infos: dict[str, Any] = {}
        failures = await start_in_order(self, [name], infos)
        failed = failures.get(name)
        if failed is not None and not self._shut:
            raise failure_error(watcher.name, failed)
        return infos.get(name)

    async def start_many(self, watchers: Iterable[Any]) -> None:
        """Start ``watchers`` (and what they require): in dependency order when they have
        any, else one after the other in priority order. A failure is logged, not raised."""
        wanted = {id(w) for w in watchers}
        targets = [w for w in self.table.ordered() if id(w) in wanted]
        if self.deps.involves(w.name for w in targets):
            await start_in_order(self, [w.name.lower() for w in targets])
            return
        for watcher in targets:
            try:
                await self.start_one(watcher)
            except Exception as exc:
                log.error("watcher %s failed to start: %s", watcher.name, exc)

    async def start_one(self, watcher: Any) -> Any:
        """Start one watcher under its lock, whatever it requires; as :meth:`start`."""
        async with self.table.locked(watcher):
            if self._shut or watcher.name not in self.table:
                return None
            return await watcher.start()

    async def stop(self, watcher: Any) -> None:
        """Stop one watcher, after every watcher requiring it (transitively) is stopped."""
        name = watcher.name.lower()
        if not self.deps.dependents(name):
            await self.stop_one(watcher)
            return
        targets = {name: watcher}
        for other in self.deps.dependent_closure([name]) - {name}:
            found = self.table.find(other)
            if found is not None:
                targets[other] = found
        await stop_in_order(self, targets)

    async def stop_one(self, watcher: Any) -> None:
        """Stop one watcher under its lock, whatever requires it."""
        # A start holding the lock may be retrying a spawn forever (max_retry = -1): tell it
        # to give up now, or this stop (and a quit) would wait behind it for good.
        interrupt = getattr(watcher, "interrupt", None)
        if interrupt is not None:
            interrupt()
        async with self.table.locked(watcher):
            await watcher.stop()

    async def restart(self, watcher: Any) -> Any:
        """Restart one watcher; ``{"stopped", "started", "kept"}``.

        With ``depends_on``: the watchers requiring it that were running are stopped first
        and started again once it is ready; what it requires is started first if stopped.

        Raises:
            CommandError: a requirement did not start or get ready (the watcher is stopped).
        """
        name = watcher.name.lower()
        if not self.deps.requires(name) and not self.deps.dependents(name):
            return await self.restart_one(watcher)
        running = {}
        for other in self.deps.dependent_closure([name]) - {name}:
            found = self.table.find(other)
            if found is not None and not found.is_stopped():
                running[other] = found
        if running:
            await stop_in_order(self, running)
        required = self.deps.required_closure([name]) - {name}
        if required:
            failures = await start_in_order(self, required)
            failed = next((f for f in failures.values() if f is not None), None)
            if failed is not None and not self._shut:
                await self.stop_one(watcher)
                raise failure_error(watcher.name, failed)
        info = await self.restart_one(watcher)
        if running and not self._shut:
            await start_in_order(self, running)
        return info

    async def restart_one(self, watcher: Any) -> Any:
        """Restart one watcher under its lock, whatever it requires or requires it."""
        async with self.table.locked(watcher):
            if self._shut:
                return None
            return await watcher.restart()

    async def reload(self, watcher: Any, graceful: bool = True, sequential: bool = False) -> Any:
        """Reload one watcher under its lock (a stopped watcher is started, as upstream; with
        ``depends_on``, as :meth:`start` starts it)."""
        if watcher.is_stopped() and self.deps.requires(watcher.name):
            info = await self.start(watcher)
            return None if info is None else {"stopped": [], **info}
        async with self.table.locked(watcher):
            if self._shut:
                return None
            return await watcher.reload(graceful=graceful, sequential=sequential)

    # ------------------------------------------------------------------ all of them

    async def start_all(self, only_autostart: bool = True) -> None:
        """Start watchers in priority order, ``warmup_delay`` apart (with ``depends_on``:
        each once what it requires is ready, with what it requires even if not
        ``autostart``)."""
        if self.deps:
            names = [
                w.name.lower()
                for w in self.table.ordered()
                if not only_autostart or getattr(w, "autostart", True)
            ]
            await start_in_order(self, names, pace=self._pacer())
            return
        first = True
        for watcher in self.table.ordered():
            if self._shut:
                return
            if only_autostart and not getattr(watcher, "autostart", True):
                continue
            if not first and self.warmup_delay and not await self._pause(self.warmup_delay):
                return
            first = False
            try:
                await self.start(watcher)
            except Exception as exc:
                # one watcher that cannot spawn must not keep the others (or circusd) down
                log.error("watcher %s failed to start: %s", watcher.name, exc)

    def _pacer(self) -> Any:
        """``await pace()`` before each launch: ``warmup_delay`` between two launches."""
        lock = asyncio.Lock()
        last: list[float] = []

        async def pace() -> None:
            async with lock:
                delay = self.warmup_delay
                if last and delay:
                    wait = last[0] + float(delay) - asyncio.get_running_loop().time()
                    if wait > 0:
                        await self._pause(wait)
                last[:] = [asyncio.get_running_loop().time()]

        return pace

    async def wait_shut(self) -> None:
        """Return once :meth:`shut` is called."""
        await self._shutting.wait()

    async def _pause(self, seconds: float) -> bool:
        # A warmup pause that a quit cuts short: False when it was.
        try:
            await asyncio.wait_for(self._shutting.wait(), float(seconds))
        except TimeoutError:
            pass
        return not self._shut

    async def stop_all(self) -> None:
        """Stop every watcher concurrently (each under its own lock; with ``depends_on``,
        each once what requires it is stopped)."""
        watchers = self.table.ordered(reverse=True)
        if self.deps:
            await stop_in_order(self, {w.name.lower(): w for w in watchers})
            return
        await asyncio.gather(*(self.stop_one(w) for w in watchers), return_exceptions=True)

    async def reload_all(self, graceful: bool = True, sequential: bool = False) -> None:
        """Reload every watcher in priority order; one that fails (a rolling reload whose
        new release is not ready) does not keep the others from being reloaded.

        Raises:
            WatcherError: the first failure, or one naming every failed watcher.
        """
        from circus.watcher import WatcherError

        failed: list[WatcherError] = []
        for watcher in self.table.ordered():
            try:
                await self.reload(watcher, graceful=graceful, sequential=sequential)
            except WatcherError as exc:
                log.error("reload of watcher %s failed: %s", watcher.name, exc)
                failed.append(exc)
        if len(failed) == 1:
            raise failed[0]
        if failed:
            raise WatcherError("; ".join(str(exc) for exc in failed))

    def shut(self) -> None:
        """From now on nothing starts (a warmup pause in progress ends at once)."""
        self._shut = True
        self._shutting.set()

    def close(self) -> None:
        """Release every watcher's resources and close the sockets (after :meth:`stop_all`)."""
        for watcher in self.table.ordered():
            _close_watcher(watcher)
        self.sockets.close_all()

    def close_output(self) -> None:
        """Flush and stop the forwarding to circusd's stdio (last: the daemon's own final
        log lines go through it)."""
        if self.output.forwarder is not None:
            self.output.forwarder.close(timeout=1.0)


def _names(value: Any) -> tuple[str, ...]:
    try:
        return parse_names(value)
    except (TypeError, ValueError) as exc:
        raise MessageError(f"depends_on: {exc}") from None


def _route_output(hub: OutputHub, watcher: Any) -> None:
    """Forward to circusd's stdout/stderr the watcher's streams that have no stream class
    (upstream's children inherit circusd's stdio then)."""
    get = getattr(watcher, "get_opt", None)
    if not callable(get):
        return
    hub.route(watcher.name, get("stdout_stream") is None, get("stderr_stream") is None)


def _close_watcher(watcher: Any) -> None:
    close = getattr(watcher, "close", None)
    if callable(close):
        try:
            close()
        except Exception:  # pragma: no cover - closing is best effort at shutdown
            log.debug("closing watcher %s failed", watcher.name, exc_info=True)
