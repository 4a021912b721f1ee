"""circusd, ours or upstream 0.19: a generated INI, driven over raw ZeroMQ on ipc:// paths.

Both daemons read the same INI and speak the same protocol (shared/spec/protocol.md), so one
session class serves both; they differ only in where ``circusd``/``circusctl`` come from.
Requests go through a DEALER (one JSON frame, the reply matched by ``id``); respawn is timed
with the daemon's own ``watcher.<name>.spawn`` event on the pub/sub channel.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from .. import venvs
from ..procs import BenchError
from .base import Backend, ProgramSpec, Session
from .daemon import READY_TIMEOUT, DaemonSession


def render_ini(
    spec: ProgramSpec, control: str, pubsub: str, no_backoff: tuple[str, ...] = ()
) -> str:
    """The circusd INI for ``spec`` (Circus 0.19 syntax: ours and upstream both read it).

    ``no_backoff`` holds the watcher lines that turn the daemon's crash-loop backoff off,
    written when ``spec.no_backoff`` asks for it.
    """
    lines = [
        "[circus]",
        f"endpoint = {control}",
        f"pubsub_endpoint = {pubsub}",
        # empty disables UDP discovery, which would otherwise bind 0.0.0.0
        "multicast_endpoint =",
        "statsd = false",
        "",
        f"[watcher:{spec.name}]",
        f"cmd = {shlex.quote(spec.argv[0])}",
        f"args = {shlex.join(spec.argv[1:])}",
        f"numprocesses = {spec.numprocesses}",
        f"autostart = {str(spec.autostart).lower()}",
        f"respawn = {str(spec.respawn).lower()}",
        "graceful_timeout = 10",
        "copy_env = true",
    ]
    if spec.no_backoff:
        lines += no_backoff
    if spec.stdout_file is not None:
        lines += [
            "stdout_stream.class = FileStream",
            f"stdout_stream.filename = {spec.stdout_file}",
        ]
    return "\n".join(lines) + "\n"


class CircusSession(DaemonSession):
    """One circusd on ipc:// endpoints in ``workdir``, with one DEALER and one SUB socket."""

    def __init__(
        self,
        spec: ProgramSpec,
        workdir: Path,
        circusd: str,
        circusctl: str,
        no_backoff: tuple[str, ...] = (),
    ) -> None:
        self.control = f"ipc://{workdir}/ctrl.sock"
        self.pubsub = f"ipc://{workdir}/pub.sock"
        self.circusctl = circusctl
        ini = workdir / "circus.ini"
        ini.write_text(render_ini(spec, self.control, self.pubsub, no_backoff))
        super().__init__(spec, workdir, [circusd, str(ini)], "circusd.log")
        self.ctx = zmq.Context()
        self.dealer = self.ctx.socket(zmq.DEALER)
        self.dealer.linger = 0
        self.sub = self.ctx.socket(zmq.SUB)
        self.sub.linger = 0
        try:
            self.dealer.connect(self.control)
            self.sub.subscribe(f"watcher.{spec.name}.".encode())
            monitor = self.sub.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
            try:
                self.sub.connect(self.pubsub)
                self.wait_ready(self._answers)
                self._wait_subscribed(monitor)
            finally:
                self.sub.disable_monitor()
                monitor.close()
        except BaseException:
            self.close()
            raise

    # -- plumbing --------------------------------------------------------------------------
    def call(self, command: str, timeout: float = 30.0, **props: Any) -> dict[str, Any]:
        """Send one command, return the reply with the same id; BenchError on error/timeout."""
        msg_id = uuid.uuid4().hex
        self.dealer.send(
            json.dumps({"command": command, "properties": props, "id": msg_id}).encode()
        )
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.dealer.poll(left * 1000):
                raise BenchError(f"circusd: no answer to {command} within {timeout:g}s")
            reply = json.loads(self.dealer.recv())
            if reply.get("id") != msg_id:
                continue  # a late answer to an earlier, timed-out request
            if reply.get("status") == "error":
                raise BenchError(f"circusd: {command} failed: {reply.get('reason')}")
            return reply

    def _answers(self) -> bool:
        try:
            self.call("status", timeout=1.0)
        except BenchError:
            return False
        return True

    def _wait_subscribed(self, monitor: zmq.Socket) -> None:
        # A SUB that connected before the daemon bound its ipc path retries only every 100 ms,
        # and events published before it is through are lost (the slow joiner): the respawn
        # workload would then wait for a spawn event that already went by.
        if not monitor.poll(READY_TIMEOUT * 1000):
            raise BenchError(f"pub/sub endpoint {self.pubsub} not connected")
        recv_monitor_message(monitor)

    # -- Session ---------------------------------------------------------------------------
    def start(self, wait: bool = True) -> None:
        self.call("start", timeout=900.0, name=self.spec.name, waiting=wait)

    def stop(self) -> None:
        self.call("stop", timeout=900.0, name=self.spec.name, waiting=True)

    def call_status(self) -> None:
        self.call("status")

    def call_list(self) -> None:
        reply = self.call("list", name=self.spec.name)
        if len(reply.get("pids", ())) != self.spec.numprocesses:
            raise BenchError(f"list answered {len(reply.get('pids', ()))} pids")

    def cli_status(self) -> None:
        done = subprocess.run(
            [self.circusctl, "--endpoint", self.control, "status"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise BenchError(f"circusctl status exited {done.returncode}: {done.stderr[-300:]!r}")

    def respawn_once(self, old: int, timeout: float = 60.0) -> tuple[float, int]:
        """SIGKILL ``old``; time until the daemon publishes ``spawn`` for another pid."""
        while self.sub.poll(0):  # drop events from before the kill
            self.sub.recv_multipart()
        t0 = time.perf_counter()
        os.kill(old, signal.SIGKILL)
        deadline = t0 + timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0 or not self.sub.poll(left * 1000):
                raise BenchError(f"no spawn event within {timeout:g}s of killing pid {old}")
            topic, payload = self.sub.recv_multipart()
            if topic.endswith(b".spawn"):
                pid = json.loads(payload).get("process_pid")
                if pid != old:
                    self.track([pid])
                    return time.perf_counter() - t0, pid

    def ask_quit(self) -> None:
        self.call("quit", timeout=5.0)

    def release(self) -> None:
        for sock in (self.dealer, self.sub):
            sock.close()
        self.ctx.term()


class CircusBackend(Backend):
    """circusd + circusctl from a given bin directory (ours: the project venv)."""

    #: INI lines turning the daemon's crash-loop backoff off (upstream has none).
    no_backoff: tuple[str, ...] = ()

    def __init__(self, name: str, bindir: Path | None, label: str) -> None:
        self.name = name
        self.bindir = bindir
        self.label = label

    def open(self, spec: ProgramSpec, workdir: Path) -> Session:
        assert self.bindir is not None, "prepare() first"
        bindir = self.bindir
        return CircusSession(
            spec, workdir, str(bindir / "circusd"), str(bindir / "circusctl"), self.no_backoff
        )

    def describe(self) -> str:
        return f"{self.label} ({self.bindir}/circusd)"


class OursBackend(CircusBackend):
    """Our circusd from the project venv; unavailable until circus.arbiter.circusd lands."""

    # Ours backs off on a crash loop (circus-watcher README, "Restart policy"); 0 disables it.
    no_backoff = ("backoff_initial = 0",)

    def __init__(self) -> None:
        super().__init__("ours", Path(sys.executable).parent, "our circusd")

    def unavailable(self) -> str | None:
        try:
            found = importlib.util.find_spec("circus.arbiter.circusd")
        except ImportError as exc:
            return f"circus.arbiter.circusd not importable: {exc}"
        if found is None:
            return "circus.arbiter.circusd not importable (not written yet?)"
        if not (self.bindir / "circusd").exists():  # type: ignore[operator]
            return f"no circusd script in {self.bindir}"
        return None


class UpstreamBackend(CircusBackend):
    """Circus 0.19.0 from PyPI, in its own cached venv (.cache/upstream-circus)."""

    def __init__(self) -> None:
        super().__init__("circus", None, "upstream Circus 0.19.0")

    def prepare(self) -> None:
        self.bindir = venvs.upstream_circus_venv() / "bin"
