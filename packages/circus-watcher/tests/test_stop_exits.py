"""The exit path during a stop: children dying on their own, SIGKILLed from outside, a
respawn racing the stop, and the order of the events each process gets."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil

SLEEP = "sleep 300"


def _one_deaf_to_term(tmp_path: Path) -> str:
    """A command whose first copy ignores SIGTERM (its pid in ``deaf``); every copy touches
    ``ready.<pid>`` once set up."""
    script = tmp_path / "deaf.py"
    script.write_text(
        "import os, pathlib, signal, time\n"
        f"d = pathlib.Path({str(tmp_path)!r})\n"
        "try:\n"
        "    os.close(os.open(d / 'deaf.lock', os.O_CREAT | os.O_EXCL | os.O_WRONLY))\n"
        "except FileExistsError:\n"
        "    pass\n"
        "else:\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    (d / 'deaf.tmp').write_text(str(os.getpid()))\n"
        "    os.rename(d / 'deaf.tmp', d / 'deaf')\n"
        "(d / f'ready.{os.getpid()}').touch()\n"
        "time.sleep(300)\n"
    )
    return f"{sys.executable} {script}"


def _per_pid(events: list[tuple[str, dict[str, Any]]], pid: int) -> list[str]:
    return [name for name, payload in events if payload.get("process_pid") == pid]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _reaped(pid: int) -> bool:
    """The pid is gone from the process table (reaped, not a zombie)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_sigkill_from_outside_ends_a_stop_waiting_on_its_graceful_timeout(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    """One process ends at SIGTERM, one ignores it: the stop waits for the second (not
    killed early), SIGKILLed from outside it ends the stop long before the timeout; one
    kill and one reap each, with the exit each had."""

    async def main() -> None:
        w = make(_one_deaf_to_term(tmp_path), numprocesses=2, graceful_timeout=120)
        await w.start()
        pids = w.pids
        await recorder.until(
            lambda: (
                all((tmp_path / f"ready.{pid}").exists() for pid in pids)
                and (tmp_path / "deaf").exists()
            )
        )
        deaf = int((tmp_path / "deaf").read_text())
        (quick,) = set(pids) - {deaf}
        stop = asyncio.ensure_future(w.stop())
        try:
            await recorder.until(lambda: _reaped(quick))
            assert not stop.done()
            assert not _gone(deaf), "the process deaf to SIGTERM was ended early"
            assert set(w.ending) == {deaf, quick}
        finally:
            os.kill(deaf, signal.SIGKILL)  # from outside, while its watcher stops
        stopped = await asyncio.wait_for(stop, 30)
        assert sorted(stopped) == sorted([deaf, quick])
        reaps = {p["process_pid"]: p["exit_code"] for p in recorder.of("reap")}
        assert reaps == {quick: -15, deaf: -9}
        for pid in (quick, deaf):
            assert _per_pid(recorder.events, pid)[-2:] == ["kill", "reap"]
            assert _per_pid(recorder.events, pid).count("kill") == 1
        assert recorder.names()[-1] == "stop"
        assert w.ending == {} and w.pids == [] and w._procs.idle

    run_async(main)


def test_a_process_dying_before_its_stop_signal_gets_no_kill_event(
    make: Any, recorder: Any, run_async: Any
) -> None:
    """A signal hook (run in a thread: the loop turns meanwhile) kills the next process of
    the stop: that one is reaped once, with its own exit, and never reported as signalled."""

    async def main() -> None:
        order: list[int] = []
        seen = threading.Event()

        def hook(pid: int, **_: Any) -> bool:
            if len(order) == 3 and pid == order[0]:
                os.kill(order[1], signal.SIGKILL)
                # the loop reaps it meanwhile (this hook runs in a thread): wait, bounded
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not _reaped(order[1]):
                    seen.wait(0.01)
            return True

        w = make(SLEEP, numprocesses=3, hooks={"before_signal": hook})
        await w.start()
        first, second, third = order[:] = w.pids
        await w.stop()
        assert _per_pid(recorder.events, second)[-1:] == ["reap"]
        assert "kill" not in _per_pid(recorder.events, second)[1:], recorder.events
        reaps = {p["process_pid"]: p["exit_code"] for p in recorder.of("reap")}
        assert reaps == {first: -15, second: -9, third: -15}
        for pid in (first, third):
            assert _per_pid(recorder.events, pid)[-2:] == ["kill", "reap"]
        assert recorder.names()[-1] == "stop"

    run_async(main)


def test_a_death_racing_the_stop_is_not_respawned(make: Any, recorder: Any, run_async: Any) -> None:
    """SIGKILL a process and stop its watcher before the loop saw the death: the death is
    the stop's (reaped once, no respawn), the stop is not held up."""

    async def main() -> None:
        w = make(SLEEP, numprocesses=4, **{"flapping.active": False})
        await w.start()
        pids = w.pids
        spawns = recorder.count("spawn")
        for pid in pids[:2]:
            os.kill(pid, signal.SIGKILL)
        stopped = await asyncio.wait_for(w.stop(), 30)  # no await between: not seen yet
        assert sorted(stopped) == sorted(pids)
        assert recorder.count("spawn") == spawns
        reaps = [p["process_pid"] for p in recorder.of("reap")]
        assert sorted(reaps) == sorted(pids)
        codes = {p["process_pid"]: p["exit_code"] for p in recorder.of("reap")}
        assert {codes[pid] for pid in pids[:2]} == {-9}
        assert {codes[pid] for pid in pids[2:]} == {-15}
        assert recorder.names()[-1] == "stop"
        assert w.pids == [] and w.ending == {}
        await w.start()  # every wid is free again
        assert sorted(p.wid for p in w.processes.values()) == [1, 2, 3, 4]

    run_async(main)


def test_a_stop_of_many_reports_each_process_once_kills_first(
    make: Any, recorder: Any, run_async: Any
) -> None:
    """30 processes: every kill before any reap (the set is signalled without a loop pass
    between), one kill and one reap per pid, then stop; nothing left being ended."""

    async def main() -> None:
        w = make(SLEEP, numprocesses=30)
        await w.start()
        pids = w.pids
        recorder.events.clear()
        await w.stop()
        names = recorder.names()
        assert names == ["kill"] * 30 + ["reap"] * 30 + ["stop"]
        assert sorted(p["process_pid"] for p in recorder.of("reap")) == sorted(pids)
        assert sorted(p["process_pid"] for p in recorder.of("kill")) == sorted(pids)
        assert w.ending == {} and w._procs.idle

    run_async(main)


def test_respawn_event_order_reap_before_spawn(make: Any, recorder: Any, run_async: Any) -> None:
    """A death the watcher did not ask for: its reap, then the replacement's spawn."""

    async def main() -> None:
        w = make(SLEEP, numprocesses=1, backoff_initial=0, **{"flapping.active": False})
        await w.start()
        for _ in range(5):
            old = w.pids[0]
            os.kill(old, signal.SIGKILL)
            await recorder.until(lambda: w.pids and w.pids[0] != old)  # noqa: B023
            tail = [n for n in recorder.names() if n in ("reap", "spawn")][-2:]
            assert tail == ["reap", "spawn"], recorder.names()
            assert recorder.of("reap")[-1]["process_pid"] == old

    run_async(main)
