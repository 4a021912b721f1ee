"""``circus-plugin``: one plugin class run in its own process against a real circusd."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter.circus_plugin import parse_config
from circus.ctl import CircusClient
from circus.process.testing import wait_until

BIN = Path(sys.executable).parent
PY = sys.executable

# A plugin whose every effect is observable from outside: it answers with a `call`, acts with
# a `cast`, logs the events it receives and its stop into the file named by `out`.
PLUGIN = """
from circus.plugins import CircusPlugin


class Probe(CircusPlugin):
    name = "probe"

    def _write(self, line):
        with open(self.config["out"], "a") as out:
            out.write(line + "\\n")

    def handle_init(self):
        self.loop.add_callback(self.greet)

    def greet(self):
        answer = self.call("numwatchers")
        self._write(f"numwatchers {answer['numwatchers']} delay {self.check_delay}")
        self.cast("incr", name=self.config["grow"])

    def handle_recv(self, data):
        watcher, event, _ = self.split_data(data)
        self._write(f"event {watcher} {event}")

    def handle_stop(self):
        self._write("stopped")
"""


def _stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(10)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """``start_daemon(circus_extra="", **client_kwargs)``: a circusd subprocess with a
    `sleeper` and a short-lived `ticker` (events all the time); stopped (exit 0) after."""
    ctl, pub = f"ipc://{tmp_path}/ctl", f"ipc://{tmp_path}/pub"
    started: list[tuple[subprocess.Popen[bytes], CircusClient]] = []

    def start(circus_extra: str = "", **client_kwargs: Any) -> dict[str, Any]:
        (tmp_path / "circus.ini").write_text(
            f"[circus]\nendpoint = {ctl}\npubsub_endpoint = {pub}\n{circus_extra}"
            f"[watcher:sleeper]\ncmd = {PY} -c 'import time; time.sleep(300)'\n"
            "graceful_timeout = 5\n"
            f"[watcher:ticker]\ncmd = {PY} -c 'import time; time.sleep(0.3)'\n"
        )
        with open(tmp_path / "circusd.log", "wb") as log:
            proc = subprocess.Popen(
                [BIN / "circusd", "circus.ini"], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
            )
        client = CircusClient(ctl, timeout=2, check=False, **client_kwargs)
        started.append((proc, client))

        def answers() -> bool:
            assert proc.poll() is None, (tmp_path / "circusd.log").read_text()
            try:
                return client.call("numwatchers", {}).get("status") == "ok"
            except Exception:
                return False

        wait_until(answers, 30, "circusd to answer")
        return {"endpoint": ctl, "pubsub": pub, "client": client, "dir": tmp_path}

    yield start
    for proc, client in started:
        client.close()
        assert _stop(proc) == 0


@pytest.fixture
def daemon(start_daemon: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    """A plain circusd (no CURVE)."""
    return start_daemon()


def _plugin(daemon: dict[str, Any], *args: str) -> subprocess.Popen[bytes]:
    folder: Path = daemon["dir"]
    env = {**os.environ, "PYTHONPATH": str(folder)}
    with open(folder / "plugin.log", "ab") as log:
        return subprocess.Popen(
            [BIN / "circus-plugin", "--endpoint", daemon["endpoint"], "--pubsub",
             daemon["pubsub"], *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip


def test_runs_a_plugin_against_circusd_and_stops_on_sigterm(daemon: dict[str, Any]) -> None:
    folder: Path = daemon["dir"]
    (folder / "probe.py").write_text(PLUGIN)
    out = folder / "probe.out"
    proc = _plugin(
        daemon, "--check-delay", "0.5", "--config", f"out={out}", "--config", "grow=sleeper",
        "probe.Probe",
    )  # fmt: skip
    try:
        lines = lambda: out.read_text().splitlines() if out.exists() else []  # noqa: E731
        # call() answered, with the command line's check delay
        assert wait_until(lambda: "numwatchers 2 delay 0.5" in lines(), message="the call")
        # the cast was run by the daemon
        client = daemon["client"]
        wait_until(
            lambda: client.call("numprocesses", {"name": "sleeper"})["numprocesses"] == 2,
            message="the cast incr",
        )
        # events from the pub/sub channel reach handle_recv
        wait_until(lambda: "event ticker spawn" in lines(), message="an event")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (folder / "plugin.log").read_text()
        assert lines()[-1] == "stopped"  # handle_stop ran
    finally:
        _stop(proc)
    assert "running on" in (folder / "plugin.log").read_text()


def test_shipped_plugin_by_upstream_path_and_config_form(daemon: dict[str, Any]) -> None:
    """CommandReloader restarts a watcher whose executable changes; upstream's --config form."""
    folder: Path = daemon["dir"]
    client = daemon["client"]
    before = client.call("list", {"name": "sleeper"})["pids"]
    proc = _plugin(
        daemon, "--config", "loop_rate:0.2:::active:true",
        "circus.plugins.command_reloader.CommandReloader",
    )  # fmt: skip
    try:
        assert wait_until(lambda: "running on" in (folder / "plugin.log").read_text())
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, (folder / "plugin.log").read_text()
    finally:
        _stop(proc)
    assert client.call("list", {"name": "sleeper"})["pids"] == before  # nothing changed


