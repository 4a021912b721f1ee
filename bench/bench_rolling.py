#!/usr/bin/env python3
"""Deploys under load: failed requests while a pre-fork HTTP app is redeployed.

The app is ``examples/rolling/app.py``: N workers accepting on one shared listening socket,
each taking ``--warmup`` seconds to get ready. A client (``examples/rolling/hammer.py``)
requests ``GET /`` back to back; a request that is refused, errors or takes longer than
0.5 s counts as failed. One second into the hammering the ``version`` file changes and the
manager redeploys:

* ``ours``: our circusd, ``readiness = notify``, ``circusctl reload web --waiting``;
* ``ours-plain``: our circusd without readiness (today's graceful reload), same command;
* ``circus``: upstream Circus 0.19, ``circusctl reload web --waiting``;
* ``supervisor``: Supervisor 4.3, ``[fcgi-program:web]`` (supervisord holds the socket),
  ``supervisorctl restart web:*``;
* ``circus-seq``: upstream Circus 0.19, ``circusctl reload web --sequential --waiting``
  (one worker at a time: stop one, start its replacement);
* ``…-broken`` (``ours-broken``, ``circus-broken``, ``circus-seq-broken``,
  ``supervisor-broken``): the same deploy of a release that never gets ready (ours must
  refuse it and keep the old workers serving; the others cannot tell).

The hammer goes on until every worker of the new version has had time to be ready (the
command returned, plus warmup + 1 s), then its tally is printed per peer.

Usage: python bench/bench_rolling.py [--workers 4] [--warmup 1] [--peers ours,circus,...]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EXAMPLE = ROOT / "examples" / "rolling"
sys.path.insert(0, str(BENCH))

from benchkit import procs, venvs  # noqa: E402 - bench/ is not a package

PEERS = (
    "ours", "ours-plain", "circus", "circus-seq", "supervisor",
    "ours-broken", "circus-broken", "circus-seq-broken", "supervisor-broken",
)  # fmt: skip


def _load_hammer() -> Any:
    spec = importlib.util.spec_from_file_location("rolling_hammer", EXAMPLE / "hammer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def circus_ini(work: Path, port: int, workers: int, readiness: bool, py: str) -> str:
    lines = [
        "[circus]",
        f"endpoint = ipc://{work}/ctl",
        f"pubsub_endpoint = ipc://{work}/pub",
        "check_delay = 5",
        "[socket:web]",
        "host = 127.0.0.1",
        f"port = {port}",
        "[watcher:web]",
        f"cmd = {py} app.py $(circus.sockets.web)",
        f"working_dir = {work}",
        "use_sockets = true",
        f"numprocesses = {workers}",
        "graceful_timeout = 10",
        "copy_env = true",
    ]
    if readiness:
        lines += ["readiness = notify", "readiness_timeout = 5"]
    return "\n".join(lines) + "\n"


def supervisor_conf(work: Path, port: int, workers: int, warmup: float, py: str) -> str:
    return f"""\
[unix_http_server]
file = {work}/supervisor.sock

[supervisord]
logfile = {work}/supervisord.log
pidfile = {work}/supervisord.pid
childlogdir = {work}
nodaemon = true

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl = unix://{work}/supervisor.sock

