"""DaemonLink: the dashboard's connection to one circusd, like any other client.

It polls ``status`` and ``dstats`` over the control channel every ``interval`` seconds (on a
fixed grid: a slow answer does not push the next poll back) into a :class:`DaemonState`,
follows the pub/sub channel (``watcher.*`` events and our ``output.*`` lines), and hands every
resulting message to ``publish``. A daemon that stops answering is marked disconnected;
polling goes on, so it is picked up again when it returns.

The per-process figures (``stats``) cost the daemon a few /proc reads per process: with
thousands of processes an answer takes the daemon a good part of a second. So ``stats`` is
asked on its own connection, in the background, and again only once its last answer's time
divided by :data:`STATS_BUDGET` has passed (at least ``interval``): being watched costs the
daemon at most that share of a core. Between two answers the process tables follow the
``spawn`` and ``reap`` events, and a snapshot carries a process table only when it changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import zmq.asyncio

from .. import protocol
from .._aclient import AsyncCircusClient
from .._consumer import AsyncCircusConsumer
from ..errors import CallError, CtlError
from ..keys import ClientCurve
from ._state import DaemonState
from .errors import DaemonDisconnected

__all__ = ["ACTIONS", "READ_COMMANDS", "DaemonLink"]

log = logging.getLogger("circus.ctl.web")

ACTIONS = frozenset({"start", "stop", "restart", "reload", "incr", "decr", "signal", "kill"})
"""Commands the dashboard relays that change the daemon."""

READ_COMMANDS = frozenset(
    {"list", "status", "stats", "dstats", "options", "numprocesses", "numwatchers"}
    | {"globaloptions", "listsockets", "logs"}
)
"""Read-only commands the dashboard relays."""

OUTPUT_FLUSH_DELAY = 0.1
"""Seconds output lines are gathered before they are sent to the pages as one message."""

OUTPUT_BATCH_MAX = 500
"""Most output lines sent per batch; older ones in a burst are counted as ``dropped``."""

STATS_BUDGET = 0.02
"""Share of one core the ``stats`` polls may take from the daemon (its answer time is the
measure): 1,000 processes (about 0.1 s an answer) are sampled every 5 s or so, 10,000 (about
1 s an answer on a busy 2-core box) about once a minute."""

DEPENDS_PER_POLL = 20
"""Most watchers whose ``depends_on`` one poll asks for (a ``get`` each): a watcher's is
asked once, then again after its ``updated`` event (``set``) or a reconnection."""

STATS_TIMEOUT = 60.0
"""Seconds a ``stats`` answer may take (thousands of processes on a busy host)."""

# Actions that wait for completion when asked with ``waiting``, so the answer confirms them.
_WAITING = frozenset({"start", "stop", "restart", "reload", "incr", "decr"})

Publish = Callable[[dict[str, Any]], None]


class DaemonLink:
    """Follow one daemon at ``endpoint`` and publish what happens there.

    ``pubsub_endpoint`` defaults to what the daemon's ``globaloptions`` reports.
    ``publish`` receives plain JSON-able dicts: ``snapshot`` (see
    :meth:`DaemonState.to_json`), ``event`` and ``outputs`` (a batch of output lines, one
    per line, with a count of lines ``dropped``: cut from a burst, or dropped by circusd
    while this link fell behind) messages, each with the daemon's ``index``.
    :meth:`run` polls until :meth:`close`; :meth:`call` relays one command. ``curve`` makes
    every socket of the link (polls, actions, pub/sub) a CURVE client of the daemon.
    """

    def __init__(
        self,
        index: int,
        endpoint: str,
        publish: Publish,
        *,
        pubsub_endpoint: str | None = None,
        interval: float = 1.0,
        timeout: float = 2.0,
        action_timeout: float = 60.0,
        log_lines: int = 500,
        context: zmq.asyncio.Context | None = None,
        curve: ClientCurve | None = None,
    ) -> None:
        self.state = DaemonState(index, endpoint)
        self.curve = curve
        self.index = index
        self.endpoint = endpoint
        self.interval = interval
        self.timeout = timeout
        self.action_timeout = action_timeout
        self.logs: deque[dict[str, Any]] = deque(maxlen=log_lines)
        self.events: deque[dict[str, Any]] = deque(maxlen=100)
        self._publish = publish
        self._fixed_pubsub = pubsub_endpoint
        self._own_context = context is None
        self._context = zmq.asyncio.Context() if context is None else context
        self._poller: AsyncCircusClient | None = None
        self._actor: AsyncCircusClient | None = None
        self._consumer_task: asyncio.Task[None] | None = None
        self._consumer: AsyncCircusConsumer | None = None
        self._consumer_endpoint: str | None = None
        self._killed: deque[int] = deque(maxlen=1000)
        self._closed = asyncio.Event()
        self._pending_output: list[dict[str, Any]] = []
        self._gaps = protocol.OutputGaps()
        self._missed = 0  # lines circusd dropped for us since the last batch
        self._flush_handle: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stats_client: AsyncCircusClient | None = None
        self._stats_task: asyncio.Task[None] | None = None
        self._stats_due = 0.0  # loop time from which stats may be asked again
        self._sent: dict[str, int] = {}  # process-table versions the pages have

    # ----------------------------------------------------------------- public

    async def run(self) -> None:
        """Poll every ``interval`` seconds until :meth:`close` is called."""
        loop = asyncio.get_running_loop()
        tick = loop.time()
        while not self._closed.is_set():
            await self.poll_once()
            tick = max(tick + self.interval, loop.time())  # behind: no burst to catch up
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), tick - loop.time())

    async def poll_once(self) -> None:
        """Refresh the snapshot once and publish it (or publish that the daemon is gone).

        ``stats`` is awaited here only on the first poll after (re)connecting; later ones
        ask it in the background when it is due (see :data:`STATS_BUDGET`).
        """
        was_connected = self.state.connected
        stats: Mapping[str, Any] | None = None
        try:
            client = self._poll_client()
            status = await client.call("status")
            if not was_connected:
                loop = asyncio.get_running_loop()
                began = loop.time()
                stats = await self._stats_client_().call("stats")
                self._stats_due = loop.time() + self._stats_pause(loop.time() - began)
            else:
                self._maybe_poll_stats()
            try:
                dstats: Mapping[str, Any] | None = await client.call("dstats")
            except CallError:
                dstats = None
            if not was_connected:
                await self._on_connect(client)
        except CallError as exc:
            self._lost(f"error answer: {exc.reason}")
            return
        except CtlError as exc:
            self._lost(str(exc))
            return
        except RuntimeError:
            # close() shut the client while a call was answered: on Python 3.11 wait_for
            # can return that answer instead of the cancellation, and the next call then
            # finds the client closed.
            if self._closed.is_set():
                return
            raise
        self.state.fold(status, stats, dstats)
        await self._ask_depends_on(client)
        self._publish_snapshot()

    async def call(self, command: str, properties: Mapping[str, Any] | None = None) -> Any:
        """Relay one command and return the daemon's whole answer.

        Only :data:`ACTIONS` and :data:`READ_COMMANDS` are relayed; actions that support it
        are sent with ``waiting: true`` so the answer confirms they are done.

        Raises:
            CallError: the daemon answered with an error (its reason is kept).
            DaemonDisconnected: the daemon is not reachable right now.
            ValueError: the command is not one the dashboard relays.
        """
        command = str(command).lower()
        if command not in ACTIONS and command not in READ_COMMANDS:
            raise ValueError(f"the dashboard does not relay {command!r}")
        props = dict(properties or {})
        if command in _WAITING:
            props.setdefault("waiting", True)
        if not self.state.connected or self._closed.is_set():
            raise DaemonDisconnected(self.endpoint, self.state.error or "")
        if self._actor is None:
            self._actor = AsyncCircusClient(
                self.endpoint, self.action_timeout, context=self._context, curve_key=self.curve
            )
        try:
            answer = await self._actor.call(command, props)
        except CallError:
            raise
        except CtlError as exc:
            if self._actor is not None:
                self._actor.close()
                self._actor = None
            raise DaemonDisconnected(self.endpoint, str(exc)) from None
        if command in ACTIONS:
            # Show the effect at once rather than at the next tick.
            task = asyncio.get_running_loop().create_task(self.poll_once())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return answer

    def close(self) -> None:
        """Stop polling and following; close every socket this link opened."""
        self._closed.set()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        for task in self._tasks:
            task.cancel()
        if self._stats_task is not None:
            self._stats_task.cancel()
        self._stop_consumer()
        self._drop_clients()
        if self._own_context and not self._context.closed:
            self._context.term()

    # ----------------------------------------------------------------- internals

    def _poll_client(self) -> AsyncCircusClient:
        self._refuse_if_closed()
        if self._poller is None:
            self._poller = AsyncCircusClient(
                self.endpoint, self.timeout, context=self._context, curve_key=self.curve
            )
        return self._poller

    def _stats_client_(self) -> AsyncCircusClient:
        self._refuse_if_closed()
        if self._stats_client is None:
            self._stats_client = AsyncCircusClient(
                self.endpoint,
                max(self.timeout, STATS_TIMEOUT),
                context=self._context,
                curve_key=self.curve,
            )
        return self._stats_client

    def _stats_pause(self, took: float) -> float:
        """Seconds until the next ``stats``, after one that took ``took`` seconds."""
        return max(self.interval, took / STATS_BUDGET)

    def _refuse_if_closed(self) -> None:
        # A poll that was answered while close() ran (see poll_once) must not open a socket
        # after close(): the context's term() would wait for it forever.
        if self._closed.is_set():
            raise RuntimeError("the link is closed")

    def _maybe_poll_stats(self) -> None:
        loop = asyncio.get_running_loop()
        if self._closed.is_set():
            return
        if self._stats_task is None and loop.time() >= self._stats_due:
            self._stats_task = loop.create_task(self._poll_stats())

    async def _poll_stats(self) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        try:
            stats = await self._stats_client_().call("stats")
        except RuntimeError:
            if not self._closed.is_set():
                raise
            stats = None
        except CtlError:
            # Not answered (a poll of status notices a daemon that is gone): a fresh
            # connection next time, after a pause as long as the budget asks for.
            if self._stats_client is not None:
                self._stats_client.close()
                self._stats_client = None
            stats = None
        finally:
            self._stats_due = loop.time() + self._stats_pause(loop.time() - began)
            self._stats_task = None
        if stats is not None and self.state.connected and not self._closed.is_set():
            self.state.fold_stats(stats)
            self._publish_snapshot()

    def _publish_snapshot(self) -> None:
        self._publish(self.state.to_json(self._sent))
        self._sent = self.state.versions()

    def _drop_clients(self) -> None:
        self._drop_poller()
        if self._actor is not None:
            self._actor.close()
            self._actor = None
        if self._stats_client is not None:
            self._stats_client.close()
            self._stats_client = None

    def _drop_poller(self) -> None:
        # A fresh DEALER after a failure: polls queued for a dead peer must not pile up and
        # be delivered all at once when it comes back.
        if self._poller is not None:
            self._poller.close()
            self._poller = None

    def _lost(self, reason: str) -> None:
        # The action client is left alone: an action in flight gets its own answer or
        # timeout. New actions are refused while the daemon shows as disconnected.
        self._drop_poller()
        changed = self.state.connected or self.state.error != reason
        self.state.connected = False
        self.state.error = reason
        if changed:
            self._publish(self.state.to_json())

    async def _ask_depends_on(self, client: AsyncCircusClient) -> None:
        """Fill in the ``depends_on`` of the watchers whose is not known (new, changed)."""
        unknown = [w for w in self.state.watchers.values() if w.depends_on is None]
        for watcher in unknown[:DEPENDS_PER_POLL]:
            try:
                answer = await client.call("get", name=watcher.name, keys=["depends_on"])
            except CallError:  # Circus 0.19 has no depends_on; or the watcher just went
                watcher.depends_on = []
                continue
            except CtlError:  # no answer: asked again at the next poll
                return
            deps = (answer.get("options") or {}).get("depends_on")
            watcher.depends_on = [str(d) for d in deps] if isinstance(deps, list) else []

    async def _on_connect(self, client: AsyncCircusClient) -> None:
        for watcher in self.state.watchers.values():  # a new daemon, or one re-exec'd
            watcher.depends_on = None
        pubsub = self._fixed_pubsub
        if pubsub is None:
            try:
                answer = await client.call("globaloptions")
                pubsub = (answer.get("options") or {}).get("pubsub_endpoint")
            except CallError:
                pubsub = None
        self.state.pubsub_endpoint = pubsub
        if pubsub and pubsub != self._consumer_endpoint:
            self._stop_consumer()
            self._start_consumer(pubsub)
        try:
            answer = await client.call("logs", lines=100)
        except CallError:  # upstream daemons have no ``logs`` command
            return
        entries = answer.get("logs") or []
        known = {(e.get("pid"), e.get("time"), e.get("data")) for e in self.logs}
        for entry in entries:
            if isinstance(entry, Mapping):
                message = self._output_message(entry)
                if (message["pid"], message["time"], message["data"]) not in known:
                    self.logs.append(message)

    def _start_consumer(self, endpoint: str) -> None:
        consumer = AsyncCircusConsumer(
            ["watcher.", "output."], endpoint, context=self._context, curve_key=self.curve
        )
        self._consumer = consumer
        self._consumer_endpoint = endpoint
        self._consumer_task = asyncio.get_running_loop().create_task(self._follow(consumer))

    def _stop_consumer(self) -> None:
        if self._consumer_task is not None:
            self._consumer_task.cancel()
            self._consumer_task = None
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._consumer_endpoint = None

    async def _follow(self, consumer: AsyncCircusConsumer) -> None:
        try:
            async for topic, payload in consumer:
                try:
                    self._dispatch(topic, payload)
                except Exception:  # one odd message must not end the subscription
                    log.exception("dropping pub/sub message %r", topic)
        finally:
            consumer.close()

    def _dispatch(self, topic: str, payload: Mapping[str, Any]) -> None:
        if topic.startswith("output."):
            # A message holds one or more lines; the pages get one entry per line, and the
            # lines circusd dropped while this link fell behind are counted as skipped.
            self._missed += self._gaps.feed(topic, payload)
            for line in protocol.split_output(payload):
                message = self._output_message(line)
                self.logs.append(message)
                self._queue_output(message)
            return
        watcher, event = protocol.parse_event_topic(topic)
        pid = payload.get("process_pid")
        if event == "kill" and isinstance(pid, int):
            self._killed.append(pid)
        elif event == "reap" and isinstance(pid, int):
            self.state.process_gone(watcher, pid)
            if pid in self._killed:
                self._killed.remove(pid)
            else:  # it died on its own: circus respawns it
                self.state.count_restart(watcher)
        elif event == "spawn" and isinstance(pid, int):
            self.state.process_started(watcher, pid, payload.get("time"))
        elif event == "updated" and watcher in self.state.watchers:
            self.state.watchers[watcher].depends_on = None  # a ``set``: asked again
        message = {
            "type": "event",
            "daemon": self.index,
            "topic": topic,
            "watcher": watcher,
            "event": event,
            "payload": dict(payload),
        }
        self.events.append(message)
        self._publish(message)

    def _queue_output(self, message: dict[str, Any]) -> None:
        # Output is sent in batches, a few per second: a child printing thousands of lines a
        # second must not flood the pages with one websocket message per line.
        self._pending_output.append(message)
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(OUTPUT_FLUSH_DELAY, self._flush_output)

    def _flush_output(self) -> None:
        self._flush_handle = None
        pending, self._pending_output = self._pending_output, []
        missed, self._missed = self._missed, 0
        lines = pending[-OUTPUT_BATCH_MAX:]
        self._publish(
            {
                "type": "outputs",
                "daemon": self.index,
                "lines": lines,
                "dropped": len(pending) - len(lines) + missed,
            }
        )

    def _output_message(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "type": "output",
            "daemon": self.index,
            "watcher": str(payload.get("watcher", "")),
            "pid": payload.get("pid"),
            "stream": str(payload.get("stream", "stdout")),
            "time": payload.get("time"),
            "data": str(payload.get("data", "")),
        }
