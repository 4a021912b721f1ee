"""circusd SIGKILLed with 20 workers (each with a grandchild), then started again on the same
config: with ``on_crash = adopt`` the same processes are listed and managed; with
``on_crash = replace`` the old trees are gone before the new ones start; never two copies,
never one left unsupervised. A stale or corrupt state file adopts and kills nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.process import process_start_time
from circus.process.testing import wait_until

CIRCUSD = str(Path(sys.executable).with_name("circusd"))
N = 20

# A worker: it reports how many processes of the previous generation still run when it
# starts (the test writes their pids and start times to OLD), starts a grandchild, sleeps.
WORKER = """
import json, os, subprocess, sys, time
report, old, wid = sys.argv[1], sys.argv[2], sys.argv[3]

def runs(pid, start):
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
    except OSError:
        return False
    return fields[0] not in (b"Z", b"X") and int(fields[19]) == start

if os.path.exists(old):
    with open(old) as fh:
        still = ",".join(str(pid) for pid, start in json.load(fh) if runs(pid, start)) or "-"
    fd = os.open(report, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    os.write(fd, f"{os.getpid()} {still}\\n".encode())
    os.close(fd)
subprocess.Popen(["sleep", "600"])
if wid == "1":  # one grandchild escapes: its own session, reparented away (found by cgroup only)
    escapee = os.path.join(os.path.dirname(report), "escapee")
    line = f"setsid sleep 601 </dev/null >/dev/null 2>&1 & echo $! >>{escapee}"
    subprocess.run(["sh", "-c", line])
time.sleep(600)
"""


class Daemon:
    """circusd on ``dir``'s config; started again by :meth:`start` after a SIGKILL."""

    def __init__(self, directory: Path, on_crash: str, tracking: str) -> None:
        self.dir = directory
        self.endpoint = f"ipc://{directory}/ctl"
        self.runtime = directory / "run"
        self.runtime.mkdir(mode=0o700)
        (directory / "worker.py").write_text(WORKER)
        self.report = directory / "report"
        self.old = directory / "old.json"
        self.config = directory / "circus.ini"
        self.write(on_crash)
        self.env = {**os.environ, "CIRCUS_TREE_TRACKING": tracking}
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: Any = None

    def write(self, on_crash: str, numprocesses: int = N) -> None:
        self.config.write_text(
            f"[circus]\nendpoint = {self.endpoint}\npubsub_endpoint = ipc://{self.dir}/pub\n"
            f"loglevel = debug\non_crash = {on_crash}\nruntime_dir = {self.runtime}\n\n"
            f"[watcher:work]\ncmd = {sys.executable} {self.dir}/worker.py {self.report} "
            f"{self.old} $(circus.wid)\nnumprocesses = {numprocesses}\nstop_children = true\n"
            "graceful_timeout = 5\n"
        )

    def start(self, expect_fail: bool = False) -> subprocess.Popen[bytes]:
        with open(self.dir / "circusd.log", "ab") as log:
            proc = subprocess.Popen(
                [CIRCUSD, str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=self.env,
            )
        if expect_fail:
            return proc
        self.proc = proc
        wait_until(self._answers, 30, "circusd to answer")
        return proc

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"circusd exited {self.proc.returncode}: {self.log()}")
        if not os.path.exists(self.endpoint[len("ipc://") :]):
            return False
        try:
            return self.call("numwatchers", timeout=1).get("status") == "ok"
        except Exception:
            self.close_client()
            return False

    def log(self) -> str:
        return (self.dir / "circusd.log").read_text(errors="replace")

    def call(self, command: str, timeout: float = 15.0, **props: Any) -> dict[str, Any]:
        from circus.ctl import CircusClient

        if self.client is None:
            self.client = CircusClient(self.endpoint, timeout=timeout, check=False)
        self.client.timeout = timeout
        return dict(self.client.call(command, props))

    def pids(self) -> list[int]:
        return sorted(self.call("list", name="work")["pids"])

    def close_client(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def sigkill(self) -> None:
        assert self.proc is not None
        self.close_client()
        self.proc.kill()
        self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        self.close_client()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def state(self) -> dict[str, Any]:
        files = list(self.runtime.glob("circusd-*.state"))
        if not files:
            return {}
        return json.loads(files[0].read_text())

    def recorded(self) -> list[int]:
        watchers = self.state().get("watchers", {})
        return sorted(p["pid"] for p in watchers.get("work", {}).get("processes", []))


def _running(pid: int, start: int | None = None) -> bool:
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:
        return False
    return start is None or process_start_time(pid) == start


def _ours(directory: Path) -> list[psutil.Process]:
    """Every live worker of this test's config (its path is in their command line)."""
    marker = f"{directory}/worker.py"
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and marker in (
                proc.info["cmdline"] or []
            ):
                found.append(proc)
        except psutil.Error:
            continue
    return found


def _describe(pid: int) -> str:
    try:
        proc = psutil.Process(pid)
        return f"{proc.status()} ppid={proc.ppid()} {proc.cmdline()}"
    except psutil.Error:
        return "gone"


def _only_listed_run(d: Daemon) -> None:
    """Exactly the listed workers run (a worker's fork not yet exec'd shares its command
    line for an instant: waited out)."""
    wait_until(
        lambda: sorted(p.pid for p in _ours(d.dir)) == d.pids(), 30, "only the listed workers"
    )


def _grandchildren(pids: list[int]) -> dict[int, int]:
    """``{grandchild pid: its start time}`` of the given workers."""
    out = {}
    for pid in pids:
        try:
            for kid in psutil.Process(pid).children():
                start = process_start_time(kid.pid)
                if start is not None:
                    out[kid.pid] = start
        except psutil.NoSuchProcess:
            continue
    return out


def _kill_all(pids: Iterator[int] | list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def daemon(tmp_path: Path, request: Any) -> Iterator[Callable[[str, str], Daemon]]:
    from circus.process import tree_tracking

    # This test process gets a cgroup subtree of its own: the daemons below live (and sweep)
    # inside it, where no other circusd on this host sweeps the dead daemon's cgroups before
    # the restarted one claims them (then it would find trees through /proc only: README).
    tree_tracking()
    made: list[Daemon] = []

    def make(on_crash: str, tracking: str) -> Daemon:
        made.append(Daemon(tmp_path, on_crash, tracking))
        return made[-1]

    yield make
    for d in made:
        d.stop()
    leftovers = [p.pid for p in _ours(tmp_path)]
    _kill_all(leftovers)
    # their grandchildren are `sleep 600` started by them: found through the report too
    for d in made:
        _kill_all(d.__dict__.get("_all_grandchildren", ()))
        _kill_all(_escapees(d))


def _escapees(d: Daemon) -> list[int]:
    """Pids of the setsid'd grandchildren the workers of wid 1 started (oldest first)."""
    path = d.dir / "escapee"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def _first_generation(d: Daemon) -> tuple[list[int], dict[int, int]]:
    d.start()
    wait_until(lambda: len(d.pids()) == N, 60, f"{N} workers")
    pids = d.pids()
    wait_until(lambda: len(_grandchildren(pids)) == N, 60, "a grandchild under every worker")
    grandchildren = _grandchildren(pids)
    d.__dict__["_all_grandchildren"] = list(grandchildren)
    wait_until(lambda: d.recorded() == pids, 30, "the state file to list every worker")
    return pids, grandchildren


TRACKING = ["auto", "process-tree"]


@pytest.mark.slow
@pytest.mark.parametrize("tracking", TRACKING)
def test_adopt_after_sigkill_lists_and_manages_the_same_processes(
    daemon: Callable[[str, str], Daemon], tracking: str
) -> None:
    d = daemon("adopt", tracking)
    pids, grandchildren = _first_generation(d)
    starts = {pid: process_start_time(pid) for pid in pids}
    d.sigkill()
    assert all(_running(pid) for pid in pids), "the workers outlive a SIGKILLed circusd"

    d.start()
    assert d.pids() == pids, d.log()
    status = d.call("status", name="work")
    assert status.get("status") == "active", status
    # no duplicate: exactly the N adopted workers run, none was spawned beside them
    _only_listed_run(d)
    assert not d.report.exists()  # no worker started at all
    assert all(process_start_time(pid) == starts[pid] for pid in pids)

    wait_until(lambda: len(_escapees(d)) == 1, 30, "the escapee")
    escapee = _escapees(d)[-1]
    escapee_start = process_start_time(escapee)
    in_leaves = all("cgroup" in p for p in d.state()["watchers"]["work"]["processes"])

    # a kill from outside is noticed (through the pidfd) and the worker replaced
    victim = next(p["pid"] for p in d.state()["watchers"]["work"]["processes"] if p["wid"] == 2)
    orphan = [g for g in grandchildren if psutil.Process(g).ppid() == victim]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in d.pids() and len(d.pids()) == N, 30, "the respawn")
    _only_listed_run(d)
    _kill_all(orphan)  # the killed worker's own child, orphaned as with any worker

    # stop reaches the adopted trees whole: workers and grandchildren
    answer = d.call("stop", name="work", timeout=60)
    assert answer.get("status") == "ok", answer
    wait_until(lambda: not _ours(d.dir), 30, "every worker to be stopped")

    def survivors() -> list[int]:
        return [g for g, start in grandchildren.items() if g not in orphan and _running(g, start)]

    # signalled with their parents, they may not have run to their end yet on a loaded host
    try:
        wait_until(lambda: not survivors(), 10, "the grandchildren to end")
    except AssertionError:
        pass
    left = survivors()
    assert not left, f"grandchildren of adopted workers survived stop: {left} " + str(
        [_describe(g) for g in left]
    )
    if tracking == "auto" and in_leaves:
        # its old cgroup leaf was kept from the sweep and used: the escaped daemon ended too
        wait_until(lambda: not _running(escapee, escapee_start), 10, "the escapee to end")
    else:
        _kill_all([escapee])  # out of the worker's session and tree: /proc cannot find it


@pytest.mark.slow
@pytest.mark.parametrize("tracking", TRACKING)
def test_replace_after_sigkill_stops_old_trees_before_starting(
    daemon: Callable[[str, str], Daemon], tracking: str
) -> None:
    d = daemon("replace", tracking)
    pids, grandchildren = _first_generation(d)
    old = [[pid, process_start_time(pid)] for pid in pids]
    old += [[pid, start] for pid, start in grandchildren.items()]
    wait_until(lambda: len(_escapees(d)) == 1, 30, "the escapee")
    escapee = _escapees(d)[0]
    escapee_start = process_start_time(escapee)
    in_leaves = all("cgroup" in p for p in d.state()["watchers"]["work"]["processes"])
    if tracking == "auto" and in_leaves:
        old.append([escapee, escapee_start])  # its leaf is stopped whole: gone before too
    d.sigkill()
    d.old.write_text(json.dumps(old))

    d.start()
    wait_until(lambda: len(d.pids()) == N and set(d.pids()).isdisjoint(pids), 60, "new workers")
    wait_until(
        lambda: d.report.exists() and len(d.report.read_text().splitlines()) >= N,
        30,
        "every new worker's report",
    )
    reports = [line.split() for line in d.report.read_text().splitlines()]
    # each new worker found none of the old processes running when it started
    assert sorted(int(pid) for pid, _ in reports) == d.pids()
    late = {int(p) for _, still in reports if still != "-" for p in still.split(",")}
    assert not late, [(pid, _describe(pid)) for pid in late]
    assert not [pid for pid, start in old if _running(pid, start)]
    _only_listed_run(d)


@pytest.mark.slow
def test_second_circusd_refused_while_the_first_runs(
    daemon: Callable[[str, str], Daemon],
) -> None:
    d = daemon("adopt", "auto")
    d.write("adopt", numprocesses=2)
    d.start()
    wait_until(lambda: len(d.pids()) == 2, 30, "2 workers")
    before = d.pids()
    second = d.start(expect_fail=True)
    assert second.wait(60) != 0
    assert "another circusd" in d.log()
    assert d.pids() == before and all(_running(pid) for pid in before)
    _only_listed_run(d)


def _unrelated() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "600"])


