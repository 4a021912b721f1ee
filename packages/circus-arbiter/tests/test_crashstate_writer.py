"""The crash state file is stored by a writer thread: a store stuck in the filesystem never
holds the event loop (which respawns the daemon's processes), and stores never go back in
time."""

from __future__ import annotations

import asyncio
import json
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path

from circus.arbiter._crashstate import CrashState, parse_state
from circus.process.testing import async_wait_until


def _snapshot(pids: list[int]) -> Callable[[], dict[str, tuple[str, list[str]]]]:
    def snap() -> dict[str, tuple[str, list[str]]]:
        procs = [json.dumps({"pid": p, "wid": 1, "start_time": 7, "started": 1.5}) for p in pids]
        return {"web": ("cmd", procs)}

    return snap


def _drain(fd: int) -> bytes:
    chunks = []
    while select.select([fd], [], [], 10)[0]:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def test_a_store_stuck_in_the_filesystem_does_not_hold_the_loop(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir(mode=0o700)
    crash = CrashState(str(rundir), "k", _snapshot([42]))
    assert crash.acquire()
    # The store's temporary file is a FIFO nobody reads: opening it for writing blocks, as a
    # hung network filesystem or a saturated disk would.
    fifo = f"{crash.path}.{os.getpid()}.tmp"
    os.mkfifo(fifo, 0o600)
    alive = threading.Event()
    stuck = threading.Event()
    stored: list[bytes] = []

    def reader() -> None:
        if not alive.wait(5):  # the loop never came back: unblock it so the test can end
            stuck.set()
        fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # the store's open returns now
        try:
            stored.append(_drain(fd))
        finally:
            os.close(fd)

    thread = threading.Thread(target=reader)
    thread.start()

    async def main() -> None:
        crash.changed()  # the first write: due at once
        for _ in range(3):
            await asyncio.sleep(0)  # the due write was handed over in these passes
        alive.set()
        await async_wait_until(lambda: crash.writes == 1, 10, "the store once unblocked")

    try:
        asyncio.run(main())
    finally:
        alive.set()
        thread.join(15)
        crash.close()
    assert not stuck.is_set(), "the event loop waited for the filesystem"
    assert [p.pid for p in parse_state(stored[0]).processes] == [42]


def test_a_store_older_than_the_file_is_dropped(tmp_path: Path) -> None:
    rundir = tmp_path / "run"
    rundir.mkdir(mode=0o700)
    pids = [1]
    crash = CrashState(str(rundir), "k", _snapshot(pids))
    assert crash.acquire()
    try:
        old = crash._render()
        pids[:] = [2]
        assert crash.write()  # a later state reached the disk first
        assert old is not None and not crash._store(*old)
        state = parse_state(Path(crash.path).read_bytes())
        assert [p.pid for p in state.processes] == [2] and crash.writes == 1
    finally:
        crash.close()
    assert list(rundir.iterdir()) == []
