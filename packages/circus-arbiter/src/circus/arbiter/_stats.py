"""The stats channel, produced in-process (spec/protocol.md §3).

Upstream runs a separate ``circusd-stats`` process; we publish the same topics from circusd
itself, every ``interval`` seconds (1.0 by default, as upstream), and only while a stats
endpoint is configured — no timer exists otherwise. Ticks follow a fixed grid (a round's cost
does not push the next one back) and psutil sampling runs in a worker thread, so neither the
cadence nor the control channel waits for it. ``stat.sockets.<fd>`` reports ``reads = 0``: we
do not poll listening sockets (upstream's 10 ms poller was a known CPU sink, issue #853).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import zmq
from circus.ctl.protocol import stat_topic

from ._procinfo import process_info, watcher_processes
from ._publisher import Publisher

if TYPE_CHECKING:
    from ._sockets import SocketSet

__all__ = ["StatsPublisher", "collect", "next_due", "snapshot"]

log = logging.getLogger("circus.arbiter")


def _aggregate(infos: list[dict[str, Any]]) -> dict[str, Any]:
    pids = [i["pid"] for i in infos]
    cpus = [i.get("cpu") for i in infos]
    mems = [i.get("mem") for i in infos]
    ages = [i.get("age") for i in infos]

    def numeric(values: list[Any]) -> list[float] | None:
        if any(not isinstance(v, int | float) for v in values):
            return None
        return [float(v) for v in values]

    cpu = numeric(cpus)
    mem = numeric(mems)
    age = numeric(ages)
    return {
        "pid": pids,
        "cpu": (sum(cpu) / len(cpu) if cpu else 0.0) if cpu is not None else "N/A",
        "mem": (sum(mem) if mem else 0.0) if mem is not None else "N/A",
        "age": (max(age) if age else 0.0) if age is not None else "N/A",
    }


Snapshot = tuple[
    list[tuple[str, list[tuple[int, float | None]]]], list[dict[str, Any]], float | None
]


def snapshot(watchers: Iterable[Any], sockets: SocketSet, started_at: float | None) -> Snapshot:
    """What to measure, read on the loop thread (the watcher tables are not thread-safe):
    the processes of ``watchers``, the ``sockets`` and circusd's own start time."""
    processes = [
        (
            w.name.lower(),
            [(p.pid, getattr(p, "started", None)) for p in watcher_processes(w) if p.pid],
        )
        for w in watchers
    ]
    return processes, sockets.listing(), started_at


def collect(snap: Snapshot) -> list[tuple[str, dict[str, Any]]]:
    """Every ``(topic, payload)`` of one stats round (blocking: psutil calls)."""
    watchers, sockets, started_at = snap
    messages: list[tuple[str, dict[str, Any]]] = []
    for name, procs in watchers:
        infos = []
        for pid, started in procs:
            info = process_info(pid, started=started)
            if not isinstance(info, dict):
                continue
            info.pop("started", None)
            info.update(subtopic=pid, name=None)
            messages.append((stat_topic(name, pid), info))
            infos.append(info)
        messages.append((stat_topic(name), _aggregate(infos)))
    me = process_info(os.getpid(), started=started_at)
    if isinstance(me, dict):
        me.pop("started", None)
        me.update(subtopic=me["pid"], name="circusd")
        messages.append((stat_topic("circus", me["pid"]), me))
        messages.append((stat_topic("circus"), _aggregate([me])))
    addresses = []
    for entry in sockets:
        address = entry.get("path") or f"{entry.get('host')}:{entry.get('port')}"
        addresses.append(address)
        messages.append(
            (
                stat_topic("sockets", entry["fd"]),
                {"fd": entry["fd"], "subtopic": entry["fd"], "reads": 0, "address": address},
            )
        )
    messages.append((stat_topic("sockets"), {"addresses": addresses, "reads": 0}))
    return messages


def next_due(previous: float, interval: float, now: float) -> float:
    """When the tick after the one due at ``previous`` is due: ``previous + interval``.

    A tick already late by less than an interval is due now (the rate holds: a late tick
    shortens the wait for the next); ticks missed by more than that are dropped, never fired
    in a burst.
    """
    due = previous + interval
    if now - due >= interval:
        due += ((now - due) // interval) * interval
    return due


class StatsPublisher:
    """Publishes :func:`collect` on its own PUB socket every ``interval`` seconds.

    Args:
        context: the ZeroMQ context to make the socket in.
        endpoint: where to bind (an ipc file is made 0600, chowned to ``owner``).
        interval: seconds between two rounds.
        owner: ``endpoint_owner``.
        source: returns the :func:`snapshot` of a round (called on the loop).

    Raises (constructor):
        ArbiterError: the endpoint cannot be bound.
    """

    def __init__(
        self,
        context: zmq.Context[Any],
        endpoint: str,
        interval: float,
        owner: str | None,
        source: Callable[[], Snapshot],
    ) -> None:
        self.interval = interval
        self._source = source
        self._pub = Publisher(context, endpoint, owner)
        self._task: asyncio.Task[None] | None = None

    @property
    def endpoint(self) -> str:
        """Where the stats are published."""
        return self._pub.endpoint

    @property
    def bound(self) -> bool:
        """The socket is open."""
        return self._pub.bound

    def release(self) -> None:
        """Stop listening on :attr:`endpoint` (see ``Publisher.release``)."""
        self._pub.release()

    def bind_again(self, owner: str | None = None) -> None:
        """Listen on :attr:`endpoint` again (see ``Publisher.bind_again``)."""
        self._pub.bind_again(owner)

    def start(self) -> None:
        """Start the timer on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            # Ticks are due every interval from the start, not an interval after the last
            # round ended: a round's cost (or a loaded host) must not stretch the cadence.
            due = next_due(due, self.interval, loop.time())
            await asyncio.sleep(max(0.0, due - loop.time()))
            if not self._pub.anyone_under(b"stat."):
                continue  # nobody listens: no psutil work
            try:
                messages = await asyncio.to_thread(collect, self._source())
            except Exception:  # a vanished process must not end the stats stream
                log.debug("stats round failed", exc_info=True)
                continue
            for topic, payload in messages:
                self._pub.publish(topic, payload)

    def close(self) -> None:
        """Stop the timer and close the socket."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._pub.close()
