"""Start, stop, restart, scale, status and event payloads, with real processes."""

from __future__ import annotations

import os
from typing import Any

import psutil
import pytest
from circus.watcher import EVENTS, OptionError, Watcher

SLEEP = "sleep 300"


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_start_stop_events_and_payloads(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=3)
        info = await w.start()
        assert w.status() == "active"
        assert len(w.pids) == 3 and sorted(info["started"]) == sorted(w.pids)
        assert all(alive(pid) for pid in w.pids)
        assert recorder.names() == ["spawn"] * 3 + ["start"]
        pids = w.pids
        stopped = await w.stop()
        assert sorted(stopped) == sorted(pids)
        assert w.status() == "stopped" and w.pids == []
        assert not any(alive(pid) for pid in pids)
        names = recorder.names()[4:]
        assert names == ["kill"] * 3 + ["reap"] * 3 + ["stop"]
        for event, payload in recorder.events:
            assert tuple(payload) == EVENTS[event], event
        assert {p["exit_code"] for p in recorder.of("reap")} == {-15}
        assert {p["process_pid"] for p in recorder.of("kill")} == set(pids)

    run_async(main)


def test_wids_smallest_unused_and_reused(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=3, **{"flapping.active": False})
        await w.start()
        wids = {pid: proc.wid for pid, proc in w.processes.items()}
        assert sorted(wids.values()) == [1, 2, 3]
        victim = next(pid for pid, wid in wids.items() if wid == 2)
        os.kill(victim, 9)
        await recorder.until(lambda: recorder.count("spawn") == 4)
        assert sorted(p.wid for p in w.processes.values()) == [1, 2, 3]

    run_async(main)


def test_restart_replaces_every_process(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=2)
        await w.start()
        before = set(w.pids)
        info = await w.restart()
        assert set(info["stopped"]) == before
        assert set(info["started"]) == set(w.pids)
        assert not before & set(w.pids)

    run_async(main)


def test_incr_decr_set_numprocesses(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=1)
        await w.start()
        first = w.pids[0]
        assert await w.incr(2) == 3
        assert len(w.pids) == 3
        assert await w.decr() == 2
        assert len(w.pids) == 2
        assert first not in w.pids  # the oldest goes first
        assert await w.set_numprocesses(0) == 0
        assert w.pids == [] and w.status() == "active"
        assert await w.set_numprocesses(1) == 1
        assert len(w.pids) == 1
        with pytest.raises(OptionError, match="numprocesses"):
            await w.set_numprocesses(-1)

    run_async(main)


def test_decr_while_stopped_only_changes_the_target(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=3)
        assert await w.decr(5) == 0
        assert await w.incr() == 1
        assert w.pids == []

    run_async(main)


def test_singleton_ignores_incr(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, singleton=True)
        await w.start()
        assert await w.incr() == 1
        assert await w.decr() == 1
        assert len(w.pids) == 1
        with pytest.raises(OptionError, match="singleton"):
            await w.set_numprocesses(2)

    run_async(main)


def test_start_twice_and_stop_twice_are_harmless(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP)
        await w.start()
        pids = w.pids
        assert (await w.start())["kept"] == pids
        await w.stop()
        assert await w.stop() == []

    run_async(main)


def test_events_async_iterator(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("true", respawn=False)
        seen: list[str] = []

        async def consume() -> None:
            async for event, _payload in w.events():
                seen.append(event)
                if event == "stop":
                    return

        import asyncio

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0)
        await w.start()
        await asyncio.wait_for(task, 10)
        assert seen == ["spawn", "start", "reap", "stop"]

    run_async(main)


def test_respawn_after_crash(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=2)
        await w.start()
        victim = w.pids[0]
        os.kill(victim, 9)
        await recorder.until(lambda: recorder.count("spawn") == 3)
        assert victim not in w.pids and len(w.pids) == 2
        reap = recorder.of("reap")[0]
        assert reap["process_pid"] == victim and reap["exit_code"] == -9

    run_async(main)


def test_stats_and_info(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=2)
        await w.start()
        info = w.info()
        assert set(info) == set(w.pids)
        for pid, entry in info.items():
            assert entry["pid"] == pid
            assert entry["wid"] in (1, 2)
            assert entry["age"] >= 0
            assert "cpu" in entry and "mem" in entry
        one = w.process_info(w.pids[0])
        assert one["pid"] == w.pids[0]
        stats = await w.stats()
        assert set(stats) == set(w.pids)
        summary = w.summary()
        assert sorted(summary["pid"]) == sorted(w.pids)
        assert summary["age"] >= 0 and summary["cpu"] >= 0 and summary["mem"] >= 0

    run_async(main)


def test_no_loop_needed_to_build() -> None:
    w = Watcher("w", SLEEP)
    assert repr(w).startswith("<Watcher 'w' stopped")


def test_stop_interrupts_a_slow_start(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        import asyncio

        w = make(SLEEP, numprocesses=50, warmup_delay=0.1)
        starting = asyncio.ensure_future(w.start())
        await recorder.until(lambda: recorder.count("spawn") >= 2)
        await w.stop()
        await starting
        assert w.status() == "stopped" and w.pids == []
        assert recorder.count("spawn") < 10
        assert recorder.count("reap") == recorder.count("spawn")

    run_async(main)


def test_import_pulls_no_zmq_or_tornado() -> None:
    import subprocess
    import sys

    code = (
        "import sys, circus.watcher, circus.watcher._watcher; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('zmq', 'tornado')]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_idle_watcher_never_wakes_the_loop(make: Any, run_async: Any) -> None:
    async def main() -> None:
        import asyncio

        w = make(SLEEP, numprocesses=20)
        await w.start()
        loop = asyncio.get_running_loop()
        selector = loop._selector  # type: ignore[attr-defined]
        original = selector.select
        wakeups: list[float | None] = []

        def counting(timeout: float | None = None) -> Any:
            wakeups.append(timeout)
            return original(timeout)

        selector.select = counting
        try:
            await asyncio.sleep(1.0)
        finally:
            selector.select = original
        # The sleep itself needs one or two wake-ups; a tick or a poll loop would need many.
        assert len(wakeups) <= 3, wakeups

    run_async(main)


def test_start_spawns_a_fixed_count_even_if_processes_die_at_once(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        w = make("true", numprocesses=3, warmup_delay=0.1, respawn=False)
        await w.start()
        await recorder.until(w.is_stopped)
        assert recorder.count("spawn") == 3

    run_async(main)
