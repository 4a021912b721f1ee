"""circusd under systemd: its sd_notify messages on a real datagram socket, and the unit file
shipped in circus-daemon."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from circus.ctl import CircusClient
from circus.process.testing import wait_until

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "packages" / "circus-daemon" / "systemd" / "circusd.service"
CIRCUSD = str(Path(sys.executable).with_name("circusd"))
PY = sys.executable
SLEEP = f"{PY} -c 'import time; time.sleep(300)'"


class Notify:
    """A bound AF_UNIX datagram socket standing for systemd's notify socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.address = address
        self.messages: list[dict[str, str]] = []

    def _drain(self, timeout: float) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except (TimeoutError, BlockingIOError):
            return
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        self.messages.append(fields)

    def wait_for(self, key: str, timeout: float = 60, after: int = 0) -> int:
        """The index of the first message past ``after`` holding ``key``."""
        deadline = time.monotonic() + timeout
        while True:
            for i, message in enumerate(self.messages[after:], after):
                if key in message:
                    return i
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {key} in {self.messages} after {timeout} s")
            self._drain(min(left, 0.5))

    def keys(self) -> list[str]:
        """The state keys sent, in order (not the values that go with them)."""
        extra = {"STATUS", "EXTEND_TIMEOUT_USEC", "MONOTONIC_USEC"}
        return [k for m in self.messages for k in m if k not in extra]

    def close(self) -> None:
        self.sock.close()
        if not self.address.startswith("@"):
            os.unlink(self.address)


@pytest.fixture
def notify_path(tmp_path: Path) -> Iterator[Notify]:
    notify = Notify(str(tmp_path / "notify"))
    yield notify
    notify.close()


@pytest.fixture
def notify_abstract() -> Iterator[Notify]:
    notify = Notify(f"@circus-test-{uuid.uuid4().hex}")
    yield notify
    notify.close()


