"""A chaos run against a real ``circusd``: hostile children, a process killer, command storms.

Shared by the CI test (``test_chaos.py``, a few seconds) and ``make soak`` (``soak.py``, as
long as asked). :class:`ChaosRun` starts circusd on a config of five watchers (fifty
processes) whose children misbehave on purpose, then :meth:`ChaosRun.storm` runs, for a bounded
time, a *killer* thread (SIGKILL, SIGSTOP/SIGCONT of random children) and four *client*
threads sending random valid commands. :meth:`ChaosRun.settle` restores the configured sizes
and waits for the daemon to converge; :meth:`ChaosRun.check` returns what is wrong (an empty
list when all is well) and :attr:`ChaosRun.figures` what was measured.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import zmq
from circus.ctl import CircusClient
from circus.ctl.errors import CallTimeout, CtlError, DaemonUnreachable
from circus.process.testing import wait_until

PY = sys.executable
CIRCUSD = str(Path(sys.executable).with_name("circusd"))
PER_WATCHER = 10
GRACEFUL = 1.0

# One script, five behaviours. Every process (grandchildren included) carries the run's tag
# on its command line, which is how leaks are found after the run.
CHILD = r"""
import os, random, signal, sys, time
mode = sys.argv[1]
rng = random.Random()
if mode == "plain":
    time.sleep(3600)
elif mode == "forker":
    # a child of our own (auto-reaped: we are not testing this script's own zombies) and a
    # double-forked daemon, orphaned at once: re-parented to circusd, which must reap it.
    # Both live a bounded time, whatever happens to this process.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    if os.fork() == 0:
        time.sleep(rng.uniform(0.5, 4.0))
        os._exit(0)
    if os.fork() == 0:
        if os.fork() == 0:
            time.sleep(rng.uniform(0.5, 4.0))
            os._exit(0)
        os._exit(0)
    time.sleep(3600)
elif mode == "exiter":
    time.sleep(rng.uniform(0.3, 3.0))
    sys.exit(rng.choice([0, 0, 1, 2, 3, 77]))
elif mode == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(3600)
elif mode == "chatty":
    n = 0
    while True:
        n += 1
        sys.stdout.write(f"line {n} " + "x" * rng.randint(0, 200) + "\n")
        sys.stdout.flush()
        time.sleep(0.05)
