"""File streams on a full disk: output is dropped and counted, never a traceback per write.

A real full filesystem (a tiny tmpfs mounted for the test, skipped when mounting is not
permitted) and ``/dev/full``: a warning at most every few seconds with what was dropped, no
exception out of the stream, rotation failing with ENOSPC neither crashes nor repeats, and
writing resumes by itself once space is freed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from circus.process import OutputRedirector
from circus.process.streams import FileStream, TimedRotatingFileStream, WatchedFileStream
from circus.process.testing import async_wait_until

# A child printing numbered lines continuously (about 1,000 a second, 60 bytes each).
CHATTY = (
    "import os, time\n"
    "i = 0\n"
    "while True:\n"
    "    os.write(1, b'line %08d ' % i + b'x' * 45 + b'\\n')\n"
    "    i += 1\n"
    "    time.sleep(0.001)\n"
)


class TinyFs:
    """A tmpfs of ``size`` bytes and ``inodes`` inodes mounted on ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fill(self, name: str = "filler") -> Path:
        """Fill what space is left with one file; delete it to free the space."""
        filler = self.path / name
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:
            pass
        finally:
            os.close(fd)
        return filler

    def use_inodes(self, prefix: str = "inode") -> list[Path]:
        """Create empty files until no inode is left; delete one to free an inode."""
        made = []
        for i in range(10_000):
            path = self.path / f"{prefix}{i}"
            try:
                path.touch()
            except OSError:
                return made
            made.append(path)
        raise AssertionError("the tmpfs has no inode limit")


def _mount(path: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    path.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        path.rmdir()
        pytest.skip(f"mount not permitted here: {done.stderr.strip()}")


def _umount(path: Path) -> None:
    if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(path)], check=True)
    path.rmdir()


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Callable[..., TinyFs]]:
    """``tiny_fs(size=..., inodes=...)``: a fresh tmpfs, unmounted at teardown."""
    mounted: list[Path] = []

    def make(size: str = "64k", inodes: int | None = None) -> TinyFs:
        path = tmp_path / f"mnt{len(mounted)}"
        options = f"size={size},mode=0700" + (f",nr_inodes={inodes}" if inodes else "")
        _mount(path, options)
        mounted.append(path)
        return TinyFs(path)

    yield make
    for path in mounted:
        _umount(path)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def warnings_seen() -> Iterator[list[logging.LogRecord]]:
    """Every record circus.process logs at WARNING and above during the test."""
    handler = _Collect()
    logger = logging.getLogger("circus.process")
    logger.addHandler(handler)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)


def _no_traceback(records: list[logging.LogRecord]) -> None:
    assert [r for r in records if r.exc_info or r.levelno >= logging.ERROR] == []
    assert all("Traceback" not in r.getMessage() for r in records)


def _chunk(data: bytes) -> dict[str, object]:
    return {"data": data, "pid": 42, "name": "stdout"}


# ------------------------------------------------------------------ a child on a full disk


