#!/usr/bin/env python3
"""A thousand chatty children: N processes writing short numbered lines steadily, their
stdout sent to a file by each manager, and (ours) followed live on the ``output.*`` topic.

Per peer (ours, upstream Circus 0.19, Supervisor 4.3), one fresh daemon:

* N copies of a tiny C writer (built with ``cc`` in the work dir): each waits on a FIFO so all
  start together, then for ``--seconds`` writes ``--rate``/N bytes per second of
  ``--line``-byte lines ``"<pid> <seq> xxx...\\n"``, one ``write()`` per 10 ms tick (whole
  lines, like a stdio buffer flushed on a timer; ``--cut`` splits each tick's buffer at an odd
  offset so lines straddle writes, as a block-buffered program's do), then records how many
  lines it wrote in ``counts/<pid>`` and exits;
* circus flavours: ``stdout_stream.class = FileStream`` into one file for the watcher;
  Supervisor: ``stdout_logfile`` per process (``%(process_num)d``, its users' layout), no
  rotation;
* while they write, a thread times ``status`` (circus) / ``supervisor.getState()`` every
  20 ms on its own connection; for ``ours+follow`` (ours again, followed) a SUB socket follows
  ``output.<watcher>.stdout`` (what ``circusctl logs -f`` reads) and checks every line it gets;
  ``ours+own-autogroup`` runs circusd in a session of its own (``setsid``) whose scheduling
  autogroup gets nice -10 (root only), to see what the CPU scheduler's share does to ``status``.

Checked afterwards: every line in the files parses, belongs to a writer, and each writer's
sequence is complete (lost = written - distinct seen, torn = lines that do not parse,
duplicated = seen twice). CPU per MB is the daemon's user+system CPU from the go signal until
every written byte is in the files, divided by the MB written (10^6 bytes); ``wait s`` is
the time its threads spent runnable but waiting for a CPU in that window (``schedstat``).

Usage: python bench/bench_chatty.py [--peers ours,ours+follow,circus,supervisor] [--n 1000]
       [--rate 50] [--seconds 10] [--line 100] [--cut] [--client-autogroup]
Heavy: run it under ``flock /tmp/bench.lock``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import zmq  # noqa: E402
from benchkit.backends import ProgramSpec, make_backend  # noqa: E402
from benchkit.procs import cpu_seconds, raise_nofile  # noqa: E402

WRITER_C = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int write_all(const char *p, size_t n) {
    while (n) {
        ssize_t w = write(1, p, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        p += w; n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 7) return 2;
    double rate = atof(argv[1]), secs = atof(argv[2]);
    int len = atoi(argv[3]), cut = atoi(argv[6]);
    int fd = open(argv[4], O_RDONLY | O_NONBLOCK);
    if (fd >= 0) {  /* wait for the bench to close its end: every writer starts at once */
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        char b;
        while (read(fd, &b, 1) > 0) {}
        close(fd);
    }
    static char buf[1 << 16];
    int pid = (int)getpid();
    long sent = 0;
    struct timespec t0, now, tick = {0, 10 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9;
        if (el >= secs) break;
        long due = (long)(el * rate / len) + 1;
        size_t n = 0;
        while (sent < due && n + (size_t)len <= sizeof buf) {
            int h = snprintf(buf + n, (size_t)len, "%d %ld ", pid, sent);
            memset(buf + n + h, 'x', (size_t)(len - h - 1));
            buf[n + len - 1] = '\n';
            n += (size_t)len;
            sent++;
        }
        if (n) {
            size_t first = cut ? (size_t)(len / 2 + 7) % n : n;
            if (first == 0) first = n;
            if (write_all(buf, first) < 0 || write_all(buf + first, n - first) < 0) break;
        }
        nanosleep(&tick, NULL);
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%d", argv[5], pid);
    FILE *f = fopen(path, "w");
    if (f) { fprintf(f, "%ld\n", sent); fclose(f); }
    return 0;
}
"""


def build_writer(workdir: Path) -> Path:
    """Compile the writer into ``workdir``."""
    src = workdir / "chatty.c"
    src.write_text(WRITER_C)
    exe = workdir / "chatty"
    subprocess.run(["cc", "-O2", "-o", str(exe), str(src)], check=True)
    return exe