def test_bad_plugin_and_bad_command_line(tmp_path: Path) -> None:
    run = [str(BIN / "circus-plugin"), "--endpoint", f"ipc://{tmp_path}/none"]
    missing = subprocess.run([*run, "nowhere.Nothing"], capture_output=True, timeout=60)
    assert missing.returncode == 1
    assert b"nowhere.Nothing" in missing.stdout + missing.stderr
    inactive = subprocess.run(
        [*run, "--config", "active=false", "circus.plugins.flapping.Flapping"],
        capture_output=True,
        timeout=60,
    )
    assert inactive.returncode == 1 and b"not active" in inactive.stdout + inactive.stderr
    bad = subprocess.run([*run, "--config", "novalue", "x.Y"], capture_output=True, timeout=60)
    assert bad.returncode == 2 and b"KEY=VALUE" in bad.stderr


def test_parse_config_both_forms() -> None:
    assert parse_config(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    assert parse_config(["a:1:::b:http://h:80/"]) == {"a": "1", "b": "http://h:80/"}
    assert parse_config([]) == {}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_config(["=1"])


@pytest.mark.slow
def test_curve_keys_reach_a_curve_circusd(
    start_daemon: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    from circus.ctl.keys import generate

    server_public, server_secret = generate(tmp_path / "keys", "server")
    client_public, client_secret = generate(tmp_path / "keys", "client")
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    (authorized / "client.key").write_bytes(client_public.read_bytes())
    daemon = start_daemon(
        f"curve_secret_key = {server_secret}\ncurve_authorized_keys = {authorized}\n",
        curve_key=client_secret,
        curve_server_key=server_public,
    )
    (tmp_path / "probe.py").write_text(PLUGIN)
    out = tmp_path / "probe.out"
    proc = _plugin(
        daemon, "--curve-key", str(client_secret), "--curve-server-key", str(server_public),
        "--config", f"out={out}", "--config", "grow=ticker", "probe.Probe",
    )  # fmt: skip
    try:
        lines = lambda: out.read_text().splitlines() if out.exists() else []  # noqa: E731
        assert wait_until(lambda: any(line.startswith("numwatchers 2") for line in lines()))
        wait_until(lambda: "event ticker spawn" in lines(), message="an event over CURVE")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "plugin.log").read_text()
    finally:
        _stop(proc)


def test_upstream_spawn_line_reaches_the_runner() -> None:
    # Circus 0.19 starts plugins as `python -c "from circus import plugins; plugins.main()"`.
    done = subprocess.run(
        [sys.executable, "-c", "from circus import plugins; plugins.main()", "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
