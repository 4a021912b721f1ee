"""The real ``supervisorctl`` (Supervisor 4.3.0, in its own venv) against our ``circusd`` and
against a real ``supervisord`` running the same supervisord.conf: the same commands print the
same thing (pids, uptimes and dates aside) and exit with the same status."""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from circus.process.testing import wait_until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchkit.procs import BenchError  # noqa: E402 - bench/ is not a package
from benchkit.settings import CACHE_DIR  # noqa: E402
from benchkit.venvs import ensure_venv  # noqa: E402

pytestmark = pytest.mark.slow

CIRCUSD = str(Path(sys.executable).with_name("circusd"))
SUPERLANCE = ("supervisor-superlance", ("supervisor==4.3.0", "superlance==2.0.0"))
PROGRAM = "/usr/bin/env python3 -u -c"


def supervisor_venv() -> Path:
    """Supervisor 4.3.0 + superlance 2.0.0 in their own venv (built once, under a lock)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "supervisor-superlance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return ensure_venv(SUPERLANCE)
        except BenchError as exc:
            pytest.skip(f"cannot build the Supervisor venv: {exc}")
    raise AssertionError("unreachable")


CONF = """\
[unix_http_server]
file=%(here)s/supervisor.sock
chmod=0700

[supervisord]
logfile=%(here)s/supervisord.log
pidfile=%(here)s/supervisord.pid
childlogdir=%(here)s/logs
nodaemon=true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:web]
command={python} "import time; print('web says hello'); print('and more'); time.sleep(300)"
startsecs=1
stopwaitsecs=10

[program:worker]
command={python} "import time; time.sleep(300)"
numprocs=2
process_name=%(program_name)s_%(process_num)02d
startsecs=1
stopwaitsecs=10

[program:idle]
command={python} "import time; time.sleep(300)"
autostart=false
startsecs=0

[program:ghost]
command=/nonexistent/bin/ghost
autostart=false

[program:broken]
command={python} "raise SystemExit(4)"
autostart=false
startsecs=10
startretries=0
"""


class Server:
    """A daemon (circusd or supervisord) on a supervisord.conf; ``ctl`` runs supervisorctl."""

    def __init__(self, argv: list[str], folder: Path, venv: Path) -> None:
        self.folder = folder
        self.conf = folder / "supervisord.conf"
        self.venv = venv
        (folder / "logs").mkdir(exist_ok=True)
        self.conf.write_text(CONF.format(python=PROGRAM) + circus_section(folder))
        self.log = open(folder / "daemon.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [*argv, str(self.conf)], stdout=self.log, stderr=subprocess.STDOUT, cwd=folder
        )
        self.tree: set[int] = set()

    def ctl(self, *args: str) -> tuple[int, str]:
        done = subprocess.run(
            [str(self.venv / "bin" / "supervisorctl"), "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.returncode, done.stdout + done.stderr

    def running(self, *names: str) -> bool:
        assert self.proc.poll() is None, (self.folder / "daemon.out").read_text()
        _, out = self.ctl("status")
        lines = [line.split() for line in out.splitlines()]
        states = {parts[0]: parts[1] for parts in lines if len(parts) > 1}
        return all(states.get(name) == "RUNNING" for name in names)

    def stop(self) -> None:
        with contextlib.suppress(psutil.NoSuchProcess):
            self.tree |= {p.pid for p in psutil.Process(self.proc.pid).children(recursive=True)}
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for pid in self.tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.log.close()


@contextlib.contextmanager
def server(kind: str, folder: Path, venv: Path) -> Iterator[Server]:
    folder.mkdir()
    argv = [CIRCUSD] if kind == "circusd" else [str(venv / "bin" / "supervisord"), "-n", "-c"]
    srv = Server(argv, folder, venv)
    try:
        yield srv
    finally:
        srv.stop()
        show(folder / "daemon.out")


SCRIPT = [
    ("status",),
    ("avail",),
    ("stop", "web"),
    ("status", "web"),
    ("stop", "web"),
    ("start", "web"),
    ("start", "web"),
    ("restart", "worker:*"),
    ("stop", "worker:worker_01"),
    ("status",),
    ("start", "all"),
    ("tail", "web"),
    ("clear", "web"),
    ("tail", "web"),
    ("signal", "USR1", "nope"),
    ("signal", "NOTASIGNAL", "web"),
    ("maintail", "-5"),
    ("pid",),
    ("pid", "web"),
    ("status", "nope"),
    ("start", "nope"),
    ("stop", "idle"),
    ("start", "broken"),
    ("start", "ghost"),
    ("status", "idle", "broken"),
    ("restart", "idle"),
    ("stop", "all"),
    ("status",),
]


def circus_section(folder: Path) -> str:
    """circusd's own endpoints as ipc sockets in ``folder`` (without it, a supervisord.conf
    gets Circus's default tcp ports, shared by every test running at once); supervisord
    ignores the section."""
    return f"\n[circus]\nendpoint = ipc://{folder}/ctl\npubsub_endpoint = ipc://{folder}/pub\n"


def show(log: Path) -> None:
    """Print the end of a daemon's output (pytest shows it when the test fails)."""
    if log.exists():
        print(f"--- {log}:\n{log.read_text(errors='replace')[-4000:]}")


