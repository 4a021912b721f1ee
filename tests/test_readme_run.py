"""The README's run command (`make run`: uv running circusd on examples/circus.ini) works.

Run through make and uv themselves, not the venv's script: they hand their children a signal
state of their own (glibc's reserved signals marked ignored), which once made every spawn fail
under `make run` while every direct test passed. Endpoints and the port are moved to tmp_path
(`make run CONFIG=...`) so runs in parallel do not collide; the rest of the example is used as
shipped.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from circus.ctl import CircusClient

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_make_run_starts_the_example(tmp_path: Path) -> None:
    text = (ROOT / "examples" / "circus.ini").read_text()
    endpoint, pubsub = f"ipc://{tmp_path}/ctl", f"ipc://{tmp_path}/pub"
    text = re.sub(r"(?m)^endpoint = .*$", f"endpoint = {endpoint}", text)
    text = re.sub(r"(?m)^pubsub_endpoint = .*$", f"pubsub_endpoint = {pubsub}", text)
    text = re.sub(r"(?m)^port = \d+$", "port = 0", text)
    text = text.replace("examples/", f"{ROOT}/examples/")
    config = tmp_path / "circus.ini"
    config.write_text(text)
    # TMPDIR: uv's lock file goes to the test's own directory
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", "UV_OFFLINE": "1", "TMPDIR": str(tmp_path)}
    env.pop("VIRTUAL_ENV", None)
    with open(tmp_path / "circusd.log", "wb") as log:
        daemon = subprocess.Popen(
            [MAKE, "-s", "-C", str(ROOT), "run", f"CONFIG={config}"],
            cwd=tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # make, uv and circusd in one group we can end on failure
        )
    client = CircusClient(endpoint, timeout=2, check=False)
    try:
        deadline = time.monotonic() + 60
        statuses: dict = {}
        while time.monotonic() < deadline:
            assert daemon.poll() is None, (tmp_path / "circusd.log").read_text()
            if os.path.exists(f"{tmp_path}/ctl"):
                try:
                    statuses = client.call("status", {}).get("statuses", {})
                except Exception:
                    statuses = {}
                if statuses == {"web": "active", "ticker": "active"} and all(
                    client.call("list", {"name": n}).get("pids") for n in ("web", "ticker")
                ):
                    break
            time.sleep(0.1)
        else:
            pytest.fail(
                f"watchers not running: {statuses}\n{(tmp_path / 'circusd.log').read_text()}"
            )
        assert client.call("quit", {"waiting": True})["status"] == "ok"
        assert daemon.wait(30) == 0
    finally:
        client.close()
        if daemon.poll() is None:  # circusd stops its children on SIGTERM
            os.killpg(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()


def test_example_ports_leave_the_dashboard_default_free() -> None:
    # `make run` then "Watching it live" (circushttpd with its defaults) must not collide
    from circus.arbiter.config import load_config
    from circus.ctl.web._cli import parser

    config = load_config(ROOT / "examples" / "circus.ini")
    daemon = config.circus
    endpoints = [daemon.endpoint, daemon.pubsub_endpoint, daemon.stats_endpoint]
    ports = [int(e.rsplit(":", 1)[1]) for e in endpoints if e and e.startswith("tcp://")]
    ports += [int(s.kwargs["port"]) for s in config.sockets]
    dashboard = parser().parse_args([]).port
    assert len(ports) == len(set(ports)), ports
    assert dashboard not in ports and daemon.httpd_port not in ports, (dashboard, ports)


@pytest.mark.skipif(MAKE is None, reason="make is not installed")
def test_make_run_installs_no_dev_tools() -> None:
    # a newcomer's `make run` must not fetch pytest, playwright, ruff, mypy... first
    dry = subprocess.run(
        [MAKE, "-n", "-C", str(ROOT), "run", "CONFIG=x.ini"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    commands = [line for line in dry.splitlines() if re.search(r"(^|/)uv ", line)]
    assert commands and all("--no-dev" in c for c in commands), dry
    assert not any(" sync" in c and "--no-dev" not in c for c in commands), dry