class Checker:
    """Checks lines ``"<pid> <seq> x...\\n"``: per-writer sets of sequence numbers."""

    def __init__(self, line: int) -> None:
        self.line = line
        self.seen: dict[int, set[int]] = {}
        self.torn = 0
        self.dups = 0
        self.examples: list[bytes] = []

    def feed_block(self, block: bytes) -> None:
        """Check every line of a block of complete lines (a trailing piece counts as torn)."""
        parts = block.split(b"\n")
        tail = parts.pop()
        for part in parts:
            self.check(part)
        if tail:
            self._bad(tail)

    def _bad(self, line: bytes) -> None:
        self.torn += 1
        if len(self.examples) < 3:
            self.examples.append(line[:120])

    def check(self, line: bytes) -> None:
        """One line without its newline."""
        if len(line) != self.line - 1:
            self._bad(line)
            return
        head = line.split(b" ", 2)
        if len(head) != 3 or not head[0].isdigit() or not head[1].isdigit():
            self._bad(line)
            return
        if head[2].strip(b"x"):
            self._bad(line)
            return
        seqs = self.seen.setdefault(int(head[0]), set())
        seq = int(head[1])
        if seq in seqs:
            self.dups += 1
        else:
            seqs.add(seq)

    def verdict(self, written: dict[int, int]) -> dict[str, Any]:
        """Lost/torn/duplicated against what each writer says it wrote."""
        lost = 0
        strangers = 0
        for pid, count in written.items():
            got = self.seen.get(pid, set())
            lost += count - len([s for s in got if s < count])
            strangers += len([s for s in got if s >= count])
        strangers += sum(len(v) for p, v in self.seen.items() if p not in written)
        return {
            "lines_written": sum(written.values()),
            "lost": lost,
            "torn": self.torn,
            "duplicated": self.dups,
            "unexpected": strangers,
            "torn_examples": [e.decode(errors="replace") for e in self.examples],
        }


