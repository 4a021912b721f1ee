"""A first end-to-end pass: spawn, read output, wait, stop, async exit, redirector."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from circus.process import OutputRedirector, Process, SpawnError
from circus.process.streams import FileStream


def test_spawn_read_wait(spawn, read_to_eof) -> None:
    proc = spawn("sh -c 'echo hello $0; exit 3' $(circus.wid)", wid=7)
    assert read_to_eof(proc.stdout) == b"hello 7\n"
    assert proc.wait(10) == 3
    assert proc.returncode == 3 and not proc.is_alive()


def test_stop_sends_signal_and_reaps(spawn) -> None:
    proc = spawn("sleep 60")
    assert proc.poll() is None
    assert proc.stop(graceful_timeout=10) == -signal.SIGTERM


def test_missing_executable_is_a_spawn_error() -> None:
    with pytest.raises(SpawnError) as info:
        Process("t", 1, "no-such-program-xyz --flag")
    assert info.value.option == "cmd"
    assert info.value.value == "no-such-program-xyz"


def test_redirector_and_async_exit(spawn, tmp_path: Path) -> None:
    target = tmp_path / "out.log"

    async def main() -> int:
        stream = FileStream(str(target))
        redirector = OutputRedirector()
        proc = spawn("head -c 3000000 /dev/zero")
        redirector.add(proc, stream)
        seen: list[int] = []
        done = asyncio.Event()

        def on_exit(p: Process) -> None:
            seen.append(p.returncode)
            done.set()

        proc.add_exit_callback(on_exit)
        rc = await proc.wait_async()
        await asyncio.wait_for(done.wait(), 10)
        redirector.remove(proc)
        stream.close()
        assert seen == [0]
        return rc

    assert asyncio.run(main()) == 0
    assert target.stat().st_size == 3000000
