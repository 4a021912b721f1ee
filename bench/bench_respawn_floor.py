"""The floor of a respawn timed to a pub/sub event, for any Python + ZeroMQ manager on this box.

A minimal "daemon" (no circus code) keeps one ``sleep`` alive and publishes a ``spawn`` event
on an XPUB socket over ipc, as circusd does; this script SIGKILLs the child and times the
kill until the event arrives on its SUB socket (the bench's respawn row, without circusd's
bookkeeping). Four daemons, and the raw reference (``kill``, ``wait``, ``Popen`` in this
process, as ``run.py``'s raw row) alternated in one run:

- ``bare``: a blocking ``epoll`` on the child's pidfd, then ``waitid(P_PIDFD)``,
  ``posix_spawn`` (vfork + exec), ``pidfd_open`` and one ``send_multipart`` of a
  ``json.dumps``'d payload: nothing else between the kill and the event;
- ``bare -> pipe``: ``bare`` writing the event to a pipe this script polls, no ZeroMQ:
  what ZeroMQ's trip (the daemon's I/O thread, ipc, this side's I/O thread) adds;
- ``asyncio``: the same steps from an asyncio loop (the pidfd one ``add_reader``, the respawn
  and the publish done in that callback, no task): what the event loop itself adds;
- ``asyncio+pipes``: as ``asyncio``, the child's stdout and stderr on pipes the loop watches
  too (circusd captures them): the loop wakes at their EOF first, the pidfd comes after.

    python bench/bench_respawn_floor.py --kills 300

Run it under ``flock /tmp/bench.lock`` beside ``run.py --only respawn`` to put circusd's
figure next to the floor.
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq

SLEEP = ["/usr/bin/sleep", "3600"]
GAP = 0.0  # seconds between a spawn event and the next kill (--gap)

_DAEMON = r"""
import asyncio, json, os, select, signal, sys, time
import zmq
mode, endpoint = sys.argv[1], sys.argv[2]
if mode == "bare-pipe":  # the event on this process's stdout (a pipe the bench polls)
    class _Pipe:
        def send_multipart(self, parts):
            os.write(1, parts[1] + b"\n")
    pub = _Pipe()
    mode = "bare"
else:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.XPUB); pub.linger = 0; pub.bind(endpoint)
    pub.recv()  # the subscription notice: the bench is listening
SLEEP = ["/usr/bin/sleep", "3600"]
pipes = mode == "asyncio+pipes"
devnull = os.open(os.devnull, os.O_RDWR)
state = {}