class StatusSampler(threading.Thread):
    """Times one cheap status request every ``period`` s on its own connection."""

    def __init__(self, call: Any, period: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.period = period
        self.rtts: list[float] = []
        self.errors: list[str] = []
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            t0 = time.perf_counter()
            try:
                self.call()
            except Exception as exc:  # noqa: BLE001 - counted and reported
                self.errors.append(repr(exc)[:200])
            self.rtts.append(time.perf_counter() - t0)
            self.halt.wait(self.period)

    def summary(self) -> dict[str, Any]:
        """Count, median, p99, max (ms) and how many took over 10 ms."""
        r = sorted(self.rtts)
        if not r:
            return {"samples": 0}
        return {
            "samples": len(r),
            "median_ms": r[len(r) // 2] * 1e3,
            "p99_ms": r[min(len(r) - 1, int(len(r) * 0.99))] * 1e3,
            "max_ms": r[-1] * 1e3,
            "over_10ms": sum(1 for x in r if x > 0.010),
            "errors": len(self.errors),
        }


def circus_status_call(control: str) -> Any:
    """A function sending ``status`` over its own DEALER and waiting for the answer."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    sock.connect(control)

    def call() -> None:
        mid = uuid.uuid4().hex
        sock.send(json.dumps({"command": "status", "properties": {}, "id": mid}).encode())
        while True:
            if not sock.poll(5000):
                raise TimeoutError("status: no answer within 5 s")
            if json.loads(sock.recv()).get("id") == mid:
                return

    call.close = sock.close  # type: ignore[attr-defined]
    return call


def supervisor_status_call(sock_path: Path) -> Any:
    """A function calling ``supervisor.getState()`` over its own connection."""
    import xmlrpc.client

    from benchkit.backends.supervisor import UnixTransport

    proxy = xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport(str(sock_path)))

    def call() -> None:
        proxy.supervisor.getState()

    call.close = lambda: proxy("close")()  # type: ignore[attr-defined]
    return call


class Follower(threading.Thread):
    """Subscribes to ``output.<watcher>.stdout`` and checks every line it receives."""

    def __init__(self, pubsub: str, watcher: str, line: int) -> None:
        super().__init__(daemon=True)
        self.checker = Checker(line)
        self.messages = 0
        self.halt = threading.Event()
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.linger = 0
        self.sock.rcvhwm = 0
        self.sock.subscribe(f"output.{watcher}.stdout".encode())
        self.sock.connect(pubsub)

    def run(self) -> None:
        while not self.halt.is_set() or self.sock.poll(0):
            if not self.sock.poll(100):
                continue
            _topic, payload = self.sock.recv_multipart()
            self.messages += 1
            self.checker.feed_block(json.loads(payload)["data"].encode())


def sched_wait(pid: int) -> float:
    """Seconds the daemon's threads have waited on a run queue (``schedstat``), summed."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass
    return total / 1e9


def file_bytes(paths: list[Path]) -> int:
    total = 0
    for p in paths:
        try:
            total += p.stat().st_size
        except FileNotFoundError:
            pass
    return total


def run_peer(peer: str, args: argparse.Namespace, writer: Path) -> dict[str, Any]:
    """One daemon, N writers, the checks; returns the row (``ours+follow``: ours, followed)."""
    name, _, extra = peer.partition("+")
    workdir = Path(tempfile.mkdtemp(prefix=f"ch-{name}-", dir="/tmp"))
    row: dict[str, Any] = {"peer": peer}
    try:
        counts = workdir / "counts"
        counts.mkdir()
        fifo = workdir / "go"
        os.mkfifo(fifo)
        go_fd = os.open(fifo, os.O_RDWR)  # held open: writers block until it is closed
        outdir = workdir / "out"
        outdir.mkdir()
        if name == "supervisor":
            stdout_file = outdir / "chatty-%(process_num)d.log"
        else:
            stdout_file = outdir / "chatty.log"
        per_writer = args.rate * 1e6 / args.n
        spec = ProgramSpec(
            name="chatty",
            argv=(
                str(writer),
                f"{per_writer:.1f}",
                str(args.seconds),
                str(args.line),
                str(fifo),
                str(counts),
                "1" if args.cut else "0",
            ),
            comm="chatty",
            numprocesses=args.n,
            respawn=False,
            stdout_file=stdout_file,
        )
        backend = make_backend(name)
        backend.prepare()
        if extra == "own-autogroup":
            # circusd in a session (so a scheduling autogroup) of its own, weighted as nice -10
            wrapper = workdir / "circusd"
            real = Path(sys.executable).parent / "circusd"
            wrapper.write_text(f'#!/bin/sh\nexec setsid {real} "$@"\n')
            wrapper.chmod(0o755)
            from benchkit.backends.circus import CircusSession

            session = CircusSession(spec, workdir, str(wrapper), str(real.parent / "circusctl"))
            with open(f"/proc/{session.daemon_pid}/autogroup", "w") as f:
                f.write("-10")
        else:
            session = backend.open(spec, workdir)
        sampler = follower = None
        try:
            session.start(wait=True)
            session.track()
            if name == "supervisor":
                call = supervisor_status_call(workdir / "sup.sock")
            else:
                call = circus_status_call(session.control)  # type: ignore[attr-defined]
                if extra == "follow":
                    follower = Follower(session.pubsub, "chatty", args.line)  # type: ignore[attr-defined]
                    follower.start()
                    time.sleep(0.5)  # the subscription reaches the daemon (handshake, XPUB notice)
            sampler = StatusSampler(call)
            daemon = session.daemon_pid
            assert daemon is not None
            sampler.start()
            cpu0 = cpu_seconds(daemon)
            wait0 = sched_wait(daemon)
            t0 = time.perf_counter()
            os.close(go_fd)
            go_fd = -1
            # Wait for every writer's count, then for the files to hold all they wrote.
            deadline = t0 + args.seconds + 300
            while len(os.listdir(counts)) < args.n and time.perf_counter() < deadline:
                time.sleep(0.05)
            written = {
                int(p.name): int(p.read_text() or 0) for p in counts.iterdir() if p.name.isdigit()
            }
            expected = sum(written.values()) * args.line
            paths = lambda: list(outdir.iterdir())  # noqa: E731
            while file_bytes(paths()) < expected and time.perf_counter() < deadline:
                time.sleep(0.02)
            t1 = time.perf_counter()
            cpu1 = cpu_seconds(daemon)
            wait1 = sched_wait(daemon)
            sampler.halt.set()
            sampler.join()
            call.close()
            if follower is not None:
                flush_deadline = time.perf_counter() + 10
                # stop once the follower has been idle a while (the daemon publishes as it reads)
                last = -1
                while time.perf_counter() < flush_deadline and follower.messages != last:
                    last = follower.messages
                    time.sleep(0.5)
                follower.halt.set()
                follower.join()
                follower.sock.close()
            mb = expected / 1e6
            cpu = cpu1 - cpu0
            row.update(
                writers_reported=len(written),
                mb_written=mb,
                wall_s=t1 - t0,
                mb_per_s=mb / (t1 - t0),
                daemon_cpu_s=cpu,
                daemon_runq_wait_s=wait1 - wait0,
                cpu_ms_per_mb=cpu * 1e3 / mb if mb else None,
                status=sampler.summary(),
            )
            checker = Checker(args.line)
            for p in paths():
                with open(p, "rb") as f:
                    while True:
                        block = f.read(1 << 24)
                        if not block:
                            break
                        cut = block.rfind(b"\n") + 1
                        rest = block[cut:]
                        if rest:
                            block = block[:cut] + rest + f.readline()
                        checker.feed_block(block)
            row["files"] = checker.verdict(written)
            row["files"]["bytes"] = file_bytes(paths())
            if follower is not None:
                row["follower"] = follower.checker.verdict(written)
                row["follower"]["messages"] = follower.messages
        finally:
            if go_fd >= 0:
                os.close(go_fd)
            session.close()
    except Exception as exc:  # noqa: BLE001 - one peer failing must not lose the others
        row["error"] = repr(exc)[:500]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return row


def render(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'peer':<11} {'MB':>6} {'MB/s':>6} {'CPU s':>6} {'wait s':>6} {'CPU ms/MB':>9} "
        f"{'lost':>7} {'torn':>6} {'follow lost':>11} {'follow torn':>11} "
        f"{'status med/p99/max ms':>22} {'>10ms':>6}"
    )
    out = [head, "-" * len(head)]
    for r in rows:
        if "error" in r:
            out.append(f"{r['peer']:<11} FAIL {r['error']}")
            continue
        s = r["status"]
        fl = r.get("follower")
        out.append(
            f"{r['peer']:<11} {r['mb_written']:>6.0f} {r['mb_per_s']:>6.1f} "
            f"{r['daemon_cpu_s']:>6.2f} {r['daemon_runq_wait_s']:>6.2f} {r['cpu_ms_per_mb']:>9.1f} "
            f"{r['files']['lost']:>7} {r['files']['torn']:>6} "
            f"{(fl['lost'] if fl else '-'):>11} {(fl['torn'] if fl else '-'):>11} "
            f"{s['median_ms']:>6.2f}/{s['p99_ms']:.2f}/{s['max_ms']:.1f}".rjust(22 + 0)
            + f" {s['over_10ms']:>3}/{s['samples']}"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peers", default="ours,ours+follow,circus,supervisor")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=50.0, help="MB/s written by all writers")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--line", type=int, default=100, help="bytes per line, newline included")
    ap.add_argument("--cut", action="store_true", help="split each write mid-line")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument(
        "--client-autogroup",
        action="store_true",
        help="run this bench (the status client) in an autogroup of its own at nice -10 (root)",
    )
    args = ap.parse_args()
    raise_nofile()
    if args.client_autogroup:
        # The client's own wake-ups must not be what a round trip measures: 1,000 writers,
        # each a session leader, are 1,000 scheduling groups beside the bench's.
        os.setsid()
        with open("/proc/self/autogroup", "w") as f:
            f.write("-10")
    build = Path(tempfile.mkdtemp(prefix="ch-build-", dir="/tmp"))
    try:
        writer = build_writer(build)
        rows = []
        for peer in args.peers.split(","):
            rows.append(run_peer(peer, args, writer))
            print(json.dumps(rows[-1]), flush=True)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    print()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  {platform.node()}  "
        f"{os.cpu_count()} cpus  load {os.getloadavg()[0]:.1f}  N={args.n} "
        f"rate={args.rate:g} MB/s  {args.seconds:g} s  line={args.line} B"
        f"{'  cut' if args.cut else ''}{'  client-autogroup' if args.client_autogroup else ''}"
    )
    print(render(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
