"""Reload (graceful, send_hup, sequential, terminate), signals and kill, with real processes."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.watcher import ProcessNotFoundError

SLEEP = "sleep 300"

# A child that records each signal it gets into a file named after its pid, then goes on.
TRAP = (
    f'{sys.executable} -c "import os,signal,sys,time\n'
    "d=sys.argv[1]\n"
    "def h(n,f): open(os.path.join(d,str(os.getpid())),'a').write(str(n)+'\\\\n')\n"
    "[signal.signal(s,h) for s in (signal.SIGHUP,signal.SIGUSR1,signal.SIGUSR2)]\n"
    "open(os.path.join(d,'ready-'+str(os.getpid())),'w').close()\n"
    'while True: time.sleep(60)" '
)


def up_tracker(recorder: Any) -> tuple[set[int], list[int]]:
    """Track processes spawned and not yet signalled; record that count at each kill."""
    up: set[int] = set()
    at_kill: list[int] = []

    def listener(event: str, payload: dict[str, Any]) -> None:
        if event == "spawn":
            up.add(payload["process_pid"])
        elif event == "kill":
            up.discard(payload["process_pid"])
            at_kill.append(len(up))

    return up, at_kill, listener  # type: ignore[return-value]


@pytest.mark.parametrize("sequential", [False, True])
def test_graceful_reload_keeps_numprocesses_up(
    make: Any, recorder: Any, sequential: bool, run_async: Any
) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=4)
        up, at_kill, listener = up_tracker(recorder)
        w.add_listener(listener)
        await w.start()
        old = set(w.pids)
        info = await w.reload(sequential=sequential)
        assert set(info["stopped"]) == old
        assert set(info["started"]) == set(w.pids)
        assert len(w.pids) == 4 and not old & set(w.pids)
        assert at_kill and min(at_kill) >= 4, at_kill
        assert recorder.names()[-1] == "reload"
        assert sorted(p.wid for p in w.processes.values()) == sorted(
            {p.wid for p in w.processes.values()}
        )

    run_async(main)


def test_reload_of_a_stopped_watcher_starts_it(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=2)
        info = await w.reload()
        assert w.status() == "active" and len(info["started"]) == 2
        assert recorder.names()[-2:] == ["start", "reload"]

    run_async(main)


def test_non_graceful_reload_is_a_restart(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=2)
        await w.start()
        old = set(w.pids)
        info = await w.reload(graceful=False)
        assert set(info["stopped"]) == old and len(info["started"]) == 2

    run_async(main)


def test_send_hup_reload_and_signals(
    make: Any, recorder: Any, tmp_path: Path, run_async: Any
) -> None:
    async def main() -> None:
        w = make(TRAP + str(tmp_path), numprocesses=2, send_hup=True)
        await w.start()
        pids = w.pids
        await recorder.until(lambda: all((tmp_path / f"ready-{p}").exists() for p in pids))
        info = await w.reload()
        assert info["kept"] == pids and w.pids == pids
        await w.signal(signal.SIGUSR1, pid=pids[0])
        await w.signal("USR2")
        # Pending signals are delivered in number order, not in sending order: compare sorted.
        expect = {pids[0]: ["1", "10", "12"], pids[1]: ["1", "12"]}

        def done() -> bool:
            return all(
                (tmp_path / str(p)).exists()
                and sorted((tmp_path / str(p)).read_text().split()) == v
                for p, v in expect.items()
            )

        await recorder.until(done)
        with pytest.raises(ProcessNotFoundError, match="not found"):
            await w.signal(signal.SIGUSR1, pid=1)

    run_async(main)


@pytest.mark.slow
def test_signal_children_and_recursive(
    make: Any, recorder: Any, tmp_path: Path, run_async: Any
) -> None:
    async def main() -> None:
        # The watched process is a shell whose child traps signals; the shell ignores them.
        script = tmp_path / "run.sh"
        script.write_text(f"trap '' USR1 USR2 HUP\n{TRAP}{tmp_path} &\nwait\n")
        w = make(f"sh {script}", stop_children=True)  # else the child outlives the shell
        await w.start()
        shell = w.pids[0]
        await recorder.until(lambda: bool(list(tmp_path.glob("ready-*"))))
        child = int(next(tmp_path.glob("ready-*")).name.split("-")[1])  # noqa: ASYNC240
        await w.signal(signal.SIGUSR1, pid=shell, children=True)
        log = tmp_path / str(child)
        await recorder.until(lambda: log.exists() and log.read_text().split() == ["10"])
        await w.signal(signal.SIGUSR2, recursive=True)
        await recorder.until(lambda: log.read_text().split() == ["10", "12"])
        await w.signal(signal.SIGHUP, pid=shell, childpid=child)
        await recorder.until(lambda: log.read_text().split() == ["10", "12", "1"])
        with pytest.raises(ProcessNotFoundError):
            await w.signal(signal.SIGHUP, pid=shell, childpid=shell)

    run_async(main)


def test_kill_process_is_replaced(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, numprocesses=2)
        await w.start()
        victim = w.pids[0]
        await w.kill_process(victim)
        assert victim not in w.pids and len(w.pids) == 2
        kills = [p["process_pid"] for p in recorder.of("kill")]
        assert kills == [victim]
        with pytest.raises(ProcessNotFoundError):
            await w.kill_process(victim)

    run_async(main)


def test_graceful_timeout_escalates_to_sigkill(
    make: Any, recorder: Any, tmp_path: Path, run_async: Any
) -> None:
    async def main() -> None:
        ready = tmp_path / "ready"
        w = make(f"sh -c \"trap '' TERM; touch {ready}; while :; do sleep 0.2; done\"",
                 graceful_timeout=0.3)  # fmt: skip
        await w.start()
        pid = w.pids[0]
        await recorder.until(ready.exists)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await w.stop()
        assert 0.25 <= loop.time() - started < 5
        kills = [p["process_pid"] for p in recorder.of("kill")]
        assert kills == [pid, pid]  # stop signal, then SIGKILL
        assert recorder.of("reap")[0]["exit_code"] == -9

    run_async(main)


def test_stop_signal_option(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make(SLEEP, stop_signal="INT")
        await w.start()
        await w.stop()
        assert recorder.of("reap")[0]["exit_code"] == -signal.SIGINT

    run_async(main)


@pytest.mark.slow
def test_stop_children(make: Any, recorder: Any, tmp_path: Path, run_async: Any) -> None:
    async def main() -> None:
        # sh waits on its child; with stop_children the child gets the stop signal too.
        w = make(f"sh -c 'trap \"\" TERM; sleep 300 & echo $! > {tmp_path}/child; wait'",
                 stop_children=True, graceful_timeout=1)  # fmt: skip
        await w.start()
        child_file = tmp_path / "child"
        await recorder.until(lambda: child_file.exists() and child_file.read_text().strip() != "")
        child = int(child_file.read_text())
        await w.stop()
        assert child in [p["process_pid"] for p in recorder.of("kill")]
        await recorder.until(lambda: not psutil.pid_exists(child) or _zombie(child))

    run_async(main)


def _zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
