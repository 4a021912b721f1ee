"""OutputRedirector: splice and read paths, observers, drain at exit and on removal."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from circus.process import OutputRedirector, Process
from circus.process.streams import FileStream, QueueStream
from circus.process.testing import wait_until

# Writes N deterministic, non-repeating-ish bytes in odd-sized writes, then exits at once.
WRITER = (
    "import hashlib, os, sys\n"
    "n = int(sys.argv[1]); seed = b'circus'; out = 0; i = 0\n"
    "while out < n:\n"
    "    block = hashlib.sha256(seed + str(i).encode()).digest() * 257\n"
    "    block = block[: min(len(block), n - out)]\n"
    "    os.write(1, block); out += len(block); i += 1\n"
)


def expected_bytes(n: int) -> bytes:
    parts, out, i = [], 0, 0
    while out < n:
        block = hashlib.sha256(b"circus" + str(i).encode()).digest() * 257
        block = block[: min(len(block), n - out)]
        parts.append(block)
        out += len(block)
        i += 1
    return b"".join(parts)


def run(coro_fn: Callable[[], object]) -> object:
    return asyncio.run(coro_fn())  # type: ignore[arg-type]


@pytest.mark.parametrize("observed", [False, True], ids=["splice", "read"])
def test_bytes_land_intact(spawn, py, tmp_path: Path, observed: bool) -> None:
    size = 3 * 1024 * 1024 + 17
    target = tmp_path / "out.log"
    seen: list[int] = []

    async def main() -> None:
        stream = FileStream(str(target))
        redirector = OutputRedirector()
        if observed:
            redirector.add_observer(lambda pid, name, data: seen.append(len(data)))
        proc = spawn(py, args=["-c", WRITER, str(size)], pipe_stderr=False)
        redirector.add(proc, stream)
        assert await proc.wait_async() == 0
        redirector.remove(proc)
        stream.close()

    run(main)
    assert target.read_bytes() == expected_bytes(size)
    assert sum(seen) == (size if observed else 0)


def test_drain_at_exit_without_remove(spawn, py, tmp_path: Path) -> None:
    """The child exits right after writing: every byte still reaches the stream."""
    size = 512 * 1024
    target = tmp_path / "out.log"

    async def main() -> None:
        stream = FileStream(str(target))
        redirector = OutputRedirector()
        proc = spawn(py, args=["-c", WRITER, str(size)])
        redirector.add(proc, stream, stream)
        done = asyncio.Event()
        # Registered after the redirector's own exit callback: by then the pipe is drained.
        proc.add_exit_callback(lambda p: done.set())
        await asyncio.wait_for(done.wait(), 20)
        assert target.stat().st_size == size
        assert redirector.processes == []  # EOF reached: pipes let go by themselves
        stream.close()
        proc.close()

    run(main)


def test_remove_drains_pending_output(spawn, tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    marker = tmp_path / "written"
    # Writes, then keeps its pipes open: no EOF will come before we remove it.
    proc = spawn(f"sh -c 'echo one; echo two >&2; touch {marker}; exec sleep 60'")
    wait_until(marker.exists, 10, f"{marker} to appear")

    async def main() -> None:
        stream = FileStream(str(target))
        redirector = OutputRedirector()
        redirector.add(proc, stream, stream)
        # No await in between: the loop never pumped, the output is still in the pipes.
        redirector.remove(proc)
        stream.close()

    run(main)
    assert sorted(target.read_bytes().splitlines()) == [b"one", b"two"]


def test_observers_get_both_streams_and_time_format_keeps_lines(spawn, tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    chunks: list[tuple[int, str, bytes]] = []

    async def main() -> Process:
        stream = FileStream(str(target), time_format="%H:%M:%S")
        queue = QueueStream()
        redirector = OutputRedirector()
        redirector.add_observer(lambda pid, name, data: chunks.append((pid, name, data)))
        proc = spawn('sh -c \'printf "par"; sleep 0.05; printf "tial\\nfull\\n"; echo err >&2\'')
        redirector.add(proc, stream, queue)
        await proc.wait_async()
        redirector.remove(proc)
        stream.close()
        assert queue.get_nowait()["data"] == b"err\n"
        return proc

    proc = run(main)
    assert b"".join(d for _, n, d in chunks if n == "stdout") == b"partial\nfull\n"
    assert {(pid, name) for pid, name, _ in chunks} == {(proc.pid, "stdout"), (proc.pid, "stderr")}
    lines = target.read_text().splitlines()
    assert [line.split(" | ", 1)[1] for line in lines] == ["partial", "full"]
    assert all(f"[{proc.pid}]" in line for line in lines)


def test_closing_the_process_detaches_it(spawn) -> None:
    async def main() -> None:
        redirector = OutputRedirector()
        proc = spawn("sleep 60")
        redirector.add(proc, QueueStream())
        assert redirector.processes == [proc]
        proc.close()
        assert redirector.processes == []
        proc.stop(graceful_timeout=5)

    run(main)


def test_failing_stream_does_not_break_the_pump(spawn, caplog) -> None:
    def broken(chunk: dict) -> None:
        raise RuntimeError("boom")

    async def main() -> None:
        redirector = OutputRedirector()
        proc = spawn("echo hi")
        redirector.add(proc, broken)
        await proc.wait_async()
        redirector.close()

    run(main)
    assert "boom" in caplog.text


def test_splice_path_rotates_by_size(spawn, py, tmp_path: Path) -> None:
    size = 1_000_000
    target = tmp_path / "out.log"

    async def main() -> None:
        stream = FileStream(str(target), max_bytes=300_000, backup_count=5)
        redirector = OutputRedirector()
        proc = spawn(py, args=["-c", WRITER, str(size)], pipe_stderr=False)
        redirector.add(proc, stream)
        await proc.wait_async()
        redirector.remove(proc)
        stream.close()

    run(main)
    files = [target.with_name(f"out.log.{i}") for i in range(4, 0, -1)] + [target]
    sizes = [p.stat().st_size for p in files if p.exists()]
    assert all(s <= 300_000 for s in sizes)
    assert b"".join(p.read_bytes() for p in files if p.exists()) == expected_bytes(size)


def test_two_processes_share_one_file(spawn, py, tmp_path: Path) -> None:
    size = 700_000
    target = tmp_path / "out.log"

    async def main() -> None:
        stream = FileStream(str(target))
        redirector = OutputRedirector()
        procs = [spawn(py, args=["-c", WRITER, str(size)], pipe_stderr=False) for _ in range(2)]
        for proc in procs:
            redirector.add(proc, stream)
        await asyncio.gather(*(p.wait_async() for p in procs))
        for proc in procs:
            redirector.remove(proc)
        stream.close()

    run(main)
    assert target.stat().st_size == 2 * size


def test_only_a_busy_pipe_is_grown(py: str, tmp_path: Path) -> None:
    """Pipes keep the kernel's default size until one read finds a busy writer's backlog:
    growing all of them would cost kernel memory and an unprivileged user's pipe budget."""
    import fcntl

    from circus.process._redirector import PIPE_SIZE

    get_size = getattr(fcntl, "F_GETPIPE_SZ", 1032)
    # The busy writer fills its pipe before the loop ever reads it; the quiet one writes a line.
    busy_script = "import os, sys; os.write(1, b'x' * 262144); sys.stdin.read()"
    quiet_script = "import sys; print('hi', flush=True); sys.stdin.read()"

    async def main() -> tuple[int, int, int]:
        redirector = OutputRedirector()
        received: dict[int, int] = {}
        enough = asyncio.Event()
        busy = Process("t", 1, f'{py} -c "{busy_script}"', close_child_stdin=False)
        quiet = Process("t", 2, f'{py} -c "{quiet_script}"', close_child_stdin=False)
        try:
            assert busy.stdout is not None and quiet.stdout is not None
            default = fcntl.fcntl(quiet.stdout, get_size)

            def observe(pid: int, name: str, data: bytes) -> None:
                received[pid] = received.get(pid, 0) + len(data)
                if received.get(busy.pid, 0) >= 262144 and received.get(quiet.pid, 0) >= 3:
                    enough.set()

            redirector.add_observer(observe)
            redirector.add(busy)
            redirector.add(quiet)
            await asyncio.wait_for(enough.wait(), 10)
            return default, fcntl.fcntl(busy.stdout, get_size), fcntl.fcntl(quiet.stdout, get_size)
        finally:
            redirector.close()
            for proc in (busy, quiet):
                await proc.astop(graceful_timeout=2.0)
                proc.close()

    default, busy_size, quiet_size = run(main)  # type: ignore[misc]
    assert quiet_size == default < PIPE_SIZE
    assert busy_size == PIPE_SIZE


