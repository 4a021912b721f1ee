"""Exit detection on asyncio: pidfd readers, the SIGCHLD fallback, callbacks called once."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from circus.process import Process


def test_exit_callback_runs_once_on_the_loop(spawn) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        proc = spawn("sh -c 'exit 4'")
        calls: list[tuple[int | None, bool]] = []
        fired = asyncio.Event()

        def cb(p: Process) -> None:
            calls.append((p.returncode, asyncio.get_running_loop() is loop))
            fired.set()

        proc.add_exit_callback(cb)
        assert proc.pidfd is not None  # the pidfd path is the one exercised here
        await asyncio.wait_for(fired.wait(), 10)
        await asyncio.sleep(0)
        assert calls == [(4, True)]
        # Added after the exit: still called, once.
        late = asyncio.Event()
        proc.add_exit_callback(lambda p: late.set())
        await asyncio.wait_for(late.wait(), 10)
        assert calls == [(4, True)]
        assert proc.pidfd is None  # released at reap

    asyncio.run(main())


def test_many_children_many_waiters(spawn) -> None:
    async def main() -> list[int]:
        procs = [spawn(f"sh -c 'exit {i}'") for i in range(5)]
        return list(await asyncio.gather(*(p.wait_async() for p in procs)))

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_wait_async_on_killed_child(spawn) -> None:
    async def main() -> int:
        proc = spawn("sleep 60")
        task = asyncio.ensure_future(proc.wait_async())
        await asyncio.sleep(0)
        assert not task.done()
        proc.send_signal(signal.SIGKILL)
        return await asyncio.wait_for(task, 10)

    assert asyncio.run(main()) == -signal.SIGKILL


def test_sync_reap_still_fires_async_callbacks(spawn) -> None:
    async def main() -> int | None:
        proc = spawn("sleep 60")
        seen: list[int | None] = []
        fired = asyncio.Event()
        proc.add_exit_callback(lambda p: (seen.append(p.returncode), fired.set()))
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)  # reaped synchronously, not by the loop's reader
        await asyncio.wait_for(fired.wait(), 10)
        return seen[0]

    assert asyncio.run(main()) == -signal.SIGTERM


def test_sigchld_fallback_without_pidfd(spawn) -> None:
    async def main() -> int:
        proc = spawn("sleep 60")
        # Simulate a kernel without pidfd_open.
        assert proc.pidfd is not None
        os.close(proc.pidfd)
        proc.pidfd = None
        fired = asyncio.Event()
        proc.add_exit_callback(lambda p: fired.set())
        waiter = asyncio.ensure_future(proc.wait_async())
        await asyncio.sleep(0)
        proc.send_signal(signal.SIGTERM)
        rc = await asyncio.wait_for(waiter, 10)
        await asyncio.wait_for(fired.wait(), 10)
        return rc

    assert asyncio.run(main()) == -signal.SIGTERM
    assert signal.getsignal(signal.SIGCHLD) in (signal.SIG_DFL, None)


def test_callback_needs_a_spawned_process() -> None:
    proc = Process("x", 1, "true", spawn=False)

    async def main() -> None:
        proc.add_exit_callback(lambda p: None)

    with pytest.raises(Exception, match="not spawned"):
        asyncio.run(main())


def test_wait_timeout_status_and_age(spawn) -> None:
    from circus.process import DEAD_OR_ZOMBIE, RUNNING, UNEXISTING

    assert Process("x", 1, "true", spawn=False).status == UNEXISTING
    proc = spawn("sleep 60")
    assert proc.status == RUNNING and proc.age() >= 0
    with pytest.raises(TimeoutError):
        proc.wait(0.05)
    proc.close()  # pidfd and pipes released: signals and waits fall back to the pid
    assert proc.pidfd is None
    assert proc.stop(graceful_timeout=5) == -signal.SIGTERM
    assert proc.status == DEAD_OR_ZOMBIE
