"""A line half read by the old image is completed by the new one, never cut in two: in a
time-stamped file stream (held back by the stream) and in output forwarded to circusd's own
stdout (held back by the output hub)."""

from __future__ import annotations

import fcntl
import os
import struct
import sys
import termios
from pathlib import Path

import pytest
from circus.process.testing import wait_until

HALF = """\
import os, sys, time
flag = sys.argv[1]
os.write(1, b"first-half")
open(flag + ".%d" % os.getpid(), "w").close()  # written
while not os.path.exists(flag):
    time.sleep(0.01)
os.write(1, b"+second-half\\n")
time.sleep(600)
"""


def _config(tmp_path: Path) -> str:
    script = tmp_path / "half.py"
    script.write_text(HALF)
    return f"""
[watcher:stamped]
cmd = {sys.executable} {script} {tmp_path}/go
stdout_stream.class = FileStream
stdout_stream.filename = {tmp_path}/stamped.log
stdout_stream.time_format = %H:%M:%S
graceful_timeout = 2

[watcher:forwarded]
cmd = {sys.executable} {script} {tmp_path}/go
graceful_timeout = 2
"""


@pytest.mark.slow
def test_a_half_line_is_completed_by_the_new_image(circusd, tmp_path) -> None:
    daemon = circusd(_config(tmp_path))
    wait_until(lambda: daemon.pids("stamped") and daemon.pids("forwarded"), 30, "both up")
    pids = (daemon.pids("stamped"), daemon.pids("forwarded"))
    # both halves are read by the old image (the `logs` ring shows nothing: no newline yet)
    wait_until(lambda: _read_first_half(daemon, tmp_path), 30, "the first halves read")
    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    wait_until(lambda: "generation 1 serving" in daemon.output(), 60, "the new image serving")
    (tmp_path / "go").touch()
    stamped = tmp_path / "stamped.log"
    wait_until(lambda: stamped.exists() and b"\n" in stamped.read_bytes(), 30, "stamped line")
    wait_until(lambda: "second-half" in daemon.output(), 30, "forwarded line")
    lines = stamped.read_text().splitlines()
    assert len(lines) == 1 and lines[0].endswith("| first-half+second-half"), lines
    forwarded = [line for line in daemon.output().splitlines() if "first-half" in line]
    assert forwarded == ["first-half+second-half"], forwarded
    assert (daemon.pids("stamped"), daemon.pids("forwarded")) == pids


def _pending(pid: int) -> int:
    """Bytes waiting in the pipe of ``pid``'s stdout (a read end opened through /proc)."""
    fd = os.open(f"/proc/{pid}/fd/1", os.O_RDONLY | os.O_NONBLOCK)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    finally:
        os.close(fd)


def _read_first_half(daemon, tmp_path: Path) -> bool:
    """Whether every process wrote its first half and circusd read it (the pipe is empty):
    the old image then holds the unterminated line."""
    pids = [pid for name in ("stamped", "forwarded") for pid in daemon.pids(name)]
    return all((tmp_path / f"go.{pid}").exists() and _pending(pid) == 0 for pid in pids)
