"""Worker output forwarded to circusd's stdout/stderr: the writer threads, their bound, the
hub's routing by stream class, and a ``set`` switching it off at run time."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter import Arbiter
from circus.arbiter._forward import FdWriter, OutputForwarder, forwardable
from circus.arbiter._output import OutputHub
from circus.ctl import AsyncCircusClient
from circus.process.testing import async_wait_until, wait_until

PY = sys.executable


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """A pipe ``(read, write)``, both ends closed after the test."""
    r, w = os.pipe()
    yield r, w
    for fd in (r, w):
        try:
            os.close(fd)
        except OSError:
            pass


def read_until(fd: int, expected: bytes, timeout: float = 10.0) -> bytes:
    """Read ``fd`` until ``expected`` bytes came (fail after ``timeout``)."""
    os.set_blocking(fd, False)
    got = b""
    deadline = time.monotonic() + timeout
    while len(got) < len(expected):
        try:
            got += os.read(fd, 65536)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {got!r}, expected {expected!r}") from None
            time.sleep(0.01)
    return got


def drained(fd: int) -> bytes:
    """Whatever ``fd`` holds right now."""
    os.set_blocking(fd, False)
    try:
        return os.read(fd, 1 << 20)
    except BlockingIOError:
        return b""


def test_devnull_and_closed_fds_are_not_forwarded(pipe: tuple[int, int]) -> None:
    null = os.open(os.devnull, os.O_WRONLY)
    closed = os.dup(pipe[1])
    os.close(closed)
    try:
        assert forwardable(null) is None
        assert forwardable(closed) is None
        assert forwardable(pipe[1]) is not None
        forwarder = OutputForwarder({"stdout": null, "stderr": closed})
        assert forwarder.writer("stdout") is None and forwarder.writer("stderr") is None
    finally:
        os.close(null)


def test_one_writer_for_one_target(pipe: tuple[int, int]) -> None:
    other = os.dup(pipe[1])
    try:
        forwarder = OutputForwarder({"stdout": pipe[1], "stderr": other})
        assert forwarder.writer("stdout") is forwarder.writer("stderr")
    finally:
        os.close(other)


def test_writer_starts_lazily_and_writes_in_order(pipe: tuple[int, int]) -> None:
    r, w = pipe
    before = {t.name for t in threading.enumerate()}
    writer = FdWriter(w, "stdout")
    assert {t.name for t in threading.enumerate()} == before  # nothing until a line comes
    lines = [f"line {i}\n".encode() for i in range(1000)]
    for line in lines:
        writer.put(line)
    assert read_until(r, b"".join(lines)) == b"".join(lines)
    writer.close()
    assert not any(t.name == "circus-forward-stdout" for t in threading.enumerate())


def test_close_flushes_what_is_queued(pipe: tuple[int, int]) -> None:
    r, w = pipe
    writer = FdWriter(w, "stdout")
    data = b"x" * 99 + b"\n"
    for _ in range(100):
        writer.put(data)
    writer.close(timeout=5)
    assert read_until(r, data * 100) == data * 100
    writer.put(b"after close\n")
    assert drained(r) == b""


def test_full_buffer_drops_lines_without_blocking(
    pipe: tuple[int, int], caplog: pytest.LogCaptureFixture
) -> None:
    r, w = pipe
    line = b"y" * 1023 + b"\n"
    os.set_blocking(w, False)
    try:
        while True:  # a full pipe: nobody reads it (1 KiB writes are atomic)
            os.write(w, line)
    except BlockingIOError:
        pass
    os.set_blocking(w, True)
    writer = FdWriter(w, "stdout", limit=64 * 1024)
    caplog.set_level(logging.WARNING, logger="circus.arbiter")
    started = time.monotonic()
    for _ in range(4096):  # 4 MiB more, a 64 KiB buffer
        writer.put(line)
    assert time.monotonic() - started < 2.0
    assert writer.queued == 64 * 1024
    assert writer.dropped == 4 * 1024 * 1024 - 64 * 1024
    warnings = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
    assert len(warnings) == 1  # rate limited
    assert "not read fast enough" in warnings[0] and "bytes" in warnings[0]
    # a writer stuck on the pipe does not hold close beyond its deadline
    started = time.monotonic()
    writer.close(timeout=0.3)
    assert time.monotonic() - started < 2.0
    assert any("before exit" in r.getMessage() for r in caplog.records)
    # what reached the pipe is whole lines
    os.set_blocking(r, False)
    data = b""
    while True:
        try:
            chunk = os.read(r, 1 << 20)
        except BlockingIOError:
            chunk = b""
        if not chunk:
            break
        data += chunk
    assert data and len(data) % len(line) == 0 and data == line * (len(data) // len(line))


def test_broken_pipe_stops_forwarding(
    pipe: tuple[int, int], caplog: pytest.LogCaptureFixture
) -> None:
    r, w = pipe
    os.close(r)
    writer = FdWriter(w, "stderr")
    writer.put(b"nobody reads this\n")
    wait_until(lambda: "no longer forwarded" in caplog.text, 10, "the warning", interval=0.01)
    writer.put(b"dropped silently\n")
    assert writer.queued == 0
    writer.close()


def test_hub_forwards_only_routed_streams(pipe: tuple[int, int]) -> None:
    r, w = pipe
    hub = OutputHub(lambda topic, payload: None)
    hub.forwarder = OutputForwarder({"stdout": w})
    hub.route("a", stdout=True, stderr=True)
    hub.route("b", stdout=False, stderr=True)
    hub.feed("a", 1, "stdout", b"one\ntw")
    hub.feed("b", 2, "stdout", b"not forwarded\n")
    hub.feed("a", 1, "stderr", b"no stderr target here\n")
    hub.feed("a", 1, "stdout", b"o\nthree")
    hub.flush_pid("a", 1)
    assert read_until(r, b"one\ntwo\nthree") == b"one\ntwo\nthree"
    assert [line["data"] for line in hub.lines(["a", "b"], 10)] == [
        "one\n",
        "not forwarded\n",
        "no stderr target here\n",
        "two\n",
        "three",
    ]
    hub.route("a", stdout=False, stderr=False)
    hub.feed("a", 1, "stdout", b"off now\n")
    hub.route("b", stdout=True, stderr=True)
    hub.feed("b", 2, "stdout", b"on now\n")
    hub.forget("b")
    hub.feed("b", 2, "stdout", b"forgotten\n")
    assert read_until(r, b"on now\n") == b"on now\n"
    hub.forwarder.close()
    assert drained(r) == b""


def test_set_stream_class_switches_forwarding_off(
    tmp_path: Path, pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    r, w = pipe
    # the class is applied before the filename: a nameless FileStream's temp file lands here
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    # (the line is not asserted in the file: a graceful reload does not open a new stream
    # for the new processes yet, a watcher-layer matter)
    out_file = tmp_path / "out.log"
    cmd = f"{PY} -u -c \"import os, time; print('hello', os.getpid()); time.sleep(60)\""

    async def main() -> Any:
        arbiter = Arbiter(
            [{"name": "talk", "cmd": cmd, "graceful_timeout": 5}],
            endpoint=f"ipc://{tmp_path}/ctl",
            pubsub_endpoint=f"ipc://{tmp_path}/pub",
        )
        arbiter.output.forwarder = OutputForwarder({"stdout": w})
        await arbiter.start_async()
        try:
            (first,) = arbiter.get_watcher("talk").pids
            expected = f"hello {first}\n".encode()
            got = await asyncio.to_thread(read_until, r, expected)
            assert got == expected
            async with AsyncCircusClient(arbiter.endpoint, timeout=10) as client:
                await client.call(
                    "set",
                    name="talk",
                    options={
                        "stdout_stream.class": "FileStream",
                        "stdout_stream.filename": str(out_file),
                    },
                    waiting=True,
                )
            (second,) = arbiter.get_watcher("talk").pids
            assert second != first  # a stream change reloads

            def logged() -> bool:
                lines = arbiter.output.lines(["talk"], 10)
                return any(line["data"] == f"hello {second}\n" for line in lines)

            await async_wait_until(logged, 10, "the new process's line in the logs")
        finally:
            await arbiter.stop()
        return arbiter

    asyncio.run(main())
    # the new process's line reached the logs ring, not circusd's stdout
    assert drained(r) == b""