@pytest.mark.slow
@pytest.mark.parametrize("corrupt", ["reused", "truncated", "garbage", "wrong-types"])
def test_stale_or_corrupt_state_adopts_and_kills_nothing(
    daemon: Callable[[str, str], Daemon], corrupt: str
) -> None:
    d = daemon("replace", "auto")
    d.write("replace", numprocesses=2)
    bystander = _unrelated()
    try:
        start = process_start_time(bystander.pid)
        assert start is not None
        state = {
            "format": 1,
            "boot_id": "",
            "written": 0.0,
            "daemon": {"pid": 2**22 - 1, "start_time": 1},
            "watchers": {
                "work": {
                    "command": "",
                    # the pid is a live unrelated process: recorded with another start time
                    "processes": [
                        {"pid": bystander.pid, "wid": 1, "start_time": start - 1, "started": 0}
                    ],
                }
            },
        }
        text = json.dumps(state)
        if corrupt == "truncated":
            text = text[: len(text) // 2]
        elif corrupt == "garbage":
            text = "\0\xff not json"
        elif corrupt == "wrong-types":
            state["watchers"]["work"]["processes"][0]["pid"] = str(bystander.pid)  # type: ignore[index]
            text = json.dumps(state)
        for name in ("adopt", "replace"):
            d.write(name, numprocesses=2)
            _write_state(d, text)
            d.start()
            wait_until(lambda: len(d.pids()) == 2, 30, "2 fresh workers")
            assert bystander.pid not in d.pids()
            assert bystander.poll() is None, "an unrelated process was killed"
            if corrupt != "reused":
                assert "ignoring the crash state file" in d.log()
            d.stop()
            assert not _ours(d.dir)
    finally:
        bystander.kill()
        bystander.wait(10)


def _write_state(d: Daemon, text: str) -> None:
    from circus.arbiter._crashstate import state_key

    key = state_key(str(d.config), d.endpoint)
    path = d.runtime / f"circusd-{key}.state"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", errors="surrogateescape") as fh:
        fh.write(text)


TALKER = """
import os, signal

def again(*_):
    print(f"again {os.getpid()}", flush=True)

signal.signal(signal.SIGUSR1, again)
print(f"started {os.getpid()}", flush=True)
while True:
    signal.pause()
"""


@pytest.mark.slow
def test_adopted_workers_output_keeps_flowing(daemon: Callable[[str, str], Daemon]) -> None:
    d = daemon("adopt", "auto")
    (d.dir / "talker.py").write_text(TALKER)
    out = d.dir / "out.log"
    d.config.write_text(
        f"[circus]\nendpoint = {d.endpoint}\npubsub_endpoint = ipc://{d.dir}/pub\n"
        f"runtime_dir = {d.runtime}\n\n[watcher:talk]\ncmd = {sys.executable} "
        f"{d.dir}/talker.py\nnumprocesses = 3\nstdout_stream.class = FileStream\n"
        f"stdout_stream.filename = {out}\n"
    )

    def lines(word: str) -> set[int]:
        text = out.read_text() if out.exists() else ""
        return {int(line.split()[1]) for line in text.splitlines() if line.startswith(word)}

    d.start()
    wait_until(lambda: len(lines("started")) == 3, 30, "3 workers to say they started")
    pids = sorted(d.call("list", name="talk")["pids"])
    assert sorted(lines("started")) == pids
    files = list(d.runtime.glob("circusd-*.state"))
    wait_until(
        lambda: (
            files and len(json.loads(files[0].read_text())["watchers"]["talk"]["processes"]) == 3
        ),
        30,
        "the state file",
    )
    d.sigkill()

    d.start()
    assert sorted(d.call("list", name="talk")["pids"]) == pids
    answer = d.call("signal", name="talk", signum="USR1")
    assert answer.get("status") == "ok", answer
    # what the adopted workers write goes on into the watcher's stream
    wait_until(lambda: lines("again") == set(pids), 30, "every adopted worker's output")
    d.stop()


@pytest.mark.slow
def test_a_worker_spawned_after_the_last_write_is_stopped(
    daemon: Callable[[str, str], Daemon],
) -> None:
    """One worker missing from the state file (spawned in the last moments before the crash):
    found in the dead daemon's cgroup leaves and stopped with its tree, never left running."""
    d = daemon("adopt", "auto")
    d.write("adopt", numprocesses=3)
    d.start()
    wait_until(lambda: len(d.pids()) == 3, 30, "3 workers")
    pids = d.pids()
    wait_until(lambda: len(_grandchildren(pids)) == 3, 30, "their grandchildren")
    wait_until(lambda: d.recorded() == pids, 30, "the state file")
    state = d.state()
    entries = state["watchers"]["work"]["processes"]
    if not all("cgroup" in e for e in entries):
        pytest.skip("trees are not tracked with cgroups here")
    missing = next(e for e in entries if e["wid"] != 1)  # not the one with a setsid'd child
    tree = {missing["pid"]: missing["start_time"], **_grandchildren([missing["pid"]])}
    d.sigkill()
    state["watchers"]["work"]["processes"] = [e for e in entries if e is not missing]
    _write_state(d, json.dumps(state))

    d.start()
    wait_until(lambda: len(d.pids()) == 3, 30, "3 workers again")
    assert missing["pid"] not in d.pids()
    assert set(pids) - {missing["pid"]} <= set(d.pids())  # the recorded ones were adopted
    assert not [pid for pid, start in tree.items() if _running(pid, start)]
    _only_listed_run(d)
    assert "after its last state write" in d.log()


SERVER = """
import os, socket, sys

fd = int(sys.argv[1])
if sys.argv[2:] == ["move"]:  # the socket moves to another descriptor number
    os.dup2(fd, 100)
    os.close(fd)
    fd = 100
listener = socket.socket(fileno=fd)
listener.setblocking(True)  # circusd's sockets are non-blocking by default
while True:
    conn, _ = listener.accept()
    conn.sendall(f"{os.getpid()}\\n".encode())
    conn.close()
"""


def _ask(port: int) -> int:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        return int(conn.makefile().readline())


@pytest.mark.slow
@pytest.mark.parametrize(("on_crash", "move"), [("adopt", ""), ("replace", ""), ("adopt", "move")])
def test_a_socket_the_old_workers_hold_is_taken_over(
    daemon: Callable[[str, str], Daemon], on_crash: str, move: str
) -> None:
    """The old workers keep the [socket:] bound: binding it again would fail and circusd
    would not start at all; it takes the socket from them instead."""
    d = daemon(on_crash, "auto")
    (d.dir / "server.py").write_text(SERVER)
    d.config.write_text(
        f"[circus]\nendpoint = {d.endpoint}\npubsub_endpoint = ipc://{d.dir}/pub\n"
        f"runtime_dir = {d.runtime}\non_crash = {on_crash}\n\n"
        "[socket:web]\nhost = 127.0.0.1\nport = 0\n\n"
        f"[watcher:web]\ncmd = {sys.executable} {d.dir}/server.py $(circus.sockets.web) {move}\n"
        "use_sockets = true\nnumprocesses = 2\nstop_children = true\ngraceful_timeout = 5\n"
    )
    d.start()
    port = d.call("listsockets")["sockets"][0]["port"]
    wait_until(lambda: len(d.call("list", name="web")["pids"]) == 2, 30, "2 servers")
    old = sorted(d.call("list", name="web")["pids"])
    assert _ask(port) in old
    wait_until(
        lambda: (
            d.state().get("watchers", {}).get("web", {}).get("processes", [None]) != [None]
            and len(d.state()["watchers"]["web"]["processes"]) == 2
        ),
        30,
        "the state file",
    )
    d.sigkill()
    assert _ask(port) in old  # the orphans still serve

    d.start()  # was: "cannot bind: address already in use", and circusd exited
    assert d.call("listsockets")["sockets"][0]["port"] == port
    if on_crash == "adopt":
        assert sorted(d.call("list", name="web")["pids"]) == old
        assert d.call("incr", name="web").get("status") == "ok"  # a new one gets the socket
        wait_until(lambda: len(d.call("list", name="web")["pids"]) == 3, 30, "3 servers")
    else:
        wait_until(
            lambda: (
                set(d.call("list", name="web")["pids"]).isdisjoint(old)
                and len(d.call("list", name="web")["pids"]) == 2
            ),
            30,
            "2 new servers",
        )
        assert not any(_running(pid) for pid in old)
    new = set(d.call("list", name="web")["pids"])
    assert all(_ask(port) in new for _ in range(5))
    d.stop()