def test_a_writer_of_whole_line_blocks_gets_a_bigger_pipe(py: str) -> None:
    """Blocks of 655 100-byte lines (65,500 bytes) fill the default pipe without ever leaving
    64 KiB in it: such a writer is busy too, and its pipe is grown."""
    import fcntl

    from circus.process._redirector import PIPE_SIZE

    get_size = getattr(fcntl, "F_GETPIPE_SZ", 1032)
    blocks = 40
    script = (
        "import os, sys; b = (b'x' * 99 + b'\\n') * 655\n"
        f"for _ in range({blocks}): os.write(1, b)\n"
        "sys.stdin.read()"
    )

    async def main() -> tuple[int, int]:
        redirector = OutputRedirector()
        got = [0]
        done = asyncio.Event()
        proc = Process("t", 1, py, args=["-c", script], close_child_stdin=False)
        try:
            assert proc.stdout is not None
            default = fcntl.fcntl(proc.stdout, get_size)

            def observe(pid: int, name: str, data: bytes) -> None:
                got[0] += len(data)
                if got[0] >= blocks * 65500:
                    done.set()

            redirector.add_observer(observe)
            redirector.add(proc)
            await asyncio.wait_for(done.wait(), 20)
            return default, fcntl.fcntl(proc.stdout, get_size)
        finally:
            redirector.close()
            await proc.astop(graceful_timeout=2.0)
            proc.close()

    default, size = run(main)  # type: ignore[misc]
    assert default < PIPE_SIZE
    assert size == PIPE_SIZE