def _circusd(tmp_path: Path, body: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    config = tmp_path / "circus.ini"
    config.write_text(
        f"[circus]\nendpoint = ipc://{tmp_path}/ctl\npubsub_endpoint = ipc://{tmp_path}/pub\n"
        f"loglevel = debug\n\n{body}"
    )
    with open(tmp_path / "circusd.log", "ab") as log:
        return subprocess.Popen(
            [CIRCUSD, str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={**os.environ, **env},
        )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(10)


def _pids(tmp_path: Path, name: str) -> list[int]:
    with CircusClient(f"ipc://{tmp_path}/ctl", timeout=10) as client:
        return list(client.call("list", {"name": name})["pids"])


CHAIN = f"""
[watcher:db]
cmd = {SLEEP}
graceful_timeout = 5

[watcher:app]
cmd = {PY} -c "import os, time; open('env.txt', 'w').write(repr(sorted(os.environ))); \
time.sleep(300)"
depends_on = db
copy_env = true
graceful_timeout = 5
"""


def test_notify_sequence_on_a_path_socket(tmp_path: Path, notify_path: Notify) -> None:
    proc = _circusd(
        tmp_path,
        CHAIN,
        {"NOTIFY_SOCKET": notify_path.address, "WATCHDOG_USEC": "200000"},
    )
    try:
        ready = notify_path.wait_for("READY")
        # READY=1 comes once both watchers run, with a summary
        assert len(_pids(tmp_path, "db")) == 1 and len(_pids(tmp_path, "app")) == 1
        assert notify_path.messages[ready]["STATUS"].startswith("2/2 watchers active")
        ping = notify_path.wait_for("WATCHDOG", after=ready + 1)
        notify_path.wait_for("WATCHDOG", after=ping + 1)  # and again: a timer, not one ping
        # no child inherits circusd's notify socket or watchdog
        env = tmp_path / "env.txt"
        wait_until(env.exists, 20, "the app's environment dump")
        wait_until(lambda: env.read_text().endswith("]"), 20, "a whole dump")
        assert "NOTIFY_SOCKET" not in env.read_text()
        assert "WATCHDOG_USEC" not in env.read_text()
        # a change updates STATUS= (no READY=1 again)
        with CircusClient(f"ipc://{tmp_path}/ctl", timeout=30) as client:
            assert client.call("stop", {"name": "app", "waiting": True})["status"] == "ok"
        while True:
            at = notify_path.wait_for("STATUS", after=ready + 1)
            if notify_path.messages[at]["STATUS"].startswith("1/2 watchers active"):
                break
            ready = at
        proc.send_signal(signal.SIGTERM)
        stopping = notify_path.wait_for("STOPPING", after=at)
        # db still runs, graceful_timeout = 5: the stop timeout is stretched to at least that
        assert int(notify_path.messages[stopping]["EXTEND_TIMEOUT_USEC"]) >= 5_000_000
        assert proc.wait(60) == 0
    finally:
        _stop(proc)
    keys = notify_path.keys()
    # pings begin at once (systemd may watch the start too); READY=1 once, STOPPING=1 last
    # but for pings sent while the watchers stop
    first_ready, stop_at = keys.index("READY"), keys.index("STOPPING")
    assert first_ready < stop_at and "WATCHDOG" in keys[first_ready:stop_at]
    assert keys.count("READY") == 1 and set(keys[stop_at + 1 :]) <= {"WATCHDOG"}
    assert stopping > at


@pytest.mark.slow  # about 2.5 s: a second watching that READY=1 does not come early
def test_abstract_socket_reload_and_readiness_gate(tmp_path: Path, notify_abstract: Notify) -> None:
    flag = tmp_path / "db-ready"
    body = f"""
[watcher:db]
cmd = {SLEEP}
readiness = exec:test -f {flag}
readiness_timeout = 120
graceful_timeout = 5

[watcher:app]
cmd = {SLEEP}
depends_on = db
graceful_timeout = 5
"""
    proc = _circusd(tmp_path, body, {"NOTIFY_SOCKET": notify_abstract.address})
    try:
        first = notify_abstract.wait_for("STATUS")  # circusd is up and speaking
        # systemd's start timeout is stretched to db's readiness_timeout (and a margin)
        assert int(notify_abstract.messages[first]["EXTEND_TIMEOUT_USEC"]) >= 120_000_000
        wait_until(lambda: _pids(tmp_path, "db"), 30, "db spawned")
        # db is spawned but not ready: no READY=1, and app is not started
        with pytest.raises(AssertionError):
            notify_abstract.wait_for("READY", timeout=1.0)
        assert _pids(tmp_path, "app") == []
        flag.write_text("ok")
        ready = notify_abstract.wait_for("READY")
        assert len(_pids(tmp_path, "app")) == 1
        assert "WATCHDOG" not in list(notify_abstract.keys())  # no WATCHDOG_USEC, no pings
        with CircusClient(f"ipc://{tmp_path}/ctl", timeout=30) as client:
            assert client.call("reloadconfig", {"waiting": True})["status"] == "ok"
        reloading = notify_abstract.wait_for("RELOADING", after=ready + 1)
        assert "MONOTONIC_USEC" in notify_abstract.messages[reloading]
        notify_abstract.wait_for("READY", after=reloading + 1)
    finally:
        assert _stop(proc) == 0
    notify_abstract.wait_for("STOPPING")


# ---------------------------------------------------------------------- the unit file


def _unit() -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    for lineno, line in enumerate(UNIT.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[(\w+)\]", line)
        if header:
            current = sections.setdefault(header.group(1), {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None and re.fullmatch(r"[A-Za-z]+", key), (lineno, line)
        current.setdefault(key, []).append(value)
    return sections


def test_unit_file_structure() -> None:
    unit = _unit()
    assert set(unit) == {"Unit", "Service", "Install"}
    service = {key: values[-1] for key, values in unit["Service"].items()}
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert service["KillMode"] == "mixed" and service["Delegate"] == "yes"
    assert re.fullmatch(r"\d+s", service["WatchdogSec"])
    assert service["ExecStart"].split()[0].endswith("/circusd")
    assert "-HUP" in service["ExecReload"]
    # circusd must stay root with its capabilities to switch each watcher's uid/gid and
    # write its cgroups: nothing in the unit may take that away
    for key in ("User", "DynamicUser", "CapabilityBoundingSet", "PrivateUsers"):
        assert key not in service, key
    assert service.get("ProtectControlGroups", "no") == "no"
    assert service.get("NoNewPrivileges", "no") == "no"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_unit_file_verifies(tmp_path: Path) -> None:
    # verify checks that ExecStart exists: point it at this environment's circusd
    unit = tmp_path / "circusd.service"
    unit.write_text(UNIT.read_text().replace("/opt/circus/bin/circusd", CIRCUSD))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    complaints = [line for line in result.stderr.splitlines() if unit.name in line]
    assert result.returncode == 0 and not complaints, result.stderr