[fcgi-program:web]
socket = tcp://127.0.0.1:{port}
command = {py} app.py 0
directory = {work}
numprocs = {workers}
process_name = %(program_name)s_%(process_num)d
startsecs = {int(warmup + 0.999)}
stopwaitsecs = 10
stdout_logfile = {work}/web.log
redirect_stderr = true
"""


class Peer:
    """One manager running the app in ``work``; ``deploy()`` runs its redeploy command."""

    def __init__(self, name: str, work: Path, workers: int, warmup: float) -> None:
        self.name = name
        manager = name.removesuffix("-broken")
        self.work = work
        self.port = free_port()
        self.workers = workers
        self.warmup = warmup
        py = sys.executable
        if manager in ("ours", "ours-plain"):
            bindir = Path(sys.executable).parent
            self.ctl = [str(bindir / "circusctl"), "--endpoint", f"ipc://{work}/ctl"]
            config = work / "circus.ini"
            config.write_text(circus_ini(work, self.port, workers, manager == "ours", py))
            argv = [str(bindir / "circusd"), str(config)]
            self.deploy_argv = [*self.ctl, "reload", "web", "--waiting"]
        elif manager in ("circus", "circus-seq"):
            bindir = venvs.upstream_circus_venv() / "bin"
            self.ctl = [str(bindir / "circusctl"), "--endpoint", f"ipc://{work}/ctl"]
            config = work / "circus.ini"
            config.write_text(circus_ini(work, self.port, workers, False, py))
            argv = [str(bindir / "circusd"), str(config)]
            self.deploy_argv = [*self.ctl, "reload", "web", "--waiting"]
            if manager == "circus-seq":
                self.deploy_argv.append("--sequential")
        else:
            bindir = venvs.ensure_venv(venvs.SUPERVISOR) / "bin"
            config = work / "supervisord.conf"
            config.write_text(supervisor_conf(work, self.port, workers, warmup, py))
            argv = [str(bindir / "supervisord"), "-c", str(config)]
            self.ctl = [str(bindir / "supervisorctl"), "-c", str(config)]
            self.deploy_argv = [*self.ctl, "restart", "web:*"]
        env = {**os.environ, "APP_WARMUP": str(warmup)}
        self.log = open(work / "daemon.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, cwd=work, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=procs.die_with_parent,
        )  # fmt: skip

    def start_workers(self) -> None:
        """Start the app and return once every worker had time to be ready."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = (self.work / "daemon.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"{self.name}: daemon exited {self.proc.returncode}: {log}")
            if self.name.startswith("supervisor"):
                done = self._run([*self.ctl, "start", "web:*"])
            else:
                done = self._run([*self.ctl, "start", "web", "--waiting"])
            if done.returncode == 0 and b"error" not in done.stdout.lower():
                break
            time.sleep(0.2)
        time.sleep(self.warmup + 1.0)

    def deploy(self) -> tuple[float, int, str]:
        """Run the redeploy command: (seconds it took, exit status, its output)."""
        began = time.monotonic()
        done = self._run(self.deploy_argv)
        output = (done.stdout + done.stderr).decode(errors="replace").strip()
        return time.monotonic() - began, done.returncode, output

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(argv, capture_output=True, timeout=120, cwd=self.work)

    def stop(self) -> None:
        """End the daemon and everything it started."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.log.close()


def run_peer(name: str, workers: int, warmup: float, hammer_mod: Any) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"roll-{name}-", dir="/tmp"))
    try:
        shutil.copy(EXAMPLE / "app.py", work / "app.py")
        (work / "version").write_text("v1\n")
        peer = Peer(name, work, workers, warmup)
        try:
            peer.start_workers()
            hammer = hammer_mod.Hammer(peer.port).start()
            time.sleep(1.0)
            (work / "version").write_text("broken\n" if name.endswith("-broken") else "v2\n")
            took, status, output = peer.deploy()
            time.sleep(warmup + 1.0)
            tally = hammer.stop()
        finally:
            peer.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "peer": name,
        "deploy_seconds": round(took, 2),
        "deploy_status": status,
        "deploy_output": output[-300:],
        "requests": tally.total,
        "failed": tally.failed,
        "refused": tally.refused,
        "errors": tally.errors,
        "slow": tally.slow,
        "worst_seconds": round(tally.worst, 3),
        "versions": dict(tally.versions),
        "samples": tally.samples[:5],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--json", type=Path, default=BENCH / "results" / "rolling.json")
    args = parser.parse_args()
    hammer_mod = _load_hammer()
    rows = []
    for _ in range(args.runs):
        for name in args.peers.split(","):
            row = run_peer(name, args.workers, args.warmup, hammer_mod)
            rows.append(row)
            print(
                f"{name:12} failed {row['failed']:5} of {row['requests']:6} "
                f"(refused {row['refused']}, errors {row['errors']}, slow {row['slow']}), "
                f"worst {row['worst_seconds']:.3f} s, deploy {row['deploy_seconds']} s "
                f"exit {row['deploy_status']}, versions {row['versions']}",
                flush=True,
            )
            if row["deploy_status"] != 0 or row["failed"]:
                print(f"{'':12} {row['deploy_output'][:200]!r} {row['samples'][:2]}", flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
