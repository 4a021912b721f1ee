"""The watcher set: the daemon's watchers, each changed under its own lock.

Built on :class:`~._registry.WatcherTable` (names, order, locks). A watcher that joins is
wired to the sockets it may use (:class:`~._sockets.SocketSet`), to the output hub (its lines
published and kept for ``logs``, streams without a class forwarded to circusd's stdio) and to
the events channel (through the ``publish`` callable given here; a reaped worker also makes
the set look for orphans it left). Starts go in priority order, ``warmup_delay`` apart, one
watcher's failure never keeping the others down; stops run all at once. Once
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

from ._errors import ConflictError
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
        self.sockets = SocketSet(sockets)
        self.output = OutputHub(publish, keep=output_lines, wanted=wanted)
        self.warmup_delay = warmup_delay
        self._publish = publish
        self._owner = owner
        self._shut = False
        self._shutting = asyncio.Event()  # cuts a warmup pause short
        self._orphan_check = False  # a reap_adopted is scheduled

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
        """``{watcher name: status}`` for every watcher."""
        return {w.name: w.status() for w in self.table.ordered()}

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

        def on_event(event: str, payload: Mapping[str, Any]) -> None:
            self._publish(event_topic(name, event), payload)
            if event == "updated":  # a `set` may have given a stream a class, or taken it
                _route_output(self.output, watcher)
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
        """:meth:`register` a watcher object, or one made from a dict of its arguments."""
        self.register(make_watcher(spec) if isinstance(spec, Mapping) else spec)

    def _reap_adopted(self) -> None:
        self._orphan_check = False
        reap_adopted()

    def create(self, name: str, cmd: str, **options: Any) -> Any:
        """Create and register a stopped watcher; publishes ``add``.

        Raises:
            ConflictError: a watcher with that name exists (``'<name>' already exist``).
            MessageError: an option is invalid (the watcher layer's message), or the name
                is longer than a command may name a watcher by (256 characters).
        """
        from ._patterns import check_pattern

        check_pattern(name)
        if name in self.table:
            raise ConflictError(f"'{name}' already exist")
        watcher = make_watcher({"name": name, "cmd": cmd, **options})
        self.register(watcher)
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
        """Start one watcher under its lock; the watcher's ``{"started", "kept"}`` (``None``
        once shut, or when it was removed meanwhile)."""
        async with self.table.locked(watcher):
            if self._shut or watcher.name not in self.table:
                return None
            return await watcher.start()

    async def stop(self, watcher: Any) -> None:
        """Stop one watcher under its lock."""
        # A start holding the lock may be retrying a spawn forever (max_retry = -1): tell it
        # to give up now, or this stop (and a quit) would wait behind it for good.
        interrupt = getattr(watcher, "interrupt", None)
        if interrupt is not None:
            interrupt()
        async with self.table.locked(watcher):
            await watcher.stop()

    async def restart(self, watcher: Any) -> Any:
        """Restart one watcher under its lock; ``{"stopped", "started", "kept"}``."""
        async with self.table.locked(watcher):
            if self._shut:
                return None
            return await watcher.restart()

    async def reload(self, watcher: Any, graceful: bool = True, sequential: bool = False) -> Any:
        """Reload one watcher under its lock (a stopped watcher is started, as upstream)."""
        async with self.table.locked(watcher):
            if self._shut:
                return None
            return await watcher.reload(graceful=graceful, sequential=sequential)

    # ------------------------------------------------------------------ all of them

    async def start_all(self, only_autostart: bool = True) -> None:
        """Start watchers in priority order, ``warmup_delay`` apart."""
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

    async def _pause(self, seconds: float) -> bool:
        # A warmup pause that a quit cuts short: False when it was.
        try:
            await asyncio.wait_for(self._shutting.wait(), float(seconds))
        except TimeoutError:
            pass
        return not self._shut

    async def stop_all(self) -> None:
        """Stop every watcher concurrently (each under its own lock)."""
        watchers = self.table.ordered(reverse=True)
        await asyncio.gather(*(self.stop(w) for w in watchers), return_exceptions=True)

    async def reload_all(self, graceful: bool = True, sequential: bool = False) -> None:
        """Reload every watcher in priority order."""
        for watcher in self.table.ordered():
            await self.reload(watcher, graceful=graceful, sequential=sequential)

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