def normalize(text: str) -> str:
    text = re.sub(r"pid \d+, uptime \d+:\d\d:\d\d", "pid N, uptime T", text)
    text = re.sub(r"^\d+$", "N", text, flags=re.M)
    text = re.sub(r"[A-Z][a-z][a-z] \d\d \d\d:\d\d [AP]M", "DATE", text)
    return text


def transcript(srv: Server) -> list[tuple[tuple[str, ...], int, str]]:
    out = []
    for command in SCRIPT:
        code, text = srv.ctl(*command)
        text = normalize(text)
        if command[0] == "maintail":  # each daemon's own log: served, its text differs
            text = "LOG" if text.strip() else ""
        if command[0] != "status" and any(a == "all" or a.endswith(":*") for a in command):
            # supervisord lists the results of a group's processes as they finish
            text = "\n".join(sorted(text.splitlines()))
        out.append((command, code, text))
    return out


def test_supervisorctl_prints_the_same_against_circusd(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    venv = supervisor_venv()

    def session(kind: str) -> list[tuple[tuple[str, ...], int, str]]:
        with server(kind, tmp_path / kind, venv) as srv:
            wait_until(
                lambda: srv.running("web", "worker:worker_00", "worker:worker_01"),
                60,
                f"{kind}: every autostart program RUNNING",
            )
            out = transcript(srv)
            code, _ = srv.ctl("shutdown")
            assert code == 0
            assert srv.proc.wait(60) == 0
            return out

    # both daemons at once (their own folders and sockets): half the wall time
    with ThreadPoolExecutor(2) as pool:
        kinds = ("supervisord", "circusd")
        runs = dict(zip(kinds, pool.map(session, kinds), strict=True))
    for expected, got in zip(runs["supervisord"], runs["circusd"], strict=True):
        assert got == expected


TICKER_CONF = """\
[unix_http_server]
file=%(here)s/supervisor.sock

[supervisord]
nodaemon=true

[supervisorctl]
serverurl=unix://%(here)s/supervisor.sock

[program:ticker]
command=/usr/bin/env python3 -u %(here)s/ticker.py
startsecs=0
"""


def test_tail_follows_the_output(tmp_path: Path) -> None:
    venv = supervisor_venv()
    conf = tmp_path / "supervisord.conf"
    conf.write_text(TICKER_CONF + circus_section(tmp_path))
    (tmp_path / "ticker.py").write_text(
        "import itertools, time\nfor n in itertools.count():\n    print('tick', n)\n"
        "    time.sleep(0.1)\n"
    )
    with open(tmp_path / "circusd.out", "wb") as out:
        daemon = subprocess.Popen([CIRCUSD, str(conf)], stdout=out, stderr=subprocess.STDOUT)
    ctl = [str(venv / "bin" / "supervisorctl"), "-c", str(conf)]
    try:
        wait_until(
            lambda: (
                "RUNNING"
                in subprocess.run(
                    [*ctl, "status"], capture_output=True, text=True, timeout=60
                ).stdout
            ),
            60,
            "the ticker RUNNING",
        )
        follow = open(tmp_path / "follow.txt", "wb")  # noqa: SIM115 - closed below
        tail = subprocess.Popen([*ctl, "tail", "-f", "ticker"], stdout=follow, stderr=follow)
        try:

            def ticks() -> list[int]:
                text = (tmp_path / "follow.txt").read_text(errors="replace")
                return [int(n) for n in re.findall(r"^tick (\d+)$", text, re.M)]

            wait_until(lambda: len(ticks()) >= 5, 60, "tail -f to follow the ticks")
            seen = ticks()
            assert seen == list(range(seen[0], seen[0] + len(seen)))  # in order, none lost
            first = seen[-1]
            wait_until(lambda: ticks()[-1] >= first + 5, 60, "more ticks as they come")
        finally:
            tail.terminate()
            tail.wait(30)
            follow.close()
    finally:
        show(tmp_path / "circusd.out")  # printed with a failure only (captured)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0


def test_sighup_reload_is_followed(tmp_path: Path) -> None:
    venv = supervisor_venv()
    conf = tmp_path / "supervisord.conf"
    sleeper = '/usr/bin/env python3 -c "import time; time.sleep(300)"'
    base = TICKER_CONF.replace("/usr/bin/env python3 -u %(here)s/ticker.py", sleeper)
    base += circus_section(tmp_path)
    conf.write_text(base)
    with open(tmp_path / "circusd.out", "wb") as out:
        daemon = subprocess.Popen([CIRCUSD, str(conf)], stdout=out, stderr=subprocess.STDOUT)
    ctl = [str(venv / "bin" / "supervisorctl"), "-c", str(conf)]

    def status() -> dict[str, str]:
        text = subprocess.run([*ctl, "status"], capture_output=True, text=True, timeout=60).stdout
        return {p[0]: p[1] for p in (line.split() for line in text.splitlines()) if len(p) > 1}

    try:
        wait_until(lambda: status() == {"ticker": "RUNNING"}, 60, "the first program RUNNING")
        conf.write_text(base + f"\n[program:extra]\ncommand={sleeper}\nstartsecs=0\n")
        daemon.send_signal(signal.SIGHUP)
        wait_until(
            lambda: status() == {"ticker": "RUNNING", "extra": "RUNNING"},
            60,
            "the program the reload added, RUNNING",
        )
        done = subprocess.run([*ctl, "stop", "extra"], capture_output=True, text=True, timeout=60)
        assert done.stdout == "extra: stopped\n"
        assert status() == {"ticker": "RUNNING", "extra": "STOPPED"}
        conf.write_text(base)
        daemon.send_signal(signal.SIGHUP)
        wait_until(lambda: status() == {"ticker": "RUNNING"}, 60, "the removed program gone")
        # supervisorctl reload: every process stopped and started again, the file re-read
        before = subprocess.run([*ctl, "pid", "ticker"], capture_output=True, text=True).stdout
        done = subprocess.run([*ctl, "reload"], capture_output=True, text=True, timeout=60)
        assert done.stdout == "Restarted supervisord\n"

        def restarted() -> bool:
            now = subprocess.run([*ctl, "pid", "ticker"], capture_output=True, text=True)
            return now.stdout.strip() not in ("0", before.strip(), "")

        wait_until(restarted, 60, "the ticker restarted by reload")
    finally:
        show(tmp_path / "circusd.out")  # printed with a failure only (captured)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0


INET_CONF = """\
[inet_http_server]
port=127.0.0.1:0
username=ops
password={password}

[supervisord]
nodaemon=true

[supervisorctl]

[program:web]
command=/usr/bin/env python3 -c "import time; time.sleep(300)"
startsecs=0
"""


def test_inet_with_credentials(tmp_path: Path) -> None:
    import hashlib

    venv = supervisor_venv()
    conf = tmp_path / "supervisord.conf"
    password = "{SHA}" + hashlib.sha1(b"s3cret").hexdigest()
    conf.write_text(INET_CONF.format(password=password) + circus_section(tmp_path))
    log = tmp_path / "circusd.out"
    with open(log, "wb") as out:
        daemon = subprocess.Popen([CIRCUSD, str(conf)], stdout=out, stderr=subprocess.STDOUT)

    def url() -> str | None:
        found = re.search(r"XML-RPC interface listening on (http://\S+)", log.read_text())
        return found.group(1) if found else None

    try:
        wait_until(url, 60, "circusd to say where the XML-RPC interface listens")
        ctl = [str(venv / "bin" / "supervisorctl"), "-c", str(conf), "-s", str(url())]

        def run(*args: str) -> tuple[int, str]:
            done = subprocess.run([*ctl, *args], capture_output=True, text=True, timeout=60)
            return done.returncode, done.stdout

        wait_until(lambda: "RUNNING" in run("-u", "ops", "-p", "s3cret", "status")[1], 60, "web")
        # (supervisorctl then retries once and prints the 401 as an error, as with supervisord)
        for args in (("-u", "ops", "-p", "wrong"), ()):
            code, text = run(*args, "status")
            assert text.startswith("Server requires authentication\n") and "401" in text
            assert "RUNNING" not in text
        assert run("-u", "ops", "-p", "s3cret", "stop", "web") == (0, "web: stopped\n")
    finally:
        show(tmp_path / "circusd.out")  # printed with a failure only (captured)
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(60) == 0
