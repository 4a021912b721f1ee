"""Hostile output against a real ``circusd``: one child writing a flood of bytes to stdout.

:func:`flood_run` starts circusd with one watcher whose process writes ``nbytes`` built from a
1 MiB pattern as fast as the pipe takes them, then sleeps. Meanwhile it keeps asking
``status`` (latencies recorded) and samples circusd's RSS, until the watcher's log file holds
every byte; then it compares size and SHA-256 with what was written. Shared by
``test_hostile_output.py`` and ``make soak``.
"""

from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
from circus.ctl import CircusClient
from circus.ctl.errors import CtlError
from circus.process.testing import wait_until

PY = sys.executable
CIRCUSD = str(Path(sys.executable).with_name("circusd"))
BLOCK = 2**20

WRITER = r"""
import os, sys, time
pattern = open(sys.argv[1], "rb").read()
total = int(sys.argv[2])
out = sys.stdout.buffer
chunk = pattern * 4
left = total
while left >= len(chunk):
    out.write(chunk)
    left -= len(chunk)
while left:
    piece = pattern[:left]
    out.write(piece)
    left -= len(piece)
out.flush()
time.sleep(3600)
"""


def make_pattern(kind: str, seed: int = 7) -> bytes:
    """1 MiB of ``kind``: ``binary`` (random bytes), ``noline`` (random, no newline at all),
    ``text`` (lines of printable ASCII)."""
    rng = random.Random(seed)
    if kind == "text":
        lines = []
        size = 0
        while size < BLOCK:
            line = f"{size:08d} " + "abcdefghij" * rng.randint(0, 30) + "\n"
            lines.append(line)
            size += len(line)
        return "".join(lines).encode()[:BLOCK]
    data = rng.randbytes(BLOCK)
    if kind == "noline":
        data = data.replace(b"\n", b"N")
    return data


def expected_digest(pattern: bytes, total: int) -> str:
    """SHA-256 of what the writer sends: ``pattern`` repeated up to ``total`` bytes."""
    digest = hashlib.sha256()
    full, rest = divmod(total, len(pattern))
    for _ in range(full):
        digest.update(pattern)
    digest.update(pattern[:rest])
    return digest.hexdigest()


def file_digest(path: Path) -> str:
    """SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(4 * BLOCK):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class FloodReport:
    """What one flood measured, and what went wrong (``problems``)."""

    kind: str
    nbytes: int
    seconds: float = 0.0
    written: int = 0
    rss_before: int = 0
    rss_max: int = 0
    latencies: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def median_latency(self) -> float:
        """Median ``status`` latency during the flood (seconds)."""
        lat = sorted(self.latencies)
        return lat[len(lat) // 2] if lat else float("inf")

    def summary(self) -> str:
        """One line of figures."""
        lat = sorted(self.latencies) or [float("nan")]
        return (
            f"flood {self.kind} {self.nbytes / 2**20:.0f} MB in {self.seconds:.1f} s "
            f"({self.nbytes / 2**20 / max(self.seconds, 1e-9):.0f} MB/s), log file "
            f"{self.written} bytes; status during flood: {len(self.latencies)} answered, "
            f"median {self.median_latency * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms; "
            f"circusd RSS {self.rss_before / 2**20:.1f} MB -> max {self.rss_max / 2**20:.1f} MB"
        )


def flood_run(
    workdir: Path, nbytes: int, kind: str = "text", timeout: float = 300.0
) -> FloodReport:
    """Run one flood of ``nbytes`` of ``kind`` output; the report (problems listed in it)."""
    report = FloodReport(kind, nbytes)
    pattern = make_pattern(kind)
    (workdir / "pattern.bin").write_bytes(pattern)
    (workdir / "writer.py").write_text(WRITER)
    out = workdir / "flood.out"
    endpoint = f"ipc://{workdir}/ctl"
    config = workdir / "circus.ini"
    config.write_text(
        f"[circus]\nendpoint = {endpoint}\npubsub_endpoint = ipc://{workdir}/pub\n"
        "loglevel = info\n\n[watcher:flood]\n"
        f"cmd = {PY} -S {workdir}/writer.py {workdir}/pattern.bin {nbytes}\n"
        "autostart = false\nrespawn = false\ngraceful_timeout = 1\n"
        f"stdout_stream.class = FileStream\nstdout_stream.filename = {out}\n"
    )
    with open(workdir / "circusd.log", "ab") as log:
        proc = subprocess.Popen(
            [CIRCUSD, str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=workdir
        )
    try:
        daemon = psutil.Process(proc.pid)
        with CircusClient(endpoint, timeout=30, check=False) as client:
            _wait_answer(client, proc)
            client.call("status")
            report.rss_before = report.rss_max = daemon.memory_info().rss
            began = time.monotonic()
            answer = client.call("start", name="flood")
            if answer.get("status") != "ok":
                report.problems.append(f"start: {answer}")
                return report
            deadline = began + timeout
            while _size(out) < nbytes and time.monotonic() < deadline:
                t = time.monotonic()
                answer = client.call("status", name="flood")
                report.latencies.append(time.monotonic() - t)
                if answer.get("status") != "active":
                    report.problems.append(f"status during the flood: {answer}")
                report.rss_max = max(report.rss_max, daemon.memory_info().rss)
                time.sleep(0.02)  # pacing the probe, not synchronising on anything
            report.seconds = time.monotonic() - began
            report.rss_max = max(report.rss_max, daemon.memory_info().rss)
            report.written = _size(out)
            if report.written != nbytes:
                report.problems.append(f"log file has {report.written} of {nbytes} bytes")
            elif file_digest(out) != expected_digest(pattern, nbytes):
                report.problems.append("log file content differs from what was written")
            # the daemon answers quickly once the flood is over too
            t = time.monotonic()
            client.call("status")
            report.latencies.append(time.monotonic() - t)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait(10)
        if rc != 0:
            report.problems.append(f"circusd exited {rc}")
        out.unlink(missing_ok=True)  # up to a GiB, measured above: not left in pytest's tree
    return report


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0


def _wait_answer(client: CircusClient, proc: subprocess.Popen[bytes]) -> None:
    def answers() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"circusd exited {proc.returncode}")
        try:
            client.timeout = 1
            return client.call("numwatchers").get("status") == "ok"
        except CtlError:
            return False

    wait_until(answers, 30, "circusd to answer")
    client.timeout = 30
