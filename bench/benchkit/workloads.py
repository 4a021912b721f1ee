"""The measurements, written once against the Session interface.

Metric keys (units in ``report.METRICS``): ``start.N``/``stop.N`` seconds, ``launch.N``
seconds (daemon exec to N autostarted copies running), ``rss.N`` MiB,
``idle_cpu`` CPU ms over the idle window, ``rtt.status``/``rtt.list`` ms, ``cli.status`` ms,
``respawn`` ms, ``stdout`` MB/s (raw: through os.splice), plus raw's ``stdout.direct`` (child
writes the file itself) and ``stdout.cat`` (pipe through cat).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .backends import Backend, NotApplicable, ProgramSpec, Session
from .procs import BenchError, cpu_seconds, rss_bytes, wait_for
from .settings import Settings

SLEEP = shutil.which("sleep") or "/bin/sleep"
PRODUCER = Path(__file__).with_name("producer.py")


class Results:
    """Raw numbers per backend and metric: one value (or one error) per run."""

    def __init__(self) -> None:
        self.values: dict[str, dict[str, list[float]]] = {}
        self.errors: dict[str, dict[str, list[str]]] = {}

    def add(self, backend: str, metric: str, value: float) -> None:
        """Record one run's value of ``metric`` for ``backend``."""
        self.values.setdefault(backend, {}).setdefault(metric, []).append(value)

    def fail(self, backend: str, metric: str, error: str) -> None:
        """Record that one run of ``metric`` for ``backend`` could not be measured."""
        self.errors.setdefault(backend, {}).setdefault(metric, []).append(error)

    def has_run(self, backend: str, metric: str, run: int) -> bool:
        """True when run number ``run`` (0-based) of ``metric`` already has a value or error."""
        done = len(self.values.get(backend, {}).get(metric, ())) + len(
            self.errors.get(backend, {}).get(metric, ())
        )
        return done > run


