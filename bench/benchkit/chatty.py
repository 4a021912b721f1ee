"""A thousand chatty children, the measurement itself (``bench/bench_chatty.py`` is its
command line; ``make bench``'s chatty row runs it too): N tiny C writers (built with ``cc``),
their stdout into a file through the manager, lines checked, daemon CPU and ``status`` round
trips timed during the flood. See ``bench/bench_chatty.py`` for what is measured and how.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import zmq

from .backends import ProgramSpec, make_backend
from .procs import cpu_seconds

__all__ = ["NO_CC", "Checker", "build_writer", "run_peer", "shared_writer"]

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


NO_CC = "no C compiler (cc) to build the chatty writers"

_built: list[Path] = []


def shared_writer() -> Path | None:
    """The writer, built once per bench process (removed at exit); None without ``cc``."""
    if _built:
        return _built[0]
    if shutil.which("cc") is None:
        return None
    build = Path(tempfile.mkdtemp(prefix="ch-build-", dir="/tmp"))
    atexit.register(shutil.rmtree, build, True)
    try:
        _built.append(build_writer(build))
    except (OSError, subprocess.SubprocessError):
        return None
    return _built[0]


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


def _children_cpu(pid: int) -> float:
    """CPU seconds of the children ``pid`` has reaped (cutime + cstime), once it has reaped
    them all (5 s at most: the figure is low if some are left)."""
    deadline = time.perf_counter() + 5
    while time.perf_counter() < deadline:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
            if not any(Path(f"/proc/{pid}/task/{t}/children").read_text().split() for t in tasks):
                break
        except OSError:
            break
        time.sleep(0.05)
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    fields = raw[raw.rindex(b")") + 2 :].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def _host_cpu() -> tuple[int, int]:
    """The machine's busy and total CPU ticks so far (``/proc/stat``)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, sum(ticks)


def _run_delay(path: str) -> float:
    """Seconds a thread has waited on a run queue (its ``schedstat``), 0 if unreadable."""
    try:
        with open(path) as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


class DaemonWatch(threading.Thread):
    """Every ~2 ms: the daemon's main thread's run-queue wait so far, and its state and
    ``wchan`` when it sleeps uninterruptibly (D: a write throttled, a journal wait)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, float]] = []
        self.dstates: dict[str, int] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        sched = f"/proc/{self.pid}/task/{self.pid}/schedstat"
        stat = f"/proc/{self.pid}/task/{self.pid}/stat"
        while not self.halt.wait(0.002):
            self.samples.append((time.perf_counter(), _run_delay(sched)))
            try:
                with open(stat, "rb") as f:
                    raw = f.read()
                if raw[raw.rindex(b")") + 2 : raw.rindex(b")") + 3] == b"D":
                    with open(f"/proc/{self.pid}/task/{self.pid}/stack") as f:
                        frames = [ln.split()[-1] for ln in f.read().splitlines()[:4]]
                    key = "<".join(frames)
                    self.dstates[key] = self.dstates.get(key, 0) + 1
            except (OSError, ValueError):
                pass

    def wait_between(self, t0: float, t1: float) -> float:
        """The main thread's run-queue wait between two instants (nearest samples)."""
        before = [w for t, w in self.samples if t <= t0]
        after = [w for t, w in self.samples if t >= t1]
        if not before or not after:
            return float("nan")
        return after[0] - before[-1]


