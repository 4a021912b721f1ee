"""The dashboard with many processes: ``stats`` within a budget, tables only when changed.

The daemon is :class:`circus.ctl.testing.FakeDaemon` (a real ROUTER) and a real PUB; its
``stats`` answer is made slow on purpose (what 10,000 processes cost a real circusd), and the
figures of bench/bench_dashboard.py come from a real circusd in Chromium.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="the dashboard needs the web extra")

from circus.ctl.testing import FakeDaemon, Publisher  # noqa: E402
from circus.ctl.web._link import DaemonLink  # noqa: E402
from circus.ctl.web._state import DaemonState  # noqa: E402
from circus.process.testing import async_wait_until  # noqa: E402

INFO = {"cpu": 1.5, "mem": 0.1, "mem_info1": "4.00M", "age": 2.0, "cmdline": "sleep"}
STATS_WORK = 0.3  # seconds the fake daemon spends on each stats answer


def replies(pubsub: str, pids: list[int]) -> dict[str, Any]:
    def stats(request: dict[str, Any]) -> dict[str, Any]:
        time.sleep(STATS_WORK)  # the daemon's /proc reads for thousands of processes
        return {"infos": {"web": {str(pid): {**INFO, "pid": pid} for pid in pids}}}

    return {
        "status": {"statuses": {"web": "active"}},
        "stats": stats,
        "dstats": {"info": {**INFO, "pid": 999}},
        "globaloptions": {"options": {"pubsub_endpoint": pubsub, "endpoint": "x"}},
        "logs": {"logs": []},
    }


def run_link(tmp_path: Path, scenario: Any, pids: list[int]) -> None:
    """Run ``scenario(link, daemon, publisher, snapshots)`` with a link polling every 50 ms."""

    async def main() -> None:
        endpoint, pubsub = f"ipc://{tmp_path}/ctrl.sock", f"ipc://{tmp_path}/pub.sock"
        snapshots: list[dict[str, Any]] = []

        def publish(message: dict[str, Any]) -> None:
            if message["type"] == "snapshot" and message["connected"]:
                snapshots.append(message)

        with Publisher(pubsub) as publisher, FakeDaemon(endpoint, replies(pubsub, pids)) as fake:
            link = DaemonLink(0, endpoint, publish, interval=0.05, timeout=5.0)
            task = asyncio.get_running_loop().create_task(link.run())
            try:
                await asyncio.wait_for(scenario(link, fake, publisher, snapshots), 60)
            finally:
                link.close()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def web(snapshot: dict[str, Any]) -> dict[str, Any]:
    (watcher,) = snapshot["watchers"]
    return watcher


def test_a_slow_stats_is_asked_within_its_budget_while_status_keeps_the_page_live(
    tmp_path: Path,
) -> None:
    async def scenario(link: DaemonLink, fake: FakeDaemon, pub: Any, snaps: list[Any]) -> None:
        await async_wait_until(lambda: len(snaps) >= 20, 30, "20 snapshots")
        # 0.3 s per answer at 2 % of a core: the next stats is due 15 s after the first
        assert fake.commands().count("stats") == 1, fake.commands()
        assert fake.commands().count("status") >= 20
        # the first snapshot has the table; the next ones do not send it again
        assert web(snaps[0])["numprocesses"] == 2 and len(web(snaps[0])["processes"]) == 2
        assert all(web(s)["processes"] is None for s in snaps[1:])
        assert all(web(s)["numprocesses"] == 2 for s in snaps)

    run_link(tmp_path, scenario, [1001, 1002])


def test_spawn_and_reap_events_keep_the_process_table_between_stats(tmp_path: Path) -> None:
    async def scenario(link: DaemonLink, fake: FakeDaemon, pub: Any, snaps: list[Any]) -> None:
        await async_wait_until(lambda: snaps, 30, "the first snapshot")

        async def shown(count: int, event: str, pid: int) -> dict[str, Any]:
            start = len(snaps)

            # Published until seen: the dashboard's SUB may not be connected yet.
            async def seen() -> dict[str, Any] | None:
                pub.publish(f"watcher.web.{event}", {"process_pid": pid, "time": time.time()})
                await asyncio.sleep(0.05)
                return next((s for s in snaps[start:] if web(s)["numprocesses"] == count), None)

            return await async_wait_until(seen, 30, f"{count} processes after {event} {pid}")

        grown = await shown(3, "spawn", 1003)
        assert [p["pid"] for p in web(grown)["processes"]] == [1001, 1002, 1003]
        after = snaps.index(grown) + 1
        await async_wait_until(lambda: len(snaps) > after, 30, "one more snapshot")
        assert web(snaps[after])["processes"] is None  # unchanged since
        shrunk = await shown(2, "reap", 1001)
        assert [p["pid"] for p in web(shrunk)["processes"]] == [1002, 1003]
        assert fake.commands().count("stats") == 1, fake.commands()

    run_link(tmp_path, scenario, [1001, 1002])


def test_fold_without_stats_keeps_the_tables_and_takes_readiness() -> None:
    state = DaemonState(0, "ipc://x")
    infos = {"web": {"11": {**INFO, "pid": 11}, "12": {**INFO, "pid": 12}}}
    state.fold({"statuses": {"web": "active"}}, {"infos": infos})
    sent = state.versions()
    state.fold({"statuses": {"web": "stopping"}}, None)
    (watcher,) = state.to_json(sent)["watchers"]
    assert (watcher["status"], watcher["numprocesses"], watcher["processes"]) == (
        "stopping",
        2,
        None,
    )
    health = {"web": {"11": {"health": "ready", "status_text": "up"}}}
    state.fold({"statuses": {"web": "active"}, "health": health}, None)
    (watcher,) = state.to_json(sent)["watchers"]
    assert watcher["processes"][0]["health"] == "ready"  # changed: the table is sent
    assert state.to_json()["watchers"][0]["processes"] is not None  # full for a new page
    # a stats answer without readiness keeps what the status said
    state.fold_stats({"infos": infos})
    assert state.watchers["web"].processes[11].health == "ready"


def test_a_poll_answered_while_the_link_closes_opens_no_socket_after_close(
    tmp_path: Path,
) -> None:
    # A poll's answer can arrive as close() runs (asyncio.wait_for on 3.11 may return it
    # instead of the cancellation); what the poll does next must not open a socket on the
    # shared context, or the dashboard's context.term() at shutdown waits for it forever.
    import threading

    import zmq.asyncio

    async def main() -> None:
        endpoint, pubsub = f"ipc://{tmp_path}/ctrl.sock", f"ipc://{tmp_path}/pub.sock"
        context = zmq.asyncio.Context()
        with Publisher(pubsub), FakeDaemon(endpoint, replies(pubsub, [11, 12])):
            link = DaemonLink(0, endpoint, lambda message: None, timeout=5.0, context=context)
            await link.poll_once()  # connected: the next polls ask stats in the background
            link.close()
            await link.poll_once()
            await asyncio.sleep(0)
            with pytest.raises(Exception, match="not reachable|disconnected|closed"):
                await link.call("status")
        ended = threading.Event()
        threading.Thread(target=lambda: (context.term(), ended.set()), daemon=True).start()
        assert ended.wait(10), "a socket opened after close() keeps the context from ending"

    asyncio.run(main())