@contextmanager
def _workdir() -> Iterator[Path]:
    # Short paths under /tmp: ipc:// endpoints are unix sockets (108-byte path limit).
    path = Path(tempfile.mkdtemp(prefix="cbench-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


class Runner:
    """Runs the selected workloads for one backend and files the numbers in ``results``."""

    def __init__(self, backend: Backend, settings: Settings, results: Results) -> None:
        self.b = backend
        self.s = settings
        self.r = results
        self.run = 0
        self._launch_warm = False

    def _measure(self, metric: str, fn: Callable[[], float]) -> None:
        """Record ``fn()`` as ``metric``; a failure is filed as an error, never raised."""
        try:
            self.r.add(self.b.name, metric, fn())
        except NotApplicable:
            pass
        except (BenchError, OSError, subprocess.SubprocessError) as exc:
            _log(f"{self.b.name} {metric}: {exc}")
            self.r.fail(self.b.name, metric, str(exc))

    def _session(
        self,
        make_spec: Callable[[Path], ProgramSpec],
        metrics: list[str],
        body: Callable[[Session], None],
    ) -> None:
        """Open a session for ``make_spec(workdir)`` and run ``body`` on it; if the session
        itself fails, each metric of ``metrics`` not measured in this run gets the error."""
        with _workdir() as wd:
            spec = make_spec(wd)
            try:
                with self.b.open(spec, wd) as session:
                    body(session)
            except (BenchError, OSError, subprocess.SubprocessError) as exc:
                _log(f"{self.b.name} {spec.name} session: {exc}")
                for m in metrics:
                    if not self.r.has_run(self.b.name, m, self.run):
                        self.r.fail(self.b.name, m, str(exc))

    # -- start N / stop N / rss / idle / rtt / cli -----------------------------------------
    def sized(self, n: int) -> None:
        """Start ``n`` sleepers, take the per-N metrics, stop; at metrics N, the daemon
        metrics in a session of their own (see :meth:`_metrics_session`)."""
        s = self.s
        metrics = [f"{w}.{n}" for w in ("start", "stop", "rss") if s.wants(w)]
        if n == s.metrics_n:
            self._metrics_session(n)
        if not metrics:
            return
        spec = ProgramSpec("sleepers", (SLEEP, "3600"), "sleep", n)
        _log(f"run {self.run + 1}: {self.b.name} N={n}")

        def body(sess: Session) -> None:
            t0 = time.perf_counter()
            sess.start()
            t1 = time.perf_counter()
            if len(sess.pids()) != n:  # the manager answered early: time until all really run
                t1 = wait_for(lambda: len(sess.pids()) == n, 60 + n * 0.05, f"{n} running", 0.005)
            sess.track()  # the bench's own bookkeeping (for cleanup): not part of the timing
            if s.wants("start"):
                self.r.add(self.b.name, f"start.{n}", t1 - t0)
            if s.wants("rss") and sess.daemon_pid is not None:
                self._measure(f"rss.{n}", lambda: rss_bytes(sess.daemon_pid) / 2**20)
            live = sess.pids()
            sess.track()
            t0 = time.perf_counter()
            sess.stop()
            t1 = time.perf_counter()
            # The check that every copy is gone reads /proc once per pid (6-19 ms for 1,000
            # here): timed only when it finds one left (the manager answered early), as the
            # start row does. Inside the window it was a constant added to every peer.
            if not sess.gone(live):
                t1 = sess.wait_gone(live, 60 + n * 0.05)
            if s.wants("stop"):
                self.r.add(self.b.name, f"stop.{n}", t1 - t0)

        self._session(lambda wd: spec, metrics, body)

    def _metrics_session(self, n: int) -> None:
        """Idle CPU, round trips and the CLI call with ``n`` sleepers running, in a session of
        their own. Not before the timed stop: children idle for the 10 s of the idle row are
        slower to end (1,000 `sleep`s: +13-15 ms for a raw SIGTERM-and-wait after 12 s idle
        here, cold caches), and `raw`, with no daemon metrics, stopped fresh ones."""
        s = self.s
        metrics = [m for w, m in (("idle_cpu", "idle_cpu"), ("cli", "cli.status")) if s.wants(w)]
        metrics += ["rtt.status", "rtt.list"] if s.wants("rtt") else []
        if not metrics or self.b.name == "raw":
            return
        spec = ProgramSpec("sleepers", (SLEEP, "3600"), "sleep", n)
        _log(f"run {self.run + 1}: {self.b.name} N={n}, daemon metrics")

        def body(sess: Session) -> None:
            sess.start()
            wait_for(lambda: len(sess.pids()) == n, 60 + n * 0.05, f"{n} running", 0.005)
            sess.track()
            self._daemon_metrics(sess)
            sess.stop()

        self._session(lambda wd: spec, metrics, body)

    def _daemon_metrics(self, sess: Session) -> None:
        s = self.s
        pid = sess.daemon_pid
        if s.wants("idle_cpu") and pid is not None:

            def idle() -> float:
                time.sleep(min(1.0, s.idle_seconds / 5))  # let start-up work finish first
                before = cpu_seconds(pid)
                time.sleep(s.idle_seconds)
                return (cpu_seconds(pid) - before) * 1000

            self._measure("idle_cpu", idle)
        if s.wants("rtt"):
            self._measure("rtt.status", lambda: _median_ms(sess.call_status, s.rtt_calls))
            self._measure("rtt.list", lambda: _median_ms(sess.call_list, s.rtt_calls))
        if s.wants("cli"):
            self._measure("cli.status", lambda: _median_ms(sess.cli_status, s.cli_calls))

    # -- launch ------------------------------------------------------------------------------
    def launch(self, n: int) -> None:
        """Exec of the daemon on a config with ``n`` autostarting sleepers to all ``n``
        running (what a user waits for after ``circusd my.ini``); raw has no daemon."""
        if not self.s.wants("launch") or self.b.name == "raw":
            return
        metric = f"launch.{n}"
        if not self._launch_warm:
            # One untimed launch first: the page cache and the bytecode cache are filled
            # as on a machine where the daemon was installed and has run before.
            self._launch_warm = True
            warm = ProgramSpec("sleepers", (SLEEP, "3600"), "sleep", 1, autostart=True)
            self._session(lambda wd: warm, [], lambda sess: None)
        spec = ProgramSpec("sleepers", (SLEEP, "3600"), "sleep", n, autostart=True)
        _log(f"run {self.run + 1}: {self.b.name} launch N={n}")

        def body(sess: Session) -> None:
            sess.track()
            if sess.launch_took is None:
                raise BenchError(f"{self.b.name}: launch not timed")
            self.r.add(self.b.name, metric, sess.launch_took)

        self._session(lambda wd: spec, [metric], body)

    # -- respawn -----------------------------------------------------------------------------
    def respawn(self) -> None:
        """Median over ``respawns`` kills of the time until a replacement runs (ms)."""
        if not self.s.wants("respawn"):
            return
        spec = ProgramSpec("respawner", (SLEEP, "3600"), "sleep", 1, no_backoff=True)
        _log(f"run {self.run + 1}: {self.b.name} respawn x{self.s.respawns}")

        def body(sess: Session) -> None:
            sess.start()
            sess.track()
            wait_for(lambda: len(sess.pids()) == 1, 60, "the first copy")
            (pid,) = sess.pids()
            _, pid = sess.respawn_once(pid)  # warm-up, not timed
            took = []
            for _ in range(self.s.respawns):
                dt, pid = sess.respawn_once(pid)
                took.append(dt * 1000)
            self.r.add(self.b.name, "respawn", statistics.median(took))

        self._session(lambda wd: spec, ["respawn"], body)

    # -- stdout ------------------------------------------------------------------------------
    def stdout(self) -> None:
        """MB/s of a child's stdout reaching a file through the manager."""
        if not self.s.wants("stdout"):
            return
        size = self.s.stdout_bytes
        _log(f"run {self.run + 1}: {self.b.name} stdout {size / 1e6:g} MB")
        if self.b.name == "raw":
            with _workdir() as wd:
                for metric, fn in (
                    ("stdout.direct", _raw_direct),
                    ("stdout.cat", _raw_cat),
                    ("stdout", _raw_splice),
                ):
                    out = wd / f"{metric}.log"
                    self._measure(metric, lambda fn=fn, out=out: size / 1e6 / fn(size, out))
                    out.unlink(missing_ok=True)
            return

        def make_spec(wd: Path) -> ProgramSpec:
            argv = (sys.executable, str(PRODUCER), str(size))
            return ProgramSpec("producer", argv, "python", 1, False, wd / "out.log")

        def body(sess: Session) -> None:
            out = sess.spec.stdout_file
            assert out is not None
            t0 = time.perf_counter()
            sess.start(wait=False)
            t1 = wait_for(lambda: _size(out) >= size, 30 + size / 2e6, "the log file", 0.002)
            sess.track()
            self.r.add(self.b.name, "stdout", size / 1e6 / (t1 - t0))

        self._session(make_spec, ["stdout"], body)

    # -- chatty ------------------------------------------------------------------------------
    def chatty(self) -> None:
        """``chatty_n`` writers of short lines into one file (Supervisor: a file each):
        the daemon's CPU per MB, lines lost or torn, ``status`` during the flood; ours also
        followed by a ``logs -f`` subscriber. Needs ``cc`` for the writers; raw has no daemon."""
        if not self.s.wants("chatty") or self.b.name == "raw":
            return
        from . import chatty

        s = self.s
        keys = ["chatty.cpu", "chatty.lost", "chatty.status", "chatty.status_max"]
        writer = chatty.shared_writer()
        if writer is None:
            for key in keys:
                self.r.fail(self.b.name, key, chatty.NO_CC)
            if not self.run:
                _log(f"{self.b.name} chatty: skipped: {chatty.NO_CC}")
            return
        args = argparse.Namespace(
            n=s.chatty_n, rate=s.chatty_rate, seconds=s.chatty_seconds, line=100, cut=False
        )
        # ours again, followed by a real `circusctl logs -f` in a session of its own (as from
        # a user's terminal), its output checked once the flood is over
        peers = [self.b.name] + (["ours+cli"] if self.b.name == "ours" else [])
        for peer in peers:
            _log(f"run {self.run + 1}: {peer} chatty N={s.chatty_n} {s.chatty_rate:g} MB/s")
            row = chatty.run_peer(peer, args, writer)
            prefix = "chatty.follow" if peer.endswith("+cli") else "chatty"
            if "error" in row:
                _log(f"{peer} chatty: {row['error']}")
                for key in keys if prefix == "chatty" else ["chatty.follow.cpu"]:
                    self.r.fail(self.b.name, key, row["error"])
                continue
            self.r.add(self.b.name, f"{prefix}.cpu", row["cpu_ms_per_mb"])
            if prefix == "chatty":
                files = row["files"]
                self.r.add(self.b.name, "chatty.lost", files["lost"] + files["torn"])
                status = row["status"]
                if status.get("samples"):
                    self.r.add(self.b.name, "chatty.status", status["median_ms"])
                    self.r.add(self.b.name, "chatty.status_max", status["max_ms"])
            else:
                f = row["follower"]
                _log(
                    f"{peer} chatty follower: lost {f['lost']} (seq {f['missed_by_seq']}, "
                    f"unexplained {f['unexplained']}), torn {f['torn']}, gaps {f.get('gaps')}"
                )
                self.r.add(self.b.name, "chatty.follow.missed", f["lost"] + f["torn"])
                self.r.add(self.b.name, "chatty.follow.seq", f["missed_by_seq"])
                self.r.add(self.b.name, "chatty.follow.unexplained", f["unexplained"])
                self.r.add(self.b.name, "chatty.follow.torn", f["torn"])
                self.r.add(self.b.name, "chatty.follow.kept_up", 1.0 if f["kept_up"] else 0.0)


def _median_ms(call: Callable[[], None], count: int) -> float:
    took = []
    for _ in range(count):
        t0 = time.perf_counter()
        call()
        took.append((time.perf_counter() - t0) * 1000)
    return statistics.median(took)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _producer(size: int) -> list[str]:
    return [sys.executable, str(PRODUCER), str(size)]


def _checked(path: Path, size: int, took: float) -> float:
    if _size(path) != size:
        raise BenchError(f"{path.name}: wrote {_size(path)} bytes, expected {size}")
    return took


def _raw_direct(size: int, out: Path) -> float:
    """The child writes the file itself: the kernel's best case."""
    with open(out, "wb") as f:
        t0 = time.perf_counter()
        subprocess.run(_producer(size), stdout=f, check=True)
        return _checked(out, size, time.perf_counter() - t0)


def _raw_cat(size: int, out: Path) -> float:
    """A pipe into the file through ``cat``: a copying relay process."""
    with open(out, "wb") as f:
        t0 = time.perf_counter()
        prod = subprocess.Popen(_producer(size), stdout=subprocess.PIPE)
        cat = subprocess.Popen(["cat"], stdin=prod.stdout, stdout=f)
        assert prod.stdout is not None
        prod.stdout.close()
        cat.wait()
        prod.wait()
        return _checked(out, size, time.perf_counter() - t0)


def _raw_splice(size: int, out: Path) -> float:
    """A pipe read by this process with os.splice straight into the file (zero copy).

    The pipe is grown to 1 MiB first, as circusd grows a busy writer's pipe: with the
    kernel's 64 KiB the reference paid a wake-up per 64 KiB and ran ~1.3x slower.
    """
    with open(out, "wb") as f:
        t0 = time.perf_counter()
        src, w = os.pipe2(os.O_CLOEXEC)
        try:
            with contextlib.suppress(OSError):  # past the user's pipe budget: keep 64 KiB
                fcntl.fcntl(src, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
            prod = subprocess.Popen(_producer(size), stdout=w)
            os.close(w)
            w = -1
            while os.splice(src, f.fileno(), 1 << 20):
                pass
        finally:
            os.close(src)
            if w >= 0:
                os.close(w)
        prod.wait()
        return _checked(out, size, time.perf_counter() - t0)