@pytest.mark.slow
@pytest.mark.parametrize("time_format", [None, "%H:%M:%S"], ids=["splice", "prefixed"])
def test_full_disk_warns_rarely_and_resumes_when_space_is_back(
    spawn, py, tiny_fs, warnings_seen, time_format: str | None
) -> None:
    fs = tiny_fs("64k")
    target = fs.path / "out.log"

    async def main() -> None:
        stream = FileStream(str(target), time_format=time_format)
        stream.open()
        filler = fs.fill()
        redirector = OutputRedirector()
        proc = spawn(py, args=["-c", CHATTY], pipe_stderr=False)
        redirector.add(proc, stream)
        try:
            # the disk is full: wait for the first drop, then 3 s of continuous dropping
            await async_wait_until(lambda: stream.dropped[0], 30, "a first drop")
            dropped_before = stream.dropped
            await asyncio.sleep(3.0)  # the window measured, not a synchronisation
            assert stream.dropped[0] > dropped_before[0], "the child stopped writing?"
            outage = [r for r in warnings_seen if r.levelno == logging.WARNING]
            assert 1 <= len(outage) <= 2, [r.getMessage() for r in outage]
            assert "No space left on device" in outage[0].getMessage()
            _no_traceback(warnings_seen)
            assert proc.returncode is None  # the child was never stalled by the full disk

            # space comes back: new lines arrive without anyone doing anything
            size_before = target.stat().st_size
            filler.unlink()
            resumed = lambda: target.stat().st_size >= size_before + 4096  # noqa: E731
            await async_wait_until(resumed, 30, "writing to resume")
            assert any("again" in r.getMessage() for r in warnings_seen)
        finally:
            proc.stop(graceful_timeout=2.0)
            redirector.remove(proc)
            stream.close()

    asyncio.run(main())
    _no_traceback(warnings_seen)
    tail = target.read_bytes().splitlines()[-2]
    assert b"line " in tail and tail.endswith(b"x" * 45)


# ------------------------------------------------------------------ /dev/full (no mount needed)


def test_dev_full_drops_every_write_with_one_warning(warnings_seen) -> None:
    stream = FileStream("/dev/full")
    line = b"a line of output\n"
    for _ in range(1000):
        stream(_chunk(line))  # type: ignore[arg-type]
    assert stream.dropped == (1000 * len(line), 1000)
    assert len(warnings_seen) == 1, [r.getMessage() for r in warnings_seen]
    assert "/dev/full" in warnings_seen[0].getMessage()
    stream.close()
    _no_traceback(warnings_seen)


def test_dev_full_through_a_real_pipe(spawn, py, warnings_seen) -> None:
    """The redirector's splice path meets /dev/full (splice refused, then writes fail)."""
    lines = 5000

    async def main() -> None:
        stream = FileStream("/dev/full")
        redirector = OutputRedirector()
        proc = spawn(
            py,
            args=["-c", f"import os\nfor i in range({lines}): os.write(1, b'%05d\\n' % i)"],
            pipe_stderr=False,
        )
        redirector.add(proc, stream)
        assert await proc.wait_async() == 0
        redirector.remove(proc)
        stream.close()
        assert stream.dropped == (6 * lines, lines)

    asyncio.run(main())
    messages = [r.getMessage() for r in warnings_seen]
    # the first drop, then what followed at close: nothing follows when the whole output
    # reached the stream in the first read (a loaded machine lets the pipe fill up)
    assert 1 <= len(messages) <= 2, messages
    assert all(m.startswith("closing /dev/full: ") for m in messages[1:]), messages
    _no_traceback(warnings_seen)


def test_warnings_repeat_once_per_interval(warnings_seen) -> None:
    from circus.process.streams._drops import DropReport

    now = [1000.0]
    report = DropReport("/x", clock=lambda: now[0])
    err = OSError(28, "No space left on device")
    for _ in range(160):  # 20 s of drops, 8 a second
        report.drop(b"ab\n", err)
        now[0] += 0.125
    report.ok()
    messages = [r.getMessage() for r in warnings_seen]
    # the first drop, then one per 5 s (at 5, 10, 15 s), then the recovery
    assert len(messages) == 5, messages
    assert "(3 bytes, 1 lines so far" in messages[0]
    assert "dropped 120 bytes (40 lines) since the last report" in messages[1]
    assert "480 bytes (160 lines) were dropped meanwhile" in messages[-1]
    assert "(117 bytes, 39 lines since the last report)" in messages[-1]
    assert (report.bytes_dropped, report.lines_dropped) == (480, 160)


# ------------------------------------------------------------------ rotation on a full disk