def spawn():
    actions = [(os.POSIX_SPAWN_DUP2, devnull, 0)]
    if pipes:
        r1, w1 = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        r2, w2 = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        actions += [(os.POSIX_SPAWN_DUP2, w1, 1), (os.POSIX_SPAWN_DUP2, w2, 2)]
    else:
        actions += [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    pid = os.posix_spawn(SLEEP[0], SLEEP, os.environ, file_actions=actions)
    fd = os.pidfd_open(pid)
    out = ()
    if pipes:
        os.close(w1); os.close(w2)
        out = (r1, r2)
    event = json.dumps({"process_pid": pid, "time": time.time()}).encode()
    pub.send_multipart([b"watcher.w.spawn", event])
    return pid, fd, out

def reap(fd):
    os.waitid(os.P_PIDFD, fd, os.WEXITED)
    os.close(fd)

if mode == "bare":
    ep = select.epoll()
    pid, fd, _ = spawn()
    while True:
        ep.register(fd, select.EPOLLIN)
        ep.poll()
        ep.unregister(fd)
        reap(fd)
        pid, fd, _ = spawn()
else:
    loop = asyncio.new_event_loop()

    def on_pipe(r):
        if not os.read(r, 65536):
            loop.remove_reader(r)
            os.close(r)

    def watch(child):
        pid, fd, out = child
        loop.add_reader(fd, on_exit, fd)
        for r in out:
            loop.add_reader(r, on_pipe, r)

    def on_exit(fd):
        loop.remove_reader(fd)
        reap(fd)
        watch(spawn())

    watch(spawn())
    loop.run_forever()
"""


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3


def _raw(kills: int) -> list[float]:
    took = []
    proc = subprocess.Popen(SLEEP, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    for _ in range(kills):
        t0 = time.perf_counter()
        proc.kill()
        proc.wait()
        proc = subprocess.Popen(SLEEP, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        took.append(time.perf_counter() - t0)
        time.sleep(GAP)
    proc.kill()
    proc.wait()
    return took


def _daemon_pipe(kills: int, wd: Path) -> list[float]:
    """``bare`` with the event written to a pipe instead of ZeroMQ: what ZeroMQ's trip adds."""
    script = wd / "floor_daemon.py"
    script.write_text(_DAEMON)
    daemon = subprocess.Popen(
        [sys.executable, str(script), "bare-pipe", "-"], stdout=subprocess.PIPE, bufsize=0
    )
    assert daemon.stdout is not None
    out = daemon.stdout.fileno()
    poller = select.poll()
    poller.register(out, select.POLLIN)
    took: list[float] = []
    pid = 0

    def next_pid() -> int:
        if not poller.poll(10_000):
            raise SystemExit("bare-pipe: no spawn event within 10 s")
        return int(json.loads(os.read(out, 4096).splitlines()[-1])["process_pid"])

    try:
        pid = next_pid()
        for i in range(kills + 1):
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            new = next_pid()
            if i:
                took.append(time.perf_counter() - t0)
            pid = new
            time.sleep(GAP)
    finally:
        daemon.kill()
        daemon.wait()
        daemon.stdout.close()
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return took


def _daemon(mode: str, kills: int, wd: Path) -> list[float]:
    endpoint = f"ipc://{wd}/{mode}.sock"
    script = wd / "floor_daemon.py"
    script.write_text(_DAEMON)
    daemon = subprocess.Popen([sys.executable, str(script), mode, endpoint])
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.linger = 0
    sub.subscribe(b"watcher.w.")
    took: list[float] = []
    try:
        deadline = time.monotonic() + 30
        while not (wd / f"{mode}.sock").exists():
            if time.monotonic() > deadline:
                raise SystemExit(f"{mode}: the daemon never bound")
            time.sleep(0.01)
        sub.connect(endpoint)
        if not sub.poll(30_000):
            raise SystemExit(f"{mode}: no first spawn event")
        pid = json.loads(sub.recv_multipart()[1])["process_pid"]
        for i in range(kills + 1):
            t0 = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            if not sub.poll(10_000):
                raise SystemExit(f"{mode}: no spawn event within 10 s")
            t1 = time.perf_counter()
            pid = json.loads(sub.recv_multipart()[1])["process_pid"]
            if i:  # the first is a warm-up
                took.append(t1 - t0)
            time.sleep(GAP)
    finally:
        daemon.kill()
        daemon.wait()
        try:
            if "pid" in locals():
                os.kill(pid, signal.SIGKILL)  # the daemon's last child, now ours to lose
        except ProcessLookupError:
            pass
        sub.close()
        ctx.term()
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--kills", type=int, default=300)
    ap.add_argument(
        "--rounds", type=int, default=2, help="each variant this many times, alternated"
    )
    ap.add_argument(
        "--gap",
        type=float,
        default=0.0,
        help="ms between a spawn event and the next kill (run.py's row: none; idle vCPUs "
        "sleep deeper and wake later)",
    )
    args = ap.parse_args()
    global GAP
    GAP = args.gap / 1000
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="respawn-floor-") as tmp:
        for _ in range(args.rounds):
            results.setdefault("raw kill-wait-Popen", []).append(_median_ms(_raw(args.kills)))
            took = _daemon_pipe(args.kills, Path(tmp))
            results.setdefault("bare -> pipe", []).append(_median_ms(took))
            for mode in ("bare", "asyncio", "asyncio+pipes"):
                took = _daemon(mode, args.kills, Path(tmp))
                results.setdefault(f"{mode} -> SUB", []).append(_median_ms(took))
    raw = statistics.median(results["raw kill-wait-Popen"])
    print(f"median of {args.kills} kills per round; load average {os.getloadavg()[0]:.1f}")
    for name, values in results.items():
        med = statistics.median(values)
        each = " ".join(f"{v:.3f}" for v in values)
        print(f"{name:22s} {med:7.3f} ms  ({each})  {med / raw:5.2f}x raw")


if __name__ == "__main__":
    main()
