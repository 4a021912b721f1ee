#!/usr/bin/env python3
"""What readiness and liveness probes cost circusd: its CPU with 1,000 processes probed
every 10 s, against the same 1,000 processes without probes, measured in one run.

Three rows, each a fresh ``circusd`` from the project venv with one watcher of N processes:

* ``none``: ``sleep 3600``, no health options (the reference);
* ``tcp``: ``sleep 3600`` with ``liveness = tcp://127.0.0.1:PORT`` every 10 s; the port is a
  listening socket of this script that accepts and closes (what is measured is circusd's side
  of the probe: connect, close, timers, tasks);
* ``notify``: a tiny C worker (built with ``cc`` in a temp dir; the row is skipped without a
  compiler) with ``readiness = notify`` and ``watchdog_sec = 10``: it sends ``READY=1`` once,
  then ``WATCHDOG=1`` every 5 s (half the period, as systemd advises) to its own
  ``$NOTIFY_SOCKET``.

Each row waits until N processes run (and, for notify, are ready), lets one full interval pass
so every process has been probed once, then reads circusd's user+system CPU over the window.

Usage: python bench/bench_health.py [--n 1000] [--interval 10] [--window 30]
       [--rows none,tcp,notify]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

WORKER_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int fd;
static struct sockaddr_un addr;

static void say(const char *text) {
    sendto(fd, text, strlen(text), 0, (struct sockaddr *)&addr, sizeof(addr));
}

int main(void) {
    const char *path = getenv("NOTIFY_SOCKET");
    const char *usec = getenv("WATCHDOG_USEC");
    if (!path || !usec) return 2;
    fd = socket(AF_UNIX, SOCK_DGRAM, 0);
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
    say("READY=1");
    long half = atol(usec) / 2;
    for (;;) {
        usleep(half);
        say("WATCHDOG=1");
    }
}
"""


def _cpu(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def _children(pid: int) -> int:
    try:
        return len(psutil.Process(pid).children())
    except psutil.Error:
        return 0


def _acceptor() -> tuple[socket.socket, threading.Event]:
    """A listening socket that accepts and closes every connection, in a thread of ours."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4096)
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return server, done


def _worker(tmp: Path) -> str | None:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    source = tmp / "worker.c"
    source.write_text(WORKER_C)
    binary = tmp / "notify-worker"
    subprocess.run([cc, "-O2", "-o", str(binary), str(source)], check=True)
    return str(binary)


def _ini(tmp: Path, n: int, cmd: str, extra: str) -> Path:
    path = tmp / "circus.ini"
    path.write_text(
        f"[circus]\nendpoint = ipc://{tmp}/ctl\npubsub_endpoint = ipc://{tmp}/pub\n"
        "statsd = false\n\n"
        f"[watcher:w]\ncmd = {cmd}\nnumprocesses = {n}\ngraceful_timeout = 5\n"
        f"{extra}\n"
    )
    return path


def run_row(row: str, n: int, interval: float, window: float) -> tuple[float, str]:
    tmp = Path(tempfile.mkdtemp(prefix="cbh-", dir="/tmp"))
    acceptor = None
    try:
        if row == "none":
            cmd, extra = "sleep 3600", ""
        elif row == "tcp":
            server, done = _acceptor()
            acceptor = (server, done)
            port = server.getsockname()[1]
            cmd = "sleep 3600"
            extra = f"liveness = tcp://127.0.0.1:{port}\nliveness_interval = {interval}\n"
        else:
            worker = _worker(tmp)
            if worker is None:
                return float("nan"), "skipped: no C compiler"
            cmd = worker
            extra = f"readiness = notify\nwatchdog_sec = {interval}\n"
        ini = _ini(tmp, n, cmd, extra)
        circusd = shutil.which("circusd", path=os.path.dirname(sys.executable))
        assert circusd, "circusd is not installed in this venv"
        log = open(tmp / "circusd.log", "wb")  # noqa: SIM115 - closed below
        daemon = subprocess.Popen([circusd, "--log-level", "warning", str(ini)], stdout=log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while _children(daemon.pid) < n:
                if time.monotonic() > deadline or daemon.poll() is not None:
                    raise RuntimeError(f"{row}: {n} processes not running; see {tmp}/circusd.log")
                time.sleep(0.2)
            time.sleep(interval + 1)  # every process probed (or fed) once
            if daemon.poll() is not None:
                raise RuntimeError(f"{row}: circusd ended; see {tmp}/circusd.log")
            before = _cpu(daemon.pid)
            time.sleep(window)
            used = _cpu(daemon.pid) - before
            alive = _children(daemon.pid)
            text = (tmp / "circusd.log").read_text(errors="replace")
            failed = text.count(" unhealthy: ") + text.count(" unready: ")
            note = f"{alive} processes at the end, {failed} health failures logged"
            return used / window * 100, note
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
            log.close()
    finally:
        if acceptor is not None:
            acceptor[1].set()
            acceptor[0].close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--window", type=float, default=30.0)
    parser.add_argument("--rows", default="none,tcp,notify")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"circusd CPU, {args.n} processes, probed every {args.interval:g} s, "
          f"over {args.window:g} s (load average {os.getloadavg()[0]:.2f})")  # fmt: skip
    results: dict[str, float] = {}
    for row in args.rows.split(","):
        cpu, note = run_row(row, args.n, args.interval, args.window)
        results[row] = cpu
        print(f"  {row:7s} {cpu:6.2f} % of one core   ({note})", flush=True)
    if "none" in results:
        for row, cpu in results.items():
            if row != "none":
                print(f"  {row} - none: {cpu - results['none']:+.2f} points of one core")
    return 0


if __name__ == "__main__":
    sys.exit(main())