def test_size_rotation_failing_with_enospc_drops_then_resumes(tiny_fs, warnings_seen) -> None:
    fs = tiny_fs("1m", inodes=8)
    target = fs.path / "out.log"
    stream = FileStream(str(target), max_bytes=1000, backup_count=2)
    line = b"%04d" + b"y" * 95 + b"\n"
    for i in range(10):  # 1000 bytes: no rotation yet
        stream(_chunk(line % i))  # type: ignore[arg-type]
    spare = fs.use_inodes()  # rotation renames out.log and cannot create a new one
    for i in range(10, 2010):
        stream(_chunk(line % i))  # type: ignore[arg-type]
    assert stream.dropped == (2000 * 100, 2000)
    assert len(warnings_seen) == 1, [r.getMessage() for r in warnings_seen]
    _no_traceback(warnings_seen)
    # the failed rotation happened once: the backups were not shifted at every write
    assert (fs.path / "out.log.1").read_bytes().startswith(b"0000")
    assert not (fs.path / "out.log.2").exists()
    spare[0].unlink()
    stream(_chunk(line % 9999))  # type: ignore[arg-type]
    assert target.read_bytes() == line % 9999
    assert "again" in warnings_seen[-1].getMessage()
    stream.close()


def test_full_disk_when_the_file_is_first_opened(tiny_fs, warnings_seen) -> None:
    """A stream whose file cannot even be created (no inode left) still opens, then writes
    once it can."""
    fs = tiny_fs("1m", inodes=4)
    spare = fs.use_inodes()
    target = fs.path / "out.log"
    stream = FileStream(str(target))
    stream.open()  # no exception: the watcher still starts
    stream(_chunk(b"lost\n"))  # type: ignore[arg-type]
    assert not target.exists()
    spare[0].unlink()
    stream(_chunk(b"kept\n"))  # type: ignore[arg-type]
    assert target.read_bytes() == b"kept\n"
    assert stream.dropped == (5, 1)
    stream.close()
    _no_traceback(warnings_seen)


def test_timed_rotation_failing_with_enospc_is_not_retried_per_write(
    tiny_fs, warnings_seen
) -> None:
    fs = tiny_fs("1m", inodes=8)
    now = [1_700_000_000.0]
    target = fs.path / "out.log"
    stream = TimedRotatingFileStream(
        str(target), rotate_when="S", rotate_interval=10, clock=lambda: now[0]
    )
    stream(_chunk(b"before\n"))  # type: ignore[arg-type]
    spare = fs.use_inodes()
    now[0] += 11  # due: the rotation renames out.log, then cannot create the new one
    for _ in range(500):
        stream(_chunk(b"during\n"))  # type: ignore[arg-type]
    rotated = sorted(p.name for p in fs.path.iterdir() if p.name.startswith("out.log."))
    assert len(rotated) == 1
    assert (fs.path / rotated[0]).read_bytes() == b"before\n"
    assert stream.rollover_at > now[0]
    assert stream.dropped == (500 * 7, 500)
    assert len(warnings_seen) == 1, [r.getMessage() for r in warnings_seen]
    spare[0].unlink()
    stream(_chunk(b"after\n"))  # type: ignore[arg-type]
    assert target.read_bytes() == b"after\n"
    stream.close()
    _no_traceback(warnings_seen)


def test_watched_file_reopen_failing_with_enospc(tiny_fs, warnings_seen) -> None:
    fs = tiny_fs("1m", inodes=8)
    target = fs.path / "out.log"
    stream = WatchedFileStream(str(target))
    stream(_chunk(b"one\n"))  # type: ignore[arg-type]
    os.rename(target, fs.path / "out.log.old")  # logrotate moved it
    spare = fs.use_inodes()
    for _ in range(100):
        stream(_chunk(b"two\n"))  # type: ignore[arg-type]
    assert stream.dropped == (400, 100)
    spare[0].unlink()
    stream(_chunk(b"three\n"))  # type: ignore[arg-type]
    assert target.read_bytes() == b"three\n"
    assert (fs.path / "out.log.old").read_bytes() == b"one\n"
    assert len(warnings_seen) == 2  # the outage, then "again"
    stream.close()
    _no_traceback(warnings_seen)
