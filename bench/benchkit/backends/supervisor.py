"""Supervisor 4.3: supervisord with a generated config, driven by XML-RPC over a unix socket.

Supervisor publishes no spawn event a client can subscribe to, so respawn uses the base
class's 1 ms /proc polling. ``numprocs`` is static in Supervisor, hence one program group of
``numprocesses`` entries per session.
"""

from __future__ import annotations

import http.client
import shlex
import socket
import subprocess
import xmlrpc.client
from pathlib import Path
from typing import Any

from .. import venvs
from ..procs import BenchError
from .base import Backend, ProgramSpec, Session
from .daemon import DaemonSession

SUCCESS = 80  # supervisor.xmlrpc.Faults.SUCCESS


def render_conf(spec: ProgramSpec, sock: Path, workdir: Path) -> str:
    """The supervisord config for ``spec``: one group of ``numprocesses`` programs."""
    # Supervisor expands %(...)s in values, so a literal % must be doubled.
    command = shlex.join(spec.argv).replace("%", "%%")
    out = f"{spec.stdout_file}" if spec.stdout_file is not None else "NONE"
    return f"""\
[unix_http_server]
file = {sock}

[supervisord]
logfile = {workdir}/supervisord.log
pidfile = {workdir}/supervisord.pid
childlogdir = {workdir}
nodaemon = true
minfds = 1024
minprocs = 200

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://{sock}

[program:{spec.name}]
command = {command}
numprocs = {spec.numprocesses}
process_name = %(program_name)s_%(process_num)d
autostart = {str(spec.autostart).lower()}
autorestart = {str(spec.respawn).lower()}
startsecs = 0
startretries = 0
stopwaitsecs = 10
stdout_logfile = {out}
stdout_logfile_maxbytes = 0
stdout_logfile_backups = 0
stderr_logfile = NONE
"""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class UnixTransport(xmlrpc.client.Transport):
    """XML-RPC over HTTP on a unix socket, keeping one connection open like a real client."""

    def __init__(self, path: str, timeout: float = 900.0) -> None:
        super().__init__()
        self._path = path
        self._timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        if self._connection[1] is None:
            self._connection = host, _UnixConnection(self._path, self._timeout)
        return self._connection[1]


class SupervisorSession(DaemonSession):
    """One supervisord in ``workdir``; commands through one persistent XML-RPC connection."""

    def __init__(self, spec: ProgramSpec, workdir: Path, bindir: Path) -> None:
        sock = workdir / "sup.sock"
        self.conf = workdir / "supervisord.conf"
        self.conf.write_text(render_conf(spec, sock, workdir))
        self.supervisorctl = str(bindir / "supervisorctl")
        argv = [str(bindir / "supervisord"), "-n", "-c", str(self.conf)]
        super().__init__(spec, workdir, argv, "supervisord.out")
        self.rpc = xmlrpc.client.ServerProxy("http://localhost", transport=UnixTransport(str(sock)))
        try:
            self.wait_ready(self._answers)
        except BaseException:
            self.close()
            raise

    def _answers(self) -> bool:
        try:
            return self.rpc.supervisor.getState()["statecode"] == 1  # RUNNING
        except (OSError, http.client.HTTPException, xmlrpc.client.Error):
            return False

    def _check(self, results: list[dict[str, Any]], what: str) -> None:
        bad = [r for r in results if r.get("status") != SUCCESS]
        if bad:
            raise BenchError(f"supervisord {what}: {len(bad)} failed, e.g. {bad[0]}")

    def start(self, wait: bool = True) -> None:
        self._check(self.rpc.supervisor.startProcessGroup(self.spec.name, wait), "start")

    def stop(self) -> None:
        self._check(self.rpc.supervisor.stopProcessGroup(self.spec.name, True), "stop")

    def call_status(self) -> None:
        self.rpc.supervisor.getState()

    def call_list(self) -> None:
        infos = self.rpc.supervisor.getAllProcessInfo()
        if len(infos) != self.spec.numprocesses:
            raise BenchError(f"getAllProcessInfo answered {len(infos)} entries")

    def cli_status(self) -> None:
        done = subprocess.run(
            [self.supervisorctl, "-c", str(self.conf), "status"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        # 0: all running; 3: some not running (still a full answer).
        if done.returncode not in (0, 3):
            raise BenchError(
                f"supervisorctl status exited {done.returncode}: {done.stderr[-300:]!r}"
            )

    def ask_quit(self) -> None:
        self.rpc.supervisor.shutdown()

    def release(self) -> None:
        self.rpc("close")()


class SupervisorBackend(Backend):
    """supervisord/supervisorctl 4.3.0 from PyPI, in a cached venv (.cache/bench-supervisor)."""

    name = "supervisor"

    def __init__(self) -> None:
        self.bindir: Path | None = None

    def prepare(self) -> None:
        self.bindir = venvs.ensure_venv(venvs.SUPERVISOR) / "bin"

    def open(self, spec: ProgramSpec, workdir: Path) -> Session:
        assert self.bindir is not None, "prepare() first"
        return SupervisorSession(spec, workdir, self.bindir)

    def describe(self) -> str:
        return f"Supervisor 4.3.0 ({self.bindir}/supervisord, XML-RPC on a unix socket)"