class StatusSampler(threading.Thread):
    """Times one cheap status request every ``period`` s on its own connection."""

    def __init__(self, call: Any, period: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.call = call
        self.period = period
        self.rtts: list[float] = []
        self.errors: list[str] = []
        # id, sent, answered (monotonic), this thread's run-queue wait meanwhile
        self.calls: list[tuple[str, float, float, float]] = []
        self.halt = threading.Event()

    def run(self) -> None:
        stat = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        while not self.halt.is_set():
            w0 = _run_delay(stat)
            t0 = time.perf_counter()
            mid = None
            try:
                mid = self.call()
            except Exception as exc:  # noqa: BLE001 - counted and reported
                self.errors.append(repr(exc)[:200])
            t1 = time.perf_counter()
            self.rtts.append(t1 - t0)
            if isinstance(mid, str):
                self.calls.append((mid, t0, t1, _run_delay(stat) - w0))
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

    def call() -> str:
        mid = uuid.uuid4().hex
        sock.send(json.dumps({"command": "status", "properties": {}, "id": mid}).encode())
        while True:
            if not sock.poll(5000):
                raise TimeoutError("status: no answer within 5 s")
            if json.loads(sock.recv()).get("id") == mid:
                return mid

    call.close = sock.close  # type: ignore[attr-defined]
    return call


def supervisor_status_call(sock_path: Path) -> Any:
    """A function calling ``supervisor.getState()`` over its own connection."""
    import xmlrpc.client

    from .backends.supervisor import UnixTransport

    proxy = xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport(str(sock_path)))

    def call() -> None:
        proxy.supervisor.getState()

    call.close = lambda: proxy("close")()  # type: ignore[attr-defined]
    return call


