"""Watcher.adopt: running processes taken in with their worker ids; no hook, no spawn for
them; counted against numprocesses; their exits handled as any other's."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from circus.process import Process, process_start_time
from circus.watcher import WatcherError

SLEEP = f"{sys.executable} -c 'import time; time.sleep(300)'"


@pytest.fixture
def strays() -> Iterator[Callable[[int], list[Any]]]:
    """``strays(n)``: n running processes that are not our children, attached (as a
    restarted daemon finds its predecessor's workers); any left is SIGKILLed at teardown."""
    pids: list[int] = []

    def make(n: int) -> list[Any]:
        script = f"for i in $(seq {n}); do sleep 300 </dev/null >/dev/null 2>&1 & echo $!; done"
        out = subprocess.run(["sh", "-c", script], capture_output=True, check=True, timeout=30)
        found = [int(line) for line in out.stdout.split()]
        pids.extend(found)
        return [Process.attach(pid, process_start_time(pid) or 0, name="w") for pid in found]

    yield make
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _with_wids(procs: list[Any], wids: list[int]) -> list[Any]:
    for proc, wid in zip(procs, wids, strict=True):
        proc.wid = wid
    return procs


def test_adopt_counts_them_and_spawns_only_the_missing(
    make: Any, run_async: Any, recorder: Any, strays: Any
) -> None:
    hook_calls: list[str] = []
    watcher = make(SLEEP, numprocesses=4, hooks={"before_start": _hook(hook_calls, "start"),
                   "before_spawn": _hook(hook_calls, "spawn")})  # fmt: skip
    procs = _with_wids(strays(3), [2, 3, 5])

    async def main() -> None:
        kept = await watcher.adopt(procs)
        assert kept == [p.pid for p in procs]
        assert watcher.status() == "active"
        assert len(watcher.pids) == 4  # 3 adopted, 1 spawned with the free wid 1
        wids = sorted(p.wid for p in watcher.processes.values())
        assert wids == [1, 2, 3, 5]
        assert recorder.count("adopt") == 3 and recorder.count("spawn") == 1
        assert hook_calls == ["spawn"]  # before_start never ran; the new spawn's hook did
        assert await watcher.incr(1) == 5
        assert sorted(p.wid for p in watcher.processes.values()) == [1, 2, 3, 4, 5]

    run_async(main)


def _hook(calls: list[str], name: str) -> Callable[..., bool]:
    def hook(*args: Any, **kwargs: Any) -> bool:
        calls.append(name)
        return True

    return hook


def test_an_adopted_process_that_dies_is_replaced(
    make: Any, run_async: Any, recorder: Any, strays: Any
) -> None:
    watcher = make(SLEEP, numprocesses=2)
    procs = _with_wids(strays(2), [1, 2])

    async def main() -> None:
        await watcher.adopt(procs)
        victim = procs[0]
        os.kill(victim.pid, signal.SIGKILL)
        await recorder.until(lambda: recorder.count("spawn") == 1, 30)
        assert victim.pid not in watcher.pids and len(watcher.pids) == 2
        reaped = recorder.of("reap")
        assert [r["process_pid"] for r in reaped] == [victim.pid]
        # the replacement took the dead process's worker id
        assert sorted(p.wid for p in watcher.processes.values()) == [1, 2]

    run_async(main)


def test_above_numprocesses_the_oldest_are_ended(
    make: Any, run_async: Any, recorder: Any, strays: Any
) -> None:
    watcher = make(SLEEP, numprocesses=1, stop_children=True)
    procs = _with_wids(strays(3), [1, 2, 3])
    procs[0].started, procs[1].started, procs[2].started = 100.0, 300.0, 200.0

    async def main() -> None:
        kept = await watcher.adopt(procs)
        assert kept == [procs[1].pid]  # the youngest stays
        assert watcher.pids == [procs[1].pid]
        assert recorder.count("spawn") == 0
        assert procs[0].returncode is not None and procs[2].returncode is not None

    run_async(main)


def test_a_bad_batch_is_refused_whole(make: Any, run_async: Any, strays: Any) -> None:
    watcher = make(SLEEP, numprocesses=3)
    procs = strays(2)

    async def main() -> None:
        for wids in ([1, 1], [0, 2], [1, 10**12]):
            _with_wids(procs, wids)
            with pytest.raises(WatcherError):
                await watcher.adopt(procs)
            assert watcher.pids == [] and watcher.status() == "stopped"
        _with_wids(procs, [1, 2])
        await watcher.adopt(procs)
        with pytest.raises(WatcherError, match="adopted twice|already in use"):
            await watcher.adopt(procs)

    run_async(main)


def test_stop_ends_adopted_processes_and_their_trees(
    make: Any, run_async: Any, strays: Any
) -> None:
    watcher = make(SLEEP, numprocesses=2, stop_children=True)
    procs = _with_wids(strays(2), [1, 2])

    async def main() -> None:
        await watcher.adopt(procs)
        stopped = await watcher.stop()
        assert sorted(stopped) == sorted(p.pid for p in procs)
        assert all(p.returncode is not None for p in procs)
        assert watcher.status() == "stopped"

    run_async(main)


def test_adopted_processes_are_ready_and_probed_for_liveness(
    make: Any, run_async: Any, recorder: Any, strays: Any
) -> None:
    # probes that never succeed: an adopted process (it was serving) is ready at once, and its
    # liveness probe resumes, so it is found unhealthy and replaced
    watcher = make(
        SLEEP,
        numprocesses=1,
        readiness="tcp://127.0.0.1:1",
        readiness_timeout=60,
        liveness="tcp://127.0.0.1:1",
        liveness_interval=0.2,
        liveness_timeout=1,
        liveness_failures=1,
    )
    procs = _with_wids(strays(1), [1])

    async def main() -> None:
        await watcher.adopt(procs)
        await watcher.wait_ready(pids=[procs[0].pid], timeout=10)
        await recorder.until(lambda: recorder.count("unhealthy") >= 1, 30)
        assert recorder.of("unhealthy")[0]["process_pid"] == procs[0].pid

    run_async(main)


def test_a_child_adopted_with_its_pipes_keeps_its_output_and_status(
    make: Any, run_async: Any, recorder: Any
) -> None:
    """As after an exec of the daemon: a real child, its output pipe handed over with it."""
    watcher = make(SLEEP, numprocesses=1, respawn=False)
    seen: list[bytes] = []
    watcher.add_output_observer(lambda pid, stream, data: seen.append(data))
    cue_r, cue_w = os.pipe()
    out_r, out_w = os.pipe()
    try:
        pid = os.posix_spawn(
            "/bin/sh",
            ["sh", "-c", "read x; echo hello; exit 3"],
            os.environ,
            file_actions=[(os.POSIX_SPAWN_DUP2, cue_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1)],
        )
    finally:
        os.close(cue_r)
        os.close(out_w)
    proc = Process.attach(pid, process_start_time(pid) or 0, name="w", wid=1, stdout=out_r)

    async def main() -> None:
        await watcher.adopt([proc])
        os.write(cue_w, b"go\n")
        await recorder.until(
            lambda: recorder.count("reap") == 1 and b"".join(seen) == b"hello\n", 30
        )
        assert recorder.of("reap")[0]["exit_code"] == 3  # a child: its exact status

    try:
        run_async(main)
    finally:
        os.close(cue_w)


def test_adopt_events_carry_the_documented_payload(
    make: Any, run_async: Any, recorder: Any, strays: Any
) -> None:
    from circus.watcher import EVENTS

    watcher = make(SLEEP, numprocesses=1)
    procs = _with_wids(strays(1), [1])

    async def main() -> None:
        await watcher.adopt(procs)
        (payload,) = recorder.of("adopt")
        assert tuple(payload) == EVENTS["adopt"]
        assert payload["process_pid"] == procs[0].pid and payload["wid"] == 1
        assert recorder.names().index("adopt") < recorder.names().index("start")

    run_async(main)


def test_a_process_that_died_before_adoption_is_replaced(
    make: Any, run_async: Any, recorder: Any, strays: Any
) -> None:
    watcher = make(SLEEP, numprocesses=3)
    procs = _with_wids(strays(3), [1, 2, 3])
    unnoticed, reaped = procs[0], procs[1]
    for proc in (unnoticed, reaped):
        os.kill(proc.pid, signal.SIGKILL)
    reaped.wait(10)  # its death was seen before the adoption

    async def main() -> None:
        kept = await watcher.adopt(procs)
        assert reaped.pid not in kept and reaped.pidfd is None
        await recorder.until(lambda: unnoticed.pid not in watcher.pids, 30)
        await recorder.until(lambda: len(watcher.pids) == 3, 30)
        assert procs[2].pid in watcher.pids  # the living one was kept

    run_async(main)