"""

MODES = ("plain", "forker", "exiter", "stubborn", "chatty")
READ_ONLY = ("status", "list", "stats", "numprocesses")


def tagged(tag: str) -> list[psutil.Process]:
    """Every live (non-zombie) process whose command line carries ``tag``."""
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if tag in (proc.info["cmdline"] or []):
                found.append(proc)
        except psutil.Error:
            continue
    return found


@dataclass
class Figures:
    """What a run measured (printed by the soak)."""

    seconds: float = 0.0
    requests: int = 0
    answered: int = 0
    unanswered: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    commands: Counter[str] = field(default_factory=Counter)
    kills: int = 0
    stops: int = 0
    restarts: int = 0
    fd_before: int = 0
    fd_after: int = 0
    rss_before: int = 0
    rss_after: int = 0
    max_latency: float = 0.0
    stop_seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    read_latencies: list[float] = field(default_factory=list)

    @staticmethod
    def _spread(values: list[float]) -> str:
        lat = sorted(values) or [0.0]
        return (
            f"median {lat[len(lat) // 2] * 1000:.1f} ms, "
            f"p99 {lat[int(len(lat) * 0.99)] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms"
        )

    @property
    def read_median(self) -> float:
        """Median latency of the read-only commands (status, list, stats, numprocesses)."""
        lat = sorted(self.read_latencies)
        return lat[len(lat) // 2] if lat else 0.0

    def summary(self) -> str:
        """Human-readable figures."""
        return "\n".join(
            [
                f"storm: {self.seconds:.1f} s",
                f"requests: {self.requests} sent, {self.answered} answered, "
                f"{self.unanswered} unanswered "
                f"({self.requests / max(self.seconds, 1e-9):.1f}/s)",
                f"commands: {dict(self.commands)}",
                f"error answers: {dict(self.errors)}",
                f"latency, all commands ('waiting' ones included): {self._spread(self.latencies)}",
                f"latency, read-only commands: {self._spread(self.read_latencies)}",
                f"chaos: {self.kills} SIGKILL, {self.stops} SIGSTOP/SIGCONT",
                f"restarts (processes spawned during the storm): {self.restarts}",
                f"fds: {self.fd_before} -> {self.fd_after} ({self.fd_after - self.fd_before:+d})",
                f"rss: {self.rss_before / 2**20:.1f} MB -> {self.rss_after / 2**20:.1f} MB "
                f"({(self.rss_after - self.rss_before) / 2**20:+.1f} MB)",
            ]
        )


class ChaosRun:
    """One circusd under chaos, in ``workdir``. Use as a context manager (always cleans up)."""

    def __init__(self, workdir: Path, seed: int | None = None) -> None:
        self.dir = Path(workdir)
        self.tag = f"chaos-{uuid.uuid4().hex[:12]}"
        self.rng = random.Random(seed)
        self.endpoint = f"ipc://{self.dir}/ctl"
        self.pubsub = f"ipc://{self.dir}/pub"
        self.config = self.dir / "chaos.ini"
        self.log = self.dir / "circusd.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.figures = Figures()
        self._client_timeout = 90.0
        self._lock = threading.Lock()
        self._stopped: set[int] = set()
        self.events: Counter[str] = Counter()
        self._listening = threading.Event()
        self._listener: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle

    def write_config(self) -> None:
        """Five watchers of ten misbehaving processes each."""
        script = self.dir / "child.py"
        script.write_text(CHILD)
        parts = [
            "[circus]",
            f"endpoint = {self.endpoint}",
            f"pubsub_endpoint = {self.pubsub}",
            "loglevel = info",
            "",
        ]
        for mode in MODES:
            parts += [
                f"[watcher:{mode}]",
                f"cmd = {PY} -S {script} {mode} {self.tag}",
                f"numprocesses = {PER_WATCHER}",
                f"graceful_timeout = {GRACEFUL}",
                "backoff_max = 0.5",
                "stop_children = true" if mode == "forker" else "",
                f"stdout_stream.class = FileStream\nstdout_stream.filename = {self.dir}/{mode}.out",
                "",
            ]
        self.config.write_text("\n".join(parts))

    def start(self) -> ChaosRun:
        """Start circusd and wait until all fifty processes run."""
        self.write_config()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [CIRCUSD, str(self.config)], stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
            )
        wait_until(self._answers, 30, "circusd to answer")
        self._listener = threading.Thread(target=self._listen, daemon=True)
        self._listener.start()
        wait_until(self.converged, 60, "every watcher at its numprocesses")
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"circusd exited {self.proc.returncode}: {self.output()}")
        if not os.path.exists(self.endpoint[len("ipc://") :]):
            return False
        try:
            return self.call("numwatchers", timeout=1).get("status") == "ok"
        except CtlError:
            return False

    def call(self, command: str, timeout: float = 15.0, **props: Any) -> dict[str, Any]:
        """One request on a fresh client (the raw answer)."""
        with CircusClient(self.endpoint, timeout=timeout, check=False) as client:
            return client.call(command, props)

    def output(self) -> str:
        """circusd's log so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def daemon(self) -> psutil.Process:
        """circusd as a psutil process."""
        assert self.proc is not None
        return psutil.Process(self.proc.pid)

    def fds(self) -> int:
        """circusd's open descriptors."""
        return self.daemon().num_fds()

    def rss(self) -> int:
        """circusd's resident memory in bytes."""
        return int(self.daemon().memory_info().rss)

    def children(self) -> list[int]:
        """Direct children of circusd that are alive (not zombies)."""
        kids = []
        for kid in self.daemon().children():
            try:
                if kid.status() != psutil.STATUS_ZOMBIE:
                    kids.append(kid.pid)
            except psutil.NoSuchProcess:
                continue
        return kids

    def zombies(self) -> list[int]:
        """Zombie descendants of circusd."""
        found = []
        for kid in self.daemon().children(recursive=True):
            try:
                if kid.status() == psutil.STATUS_ZOMBIE:
                    found.append(kid.pid)
            except psutil.NoSuchProcess:
                continue
        return found

    def in_tree(self, proc: psutil.Process) -> bool:
        """Whether ``proc`` descends from circusd (or is gone: nothing left to leak)."""
        assert self.proc is not None
        try:
            return any(parent.pid == self.proc.pid for parent in proc.parents())
        except psutil.NoSuchProcess:
            return True

    def converged(self) -> bool:
        """Every watcher active with exactly its numprocesses, all running."""
        for mode in MODES:
            answer = self.call("numprocesses", name=mode)
            pids = self.call("list", name=mode).get("pids")
            status = self.call("status", name=mode).get("status")
            if status != "active" or answer.get("numprocesses") != PER_WATCHER:
                return False
            if pids is None or len(pids) != PER_WATCHER:
                return False
        return True

    def _listen(self) -> None:
        """Count ``watcher.*`` events by kind until the run stops."""
        context = zmq.Context()
        sub = context.socket(zmq.SUB)
        sub.linger = 0
        sub.setsockopt(zmq.SUBSCRIBE, b"watcher.")
        sub.connect(self.pubsub)
        try:
            while not self._listening.is_set():
                if sub.poll(100):
                    topic = sub.recv_multipart()[0].decode(errors="replace")
                    self.events[topic.rsplit(".", 1)[-1]] += 1
        finally:
            sub.close()
            context.term()

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM circusd and wait; SIGKILL it and every tagged process if it hangs."""
        self.resume_all()
        self._listening.set()
        if self._listener is not None:
            self._listener.join(5)
        rc = None
        if self.proc is not None:
            began = time.monotonic()
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
                self.figures.stop_seconds = time.monotonic() - began
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for proc in tagged(self.tag):
            try:
                proc.kill()
            except psutil.Error:
                pass
        return rc

    def __enter__(self) -> ChaosRun:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- the storm

    def storm(
        self,
        seconds: float,
        clients: int = 4,
        kill_every: float = 0.05,
        client_timeout: float = 90.0,
        warm_up: bool = True,
        stop: threading.Event | None = None,
    ) -> Figures:
        """Run the killer and ``clients`` command senders for ``seconds`` (or until ``stop``
        is set); return the figures."""
        if warm_up:
            self.warm_up()
            self.figures.fd_before, self.figures.rss_before = self.fds(), self.rss()
        self._client_timeout = client_timeout
        spawned_before = self.events["spawn"]
        stop = stop or threading.Event()
        threads = [threading.Thread(target=self._killer, args=(stop, kill_every), daemon=True)]
        threads += [
            threading.Thread(target=self._client, args=(stop, i), daemon=True)
            for i in range(clients)
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        try:
            stop.wait(seconds)
        finally:
            stop.set()
            for t in threads:
                t.join(client_timeout + 30)
        self.figures.seconds = time.monotonic() - started
        self.figures.restarts = self.events["spawn"] - spawned_before
        self.resume_all()
        return self.figures

    def warm_up(self) -> None:
        """One of each command before measuring, so lazily created state is not 'drift'."""
        for mode in MODES:
            self.call("stats", name=mode)
            self.call("options", name=mode)
        self.call("incr", name="plain", nb=1, waiting=True)
        self.call("decr", name="plain", nb=1, waiting=True)
        self.call("reload", name="plain", waiting=True)
        wait_until(self.converged, 60, "convergence after the warm-up")

    def _killer(self, stop: threading.Event, every: float) -> None:
        rng = random.Random(self.rng.random())
        while not stop.wait(every):
            try:
                victims = self.daemon().children(recursive=True)
            except psutil.Error:
                return
            if not victims:
                continue
            victim = rng.choice(victims)
            action = rng.random()
            try:
                if action < 0.5:
                    victim.send_signal(signal.SIGKILL)
                    with self._lock:
                        self.figures.kills += 1
                        self._stopped.discard(victim.pid)
                else:
                    victim.send_signal(signal.SIGSTOP)
                    with self._lock:
                        self.figures.stops += 1
                        self._stopped.add(victim.pid)
            except psutil.Error:
                pass
            # continue the stopped ones a little later, in random order
            with self._lock:
                resumable = [p for p in self._stopped if rng.random() < 0.3]
                self._stopped.difference_update(resumable)
            for pid in resumable:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass

    def resume_all(self) -> None:
        """SIGCONT every process the killer stopped."""
        with self._lock:
            pending, self._stopped = set(self._stopped), set()
        for pid in pending:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def _random_command(self, rng: random.Random) -> tuple[str, dict[str, Any]]:
        name = rng.choice(MODES)
        kind = rng.choice(["incr", "decr", "restart", "reload", "signal", "set", "read", "read"])
        if kind == "incr":
            return "incr", {"name": name, "nb": rng.randint(1, 3), "waiting": rng.random() < 0.5}
        if kind == "decr":
            return "decr", {"name": name, "nb": rng.randint(1, 3), "waiting": rng.random() < 0.5}
        if kind == "restart":
            return "restart", {"name": name, "waiting": rng.random() < 0.5}
        if kind == "reload":
            return "reload", {
                "name": name,
                "graceful": rng.random() < 0.7,
                # one process at a time: with SIGTERM-ignoring children that is 10 graceful
                # timeouts in a row, so not too often
                "sequential": rng.random() < 0.1,
                "waiting": rng.random() < 0.5,
            }
        if kind == "signal":
            sig = rng.choice(["HUP", "USR1", "CONT", "TERM", "KILL"])
            return "signal", {"name": name, "signum": sig}
        if kind == "set":
            opt = rng.choice(["numprocesses", "graceful_timeout", "warmup_delay"])
            value: Any = {
                "numprocesses": rng.randint(5, 15),
                "graceful_timeout": rng.choice([0.5, 1.0]),
                "warmup_delay": 0,
            }[opt]
            return "set", {"name": name, "options": {opt: value}}
        return rng.choice(["status", "list", "stats", "numprocesses"]), {"name": name}

    def _client(self, stop: threading.Event, index: int) -> None:
        rng = random.Random(self.rng.random() + index)
        with CircusClient(self.endpoint, timeout=self._client_timeout, check=False) as client:
            while not stop.is_set():
                command, props = self._random_command(rng)
                began = time.monotonic()
                with self._lock:
                    self.figures.requests += 1
                    self.figures.commands[command] += 1
                try:
                    answer = client.call(command, props)
                except (CallTimeout, DaemonUnreachable):
                    with self._lock:
                        self.figures.unanswered += 1
                    continue
                latency = time.monotonic() - began
                with self._lock:
                    self.figures.answered += 1
                    self.figures.latencies.append(latency)
                    if command in READ_ONLY:
                        self.figures.read_latencies.append(latency)
                    if answer.get("status") not in (
                        "ok",
                        "active",
                        "stopped",
                        "stopping",
                        "starting",
                    ):
                        self.figures.errors[f"{command}: {answer.get('reason')}"[:120]] += 1
                stop.wait(rng.uniform(0.0, 0.02))

    # ---------------------------------------------------------------- afterwards

    def settle(self, timeout: float = 60.0) -> None:
        """Restore every watcher to its configured size and wait until it runs that many."""
        self.resume_all()
        for mode in MODES:
            answer = self.call("set", name=mode, options={"numprocesses": PER_WATCHER})
            assert answer.get("status") == "ok", answer
            if self.call("status", name=mode).get("status") != "active":
                self.call("start", name=mode, waiting=True)
        wait_until(self.converged, timeout, "every watcher back at its numprocesses")

    def check(self, rss_margin: int = 40 * 2**20, fd_margin: int = 8) -> list[str]:
        """What is wrong after :meth:`settle` (empty when nothing)."""
        problems = []
        fig = self.figures
        if fig.unanswered:
            problems.append(f"{fig.unanswered} requests unanswered")
        # orphaned grandchildren live at most a few seconds; let them finish and be reaped
        try:
            wait_until(lambda: not self.zombies(), 15, "no zombies")
        except AssertionError:
            problems.append(f"zombies: {self.zombies()}")
        outside = [p.pid for p in tagged(self.tag) if not self.in_tree(p)]
        if outside:
            problems.append(f"tagged processes outside circusd's tree: {outside}")
        # descriptors are closed as the reaps complete: allow them a moment to settle
        try:
            wait_until(lambda: self.fds() <= fig.fd_before + fd_margin, 15, "fd count")
        except AssertionError:
            pass
        fig.fd_after, fig.rss_after = self.fds(), self.rss()
        if fig.fd_after > fig.fd_before + fd_margin:
            problems.append(f"fd count grew {fig.fd_before} -> {fig.fd_after}")
        if fig.rss_after > fig.rss_before + rss_margin:
            problems.append(f"RSS grew {fig.rss_before} -> {fig.rss_after}")
        return problems