class Follower(threading.Thread):
    """Subscribes to ``output.<watcher>.stdout`` and checks every line it receives.

    ``defer``: keep the raw payloads while the flood lasts and check them after it (no
    per-line Python on the bench's CPU share during the window). Also records how far
    behind it ran (receive time minus the daemon's ``time`` of each message) and when the
    ``seq`` gaps came."""

    def __init__(self, pubsub: str, watcher: str, line: int, defer: bool = False) -> None:
        super().__init__(daemon=True)
        from circus.ctl.protocol import OutputGaps

        self.checker = Checker(line)
        self.messages = 0
        self.gaps = OutputGaps()  # what the messages' seq says was missed
        self.gap_lines = 0
        self.gap_events: list[tuple[float, int, float]] = []  # (time.time(), lines, lag s)
        self.lags: list[float] = []
        self.defer = defer
        self.kept: list[bytes] = []
        self.cpu_s = 0.0
        self.runq_s = 0.0
        self.halt = threading.Event()
        self.sock = zmq.Context.instance().socket(zmq.SUB)
        self.sock.linger = 0
        self.sock.rcvhwm = 0
        self.sock.subscribe(f"output.{watcher}.stdout".encode())
        self.sock.connect(pubsub)

    def run(self) -> None:
        stat = f"/proc/self/task/{threading.get_native_id()}/schedstat"
        w0, c0 = _run_delay(stat), time.thread_time()
        while not self.halt.is_set() or self.sock.poll(0):
            if not self.sock.poll(100):
                continue
            topic, payload = self.sock.recv_multipart()
            self.messages += 1
            if self.defer:
                self.kept.append(topic)
                self.kept.append(payload)
                continue
            self._check(topic, payload)
        self.cpu_s = time.thread_time() - c0
        self.runq_s = _run_delay(stat) - w0

    def _check(self, topic: bytes, payload: bytes) -> None:
        now = time.time()
        message = json.loads(payload)
        lag = now - float(message.get("time") or now)
        self.lags.append(lag)
        missed = self.gaps.feed(topic.decode(), message)
        if missed:
            self.gap_lines += missed
            self.gap_events.append((now, missed, lag))
        self.checker.feed_block(message["data"].encode())

    def finish(self) -> None:
        """Check what ``defer`` kept (lags then measure the check, not the delivery)."""
        kept, self.kept = self.kept, []
        for i in range(0, len(kept), 2):
            self._check(kept[i], kept[i + 1])

    def report(self, written: dict[int, int], t0: float) -> dict[str, Any]:
        """The verdict, with ``missed_by_seq`` (lines the daemon dropped and said so),
        ``unexplained`` (missing without a seq gap) and when and how far behind."""
        out = self.checker.verdict(written)
        lags = sorted(self.lags)
        out.update(
            messages=self.messages,
            missed_by_seq=self.gap_lines,
            unexplained=max(0, out["lost"] - self.gap_lines),
            kept_up=self.gap_lines == 0 and out["lost"] == 0 and out["torn"] == 0,
            gaps=[(round(t - t0, 2), n, round(lag, 3)) for t, n, lag in self.gap_events[:20]],
            lag_median_s=lags[len(lags) // 2] if lags and not self.defer else None,
            lag_max_s=lags[-1] if lags and not self.defer else None,
            thread_cpu_s=self.cpu_s,
            thread_runq_s=self.runq_s,
        )
        return out


_HWM_PATCH = """
import sys, zmq
_socket = zmq.Context.socket
def socket(self, kind, *a, **k):
    sock = _socket(self, kind, *a, **k)
    if kind == zmq.SUB:
        sock.rcvhwm = {hwm}
    return sock
zmq.Context.socket = socket
from circus.ctl.cli import main
sys.argv[0] = "circusctl"
sys.exit(main())
"""


class CliFollower:
    """``circusctl logs -f <watcher> -n 0`` into a file, as a user follows a watcher: its
    output is checked once the flood is over (the ``HH:MM:SS.mmm name[pid] | `` prefix
    cut off), and the lines it says circusd dropped are read from its stderr.
    ``own_session``: started in a session (so a scheduling autogroup) of its own, as from a
    user's terminal."""

    def __init__(
        self, control: str, pubsub: str, watcher: str, line: int, workdir: Path,
        own_session: bool = True, rcvhwm: int | None = None,
    ) -> None:  # fmt: skip
        self.out_path = workdir / "follow.out"
        self.line = line
        self.messages = 0
        self.cpu_s = 0.0
        argv = [str(Path(sys.executable).parent / "circusctl")]
        if rcvhwm is not None:  # experiment: its SUB socket's ZMQ_RCVHWM
            argv = [sys.executable, "-c", _HWM_PATCH.format(hwm=rcvhwm)]
        self.notes: list[tuple[float, str]] = []  # (time.time(), a line of its stderr)
        with open(self.out_path, "wb") as out:
            self.proc = subprocess.Popen(
                [*argv, "--endpoint", control, "logs", "-f", "-n", "0",
                 "--pubsub-endpoint", pubsub, watcher],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.PIPE,
                start_new_session=own_session,
            )  # fmt: skip
        self._reader = threading.Thread(target=self._read_notes, daemon=True)
        self._reader.start()

    def _read_notes(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            self.notes.append((time.time(), raw.decode(errors="replace").rstrip("\n")))

    def threads(self) -> dict[str, tuple[float, float]]:
        """CPU and run-queue wait (s) of circusctl's threads so far, by name."""
        out: dict[str, tuple[float, float]] = {}
        base = f"/proc/{self.proc.pid}/task"
        try:
            tasks = os.listdir(base)
        except OSError:
            return out
        for task in tasks:
            try:
                with open(f"{base}/{task}/comm") as f:
                    name = f.read().strip()
                with open(f"{base}/{task}/schedstat") as f:
                    fields = f.read().split()
            except OSError:
                continue
            cpu, wait = out.get(name, (0.0, 0.0))
            out[name] = (cpu + int(fields[0]) / 1e9, wait + int(fields[1]) / 1e9)
        return out

    def start(self) -> None:
        """Return once it is connected and idle (subscribed, history asked)."""
        deadline = time.perf_counter() + 60
        last, still = -1.0, 0
        while time.perf_counter() < deadline and self.proc.poll() is None:
            socks = sum(
                1 for fd in os.listdir(f"/proc/{self.proc.pid}/fd")
                if os.readlink(f"/proc/{self.proc.pid}/fd/{fd}").startswith("socket:")
            )  # fmt: skip
            cpu = cpu_seconds(self.proc.pid)
            still = still + 1 if socks >= 2 and cpu == last else 0
            if still >= 5:
                return
            last = cpu
            time.sleep(0.1)
        raise RuntimeError(f"circusctl logs -f did not settle: {self.notes[:3]}")

    def stop(self) -> None:
        """Once its output file has stopped growing (10 s at most), interrupt it."""
        deadline = time.perf_counter() + 10
        last = -1
        while time.perf_counter() < deadline:
            size = self.out_path.stat().st_size
            if size == last:
                break
            last = size
            time.sleep(0.5)
        if self.proc.poll() is None:
            self.cpu_s = cpu_seconds(self.proc.pid)
            self.thread_stats = self.threads()
            self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)

    def report(self, written: dict[int, int], t0: float) -> dict[str, Any]:
        """As :meth:`Follower.report` (no lags: circusctl does not say); ``gaps``: when
        (seconds after the go) it said lines were missed, and how many."""
        checker = Checker(self.line)
        with open(self.out_path, "rb") as f:
            for raw in f:
                cut = raw.find(b" | ")
                if cut < 0 or not raw.endswith(b"\n"):
                    checker._bad(raw)
                    continue
                checker.check(raw[cut + 3 : -1])
        missed = 0
        gaps = []
        for when, text in self.notes:
            if text.startswith("circusctl: ") and " missed " in text:
                missed += int(text.split()[1])
                gaps.append((round(when - t0, 2), int(text.split()[1])))
        out = checker.verdict(written)
        out.update(
            messages=None,
            missed_by_seq=missed,
            unexplained=max(0, out["lost"] - missed),
            kept_up=missed == 0 and out["lost"] == 0 and out["torn"] == 0,
            process_cpu_s=self.cpu_s,
            threads=getattr(self, "thread_stats", {}),
            gaps=gaps[:30],
            returncode=self.proc.returncode,
        )
        return out


def zmq_io_threads(pid: int) -> tuple[float, float]:
    """CPU and run-queue wait (s) of ``pid``'s libzmq I/O threads so far (``ZMQbg/IO``)."""
    cpu = wait = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0, 0.0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                if not f.read().startswith("ZMQbg/IO"):
                    continue
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                fields = f.read().split()
            cpu += int(fields[0])
            wait += int(fields[1])
        except (OSError, IndexError, ValueError):
            pass
    return cpu / 1e9, wait / 1e9


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


# How the children are placed, for the ``+pgroup`` / ``+setsid`` experiments: a wrapper that
# runs circusd with ``subprocess.Popen`` patched (``start_new_session`` <-> ``process_group``).
_POPEN_PATCH = """
import subprocess, sys
_Popen = subprocess.Popen
class Popen(_Popen):
    def __init__(self, *a, **k):
        if {to_pgroup} and k.pop('start_new_session', False):
            k['process_group'] = 0
        if {to_setsid} and k.pop('process_group', None) == 0:
            k['start_new_session'] = True
        if {nice}:
            os.setpriority(os.PRIO_PROCESS, 0, 0)  # children are forked at nice 0
        try:
            super().__init__(*a, **k)
        finally:
            if {nice}:
                os.setpriority(os.PRIO_PROCESS, 0, {nice})
subprocess.Popen = Popen
import os
if {nice}:
    os.setpriority(os.PRIO_PROCESS, 0, {nice})
"""


# ``+lazy-<ms>``: after each dispatch of the shared epoll reader, the loop stops watching it
# for that long (pidfds included: an experiment, not a design), so circusd sleeps between
# batches of output instead of being runnable through the whole flood.
_LAZY_PATCH = """
from circus.process import _mux
_orig_dispatch = _mux.FdMux._dispatch
def _lazy_dispatch(self):
    _orig_dispatch(self)
    loop = self._loop_ref()
    if loop is None or self._epoll.closed:
        return
    fd = self._epoll.fileno()
    loop.remove_reader(fd)
    def back():
        if not self._epoll.closed and _mux._muxes.get(loop) is self:
            loop.add_reader(fd, self._dispatch)
    loop.call_later({delay}, back)
_mux.FdMux._dispatch = _lazy_dispatch
"""


# ``+probe``: circusd records where its time goes (written as JSON to ``{path}`` at exit):
# every loop pass and every dispatch of the shared epoll reader longer than 2 ms (wall and
# the loop thread's CPU in it: wall >> CPU is time off a CPU, preempted or blocked), and per
# control request when its handler began and when its answer went to libzmq
# (``time.perf_counter``, CLOCK_MONOTONIC like the bench's), matched to the bench's calls.
_PROBE_PATCH = """
import asyncio, atexit, json, time
from asyncio import base_events
from circus.process import _mux
from circus.arbiter import _controller
_pc, _tt = time.perf_counter, time.thread_time
_P = {{"passes": 0, "pass_max": 0.0, "slow_passes": [], "dispatches": 0, "disp_max": 0.0,
      "disp_sum": 0.0, "slow_disp": [], "handled": {{}}, "sent": {{}}}}
_orig_run_once = base_events.BaseEventLoop._run_once
def _run_once(self):
    t0, c0 = _pc(), _tt()
    _orig_run_once(self)
    dt = _pc() - t0
    _P["passes"] += 1
    if dt > _P["pass_max"]:
        _P["pass_max"] = dt
    if dt > 0.002 and len(_P["slow_passes"]) < 5000:
        _P["slow_passes"].append((t0, dt, _tt() - c0))
base_events.BaseEventLoop._run_once = _run_once
_orig_dispatch = _mux.FdMux._dispatch
def _dispatch(self):
    t0, c0 = _pc(), _tt()
    _orig_dispatch(self)
    dt = _pc() - t0
    _P["dispatches"] += 1
    _P["disp_sum"] += dt
    if dt > _P["disp_max"]:
        _P["disp_max"] = dt
    if dt > 0.002 and len(_P["slow_disp"]) < 5000:
        _P["slow_disp"].append((t0, dt, _tt() - c0))
_mux.FdMux._dispatch = _dispatch
_orig_handle = _controller.Controller._handle
async def _handle(self, frames):
    try:
        mid = json.loads(frames[-1].bytes).get("id")
    except Exception:
        mid = None
    if mid:
        _P["handled"][mid] = _pc()
    await _orig_handle(self, frames)
_controller.Controller._handle = _handle
_orig_send = _controller.Controller._send
def _send(self, identity, envelope, answer):
    _orig_send(self, identity, envelope, answer)
    mid = answer.get("id")
    if mid:
        _P["sent"][mid] = _pc()
_controller.Controller._send = _send
def _dump():
    with open({path!r}, "w") as f:
        json.dump(_P, f)
atexit.register(_dump)
"""


def probe_breakdown(
    probe: dict[str, Any], calls: list[tuple[str, float, float, float]], watch: DaemonWatch | None
) -> dict[str, Any]:
    """Split each status call of the bench into inbound (sent -> circusd's handler runs),
    handler (-> answer to libzmq) and outbound (-> the bench has it), with the run-queue wait
    of the bench's calling thread and of circusd's main thread meanwhile; summarise the slow
    calls and the daemon's loop passes and dispatches."""
    handled, sent = probe.get("handled", {}), probe.get("sent", {})
    rows = []
    for mid, t0, t1, cwait in calls:
        if mid in handled and mid in sent:
            dwait = watch.wait_between(t0, t1) if watch is not None else float("nan")
            rows.append(
                (t1 - t0, handled[mid] - t0, sent[mid] - handled[mid], t1 - sent[mid], cwait,
                 dwait, t0)
            )  # fmt: skip
    slow = sorted(rows, reverse=True)[:10]
    passes = probe.get("slow_passes", [])

    def longest_pass(t0: float, t1: float) -> float:
        return max((dt for s, dt, _c in passes if s < t1 and s + dt > t0), default=0.0)

    def ms(x: float) -> float:
        return round(x * 1e3, 2)

    def median(i: int) -> float | None:
        return ms(sorted(r[i] for r in rows)[len(rows) // 2]) if rows else None

    return {
        "matched": len(rows),
        "passes": probe.get("passes"),
        "pass_max_ms": ms(probe.get("pass_max", 0)),
        "slow_passes": len(passes),
        "slowest_passes_wall_cpu_ms": [
            (ms(dt), ms(c)) for _s, dt, c in sorted(passes, key=lambda p: -p[1])[:8]
        ],
        "dispatches": probe.get("dispatches"),
        "disp_mean_ms": ms(probe.get("disp_sum", 0) / max(1, probe.get("dispatches") or 1)),
        "disp_max_ms": ms(probe.get("disp_max", 0)),
        "slowest_disp_wall_cpu_ms": [
            (ms(dt), ms(c))
            for _s, dt, c in sorted(probe.get("slow_disp", []), key=lambda p: -p[1])[:5]
        ],
        "median_total_in_handler_out_ms": [median(i) for i in range(4)],
        "slowest_total_in_handler_out_clientwait_daemonwait_longestpass_ms": [
            (ms(a), ms(b), ms(c), ms(d), ms(e), ms(f), ms(longest_pass(t0, t0 + a)))
            for a, b, c, d, e, f, t0 in slow
        ],
        "daemon_dstate_stacks": watch.dstates if watch is not None else {},
    }


def _wrapped_circus(spec: ProgramSpec, workdir: Path, flags: set[str]) -> Any:
    """Our circusd through a wrapper: ``pgroup``/``setsid`` choose how children are placed,
    ``own-session`` runs circusd in a session (so an autogroup) of its own, ``own-autogroup``
    also gives that autogroup nice -10 (root)."""
    from .backends.circus import CircusSession

    real = Path(sys.executable).parent / "circusd"
    wrapper = workdir / "circusd"
    nice = next((int(f[4:]) for f in flags if f.startswith("nice")), 0)
    body = _POPEN_PATCH.format(to_pgroup="pgroup" in flags, to_setsid="setsid" in flags, nice=nice)
    lines = [f"#!{sys.executable}", body]
    lazy = next((float(f[5:]) / 1e3 for f in flags if f.startswith("lazy-")), 0.0)
    if lazy:
        lines.append(_LAZY_PATCH.format(delay=lazy))
    if "probe" in flags:
        lines.append(_PROBE_PATCH.format(path=str(workdir / "probe.json")))
    pause = next((float(f[6:]) / 1e3 for f in flags if f.startswith("pause-")), None)
    if pause is not None:  # the shared epoll reader's pause after a batch of output
        lines.append(f"from circus.process import _mux; _mux.PAUSE = {pause!r}")
    batch = next((int(f[6:]) for f in flags if f.startswith("batch-")), None)
    if batch is not None:  # fds served per dispatch while output floods
        lines.append(f"from circus.process import _mux; _mux.FLOOD_BATCH = {batch}")
    sndhwm = next((int(f[7:]) for f in flags if f.startswith("sndhwm-")), None)
    if sndhwm is not None:  # the pub/sub socket's ZMQ_SNDHWM (per subscriber)
        lines.append(
            "from circus.arbiter import _publisher as _pb; _bind = _pb.bind_endpoint\n"
            "def _b(sock, *a, **k):\n"
            f"    sock.sndhwm = {sndhwm}\n"
            "    return _bind(sock, *a, **k)\n"
            "_pb.bind_endpoint = _b"
        )
    if flags & {"own-session", "own-autogroup"} or any(f.startswith("ag-") for f in flags):
        lines.append("import os; os.setsid()")
    lines += ["from circus.arbiter.circusd import main", "sys.exit(main())", ""]
    wrapper.write_text("\n".join(lines))
    wrapper.chmod(0o755)
    session = CircusSession(spec, workdir, str(wrapper), str(real.parent / "circusctl"))
    ag = next(
        (f[3:] for f in flags if f.startswith("ag-")), "-10" if "own-autogroup" in flags else ""
    )
    if ag:
        with open(f"/proc/{session.daemon_pid}/autogroup", "w") as f:
            f.write(ag)
    return session


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
        flags = set(extra.split("+")) if extra else set()
        wrapped = {f for f in flags if f not in ("follow", "defer", "cli", "cli-here")}
        wrapped = {f for f in wrapped if not f.startswith("cli-hwm")}
        session = _wrapped_circus(spec, workdir, flags) if wrapped else backend.open(spec, workdir)
        sampler = follower = watch = None
        try:
            session.start(wait=True)
            session.track()
            if name == "supervisor":
                call = supervisor_status_call(workdir / "sup.sock")
            else:
                call = circus_status_call(session.control)  # type: ignore[attr-defined]
                if flags & {"cli", "cli-here"}:
                    follower = CliFollower(
                        session.control, session.pubsub, "chatty", args.line, workdir,  # type: ignore[attr-defined]
                        own_session="cli" in flags,
                        rcvhwm=next((int(f[7:]) for f in flags if f.startswith("cli-hwm")), None),
                    )  # fmt: skip
                    follower.start()
                elif "follow" in flags:
                    follower = Follower(session.pubsub, "chatty", args.line, "defer" in flags)  # type: ignore[attr-defined]
                    follower.start()
                    time.sleep(0.5)  # the subscription reaches the daemon (handshake, XPUB notice)
            sampler = StatusSampler(call)
            daemon = session.daemon_pid
            assert daemon is not None
            watch = DaemonWatch(daemon) if "probe" in flags else None
            if watch is not None:
                watch.start()
            sampler.start()
            cpu0 = cpu_seconds(daemon)
            wait0 = sched_wait(daemon)
            io0 = zmq_io_threads(daemon), zmq_io_threads(os.getpid())
            t0_wall = time.time()
            host0 = _host_cpu()
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
            io1 = zmq_io_threads(daemon), zmq_io_threads(os.getpid())
            host1 = _host_cpu()
            kids = _children_cpu(daemon)
            sampler.halt.set()
            sampler.join()
            if watch is not None:
                watch.halt.set()
                watch.join()
            call.close()
            if isinstance(follower, CliFollower):
                follower.stop()
            elif follower is not None:
                flush_deadline = time.perf_counter() + 10
                # stop once the follower has been idle a while (the daemon publishes as it reads)
                last = -1
                while time.perf_counter() < flush_deadline and follower.messages != last:
                    last = follower.messages
                    time.sleep(0.5)
                follower.halt.set()
                follower.join()
                follower.sock.close()
                follower.finish()
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
                host_busy=(host1[0] - host0[0]) / max(1, host1[1] - host0[1]),
                children_cpu_s=kids,
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
                row["follower"] = follower.report(written, t0_wall)
                row["zmq_io"] = {
                    "daemon_cpu_s": io1[0][0] - io0[0][0],
                    "daemon_runq_s": io1[0][1] - io0[0][1],
                    "bench_cpu_s": io1[1][0] - io0[1][0],
                    "bench_runq_s": io1[1][1] - io0[1][1],
                }
        finally:
            if go_fd >= 0:
                os.close(go_fd)
            session.close()
        probe_file = workdir / "probe.json"
        if sampler is not None and probe_file.exists():
            row["probe"] = probe_breakdown(json.loads(probe_file.read_text()), sampler.calls, watch)
    except Exception as exc:  # noqa: BLE001 - one peer failing must not lose the others
        row["error"] = repr(exc)[:500]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return row
