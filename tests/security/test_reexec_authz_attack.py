"""``daemon-reexec`` is for admins only: the endpoint's owner (a user circusd trusts to
operate every watcher) must not make a root circusd re-execute itself, nor steer what it
executes (only circusd's own command line, resolved at start, is exec'd)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import wait_until

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (a root circusd, a nobody owner)"),
]

NOBODY = 65534
SITE = sysconfig.get_paths()["purelib"]
SYSTEM_PY = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
CLIENT = r"""
import json, site, sys
site.addsitedir(sys.argv[1])
from circus.ctl import CircusClient
with CircusClient(sys.argv[2], timeout=20, check=False) as client:
    print(json.dumps([client.call(c, p) for c, p in json.loads(sys.argv[3])]))
"""


@pytest.fixture
def public_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="circus-reexec-authz-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_the_owner_cannot_reexec_a_root_circusd(circusd: Any, public_dir: Path) -> None:
    if not os.access(SYSTEM_PY, os.X_OK):
        pytest.skip(f"{SYSTEM_PY} missing (the nobody client's interpreter)")
    daemon_class = type(circusd("", start=False))
    daemon = daemon_class(
        public_dir,
        "[circus]\nendpoint_owner = nobody\n\n[watcher:w]\ncmd = /bin/sleep 300\n",
    )
    try:
        daemon.start()
        before = daemon.pids("w")
        requests = [
            ["incr", {"name": "w"}],  # proof the client is the owner: it may operate
            ["daemon-reexec", {}],
            ["daemon-reexec", {"argv": ["/bin/sh", "-c", "id"], "env": {"PYTHONPATH": "/tmp"}}],
        ]
        done = subprocess.run(
            [SYSTEM_PY, "-c", CLIENT, SITE, daemon.endpoint, json.dumps(requests)],
            user=NOBODY,
            group=NOBODY,
            extra_groups=[],
            capture_output=True,
            cwd="/",
            env={"PATH": "/usr/bin:/bin", "HOME": "/"},
            timeout=90,
        )
        assert done.returncode == 0, done.stderr.decode()[-500:]
        owner, *answers = json.loads(done.stdout)
        assert owner["status"] == "ok", owner
        for answer in answers:
            assert answer["status"] == "error" and answer["errno"] == 3, answer
            assert "daemon-reexec" in answer["reason"], answer
        assert "generation 1" not in daemon.output()
        assert set(before) < set(daemon.pids("w"))
    finally:
        daemon.stop()


def test_the_handover_state_is_gone_once_the_new_image_serves(circusd: Any) -> None:
    """The state (watchers' environments included) travels in a memfd: once the new image
    serves, circusd holds no memfd, and a worker spawned after the switch (here one running
    as nobody) inherits neither the descriptor nor the variable naming it."""
    daemon = circusd(
        "[watcher:w]\ncmd = /bin/sleep 300\nuid = nobody\ncopy_env = true\n"
        "[env:w]\nSECRET = s3cr3t\n"
    )
    before = daemon.pids("w")
    assert daemon.call("daemon-reexec", timeout=60)["status"] == "ok"
    wait_until(lambda: "generation 1 serving" in daemon.output(), 60, "the new image serving")
    assert daemon.call("incr", name="w")["status"] == "ok"
    wait_until(lambda: len(daemon.pids("w")) == 2, 30, "a worker spawned by the new image")
    (new,) = set(daemon.pids("w")) - set(before)
    assert daemon.proc is not None
    for pid in (daemon.proc.pid, new):
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        assert not [link for link in links if "memfd" in link], (pid, links)
    environ = Path(f"/proc/{new}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"CIRCUS_HANDOVER")], environ


def test_root_on_loopback_tcp_cannot_reexec(circusd: Any) -> None:
    """On tcp without CURVE the peer's uid is advisory (at most operate): even uid 0 is
    refused ``daemon-reexec`` there; it is for ipc or CURVE admins."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = circusd(start=False)
    daemon.endpoint = f"tcp://127.0.0.1:{port}"
    daemon.config.write_text(
        f"[circus]\nendpoint = {daemon.endpoint}\npubsub_endpoint = {daemon.pubsub}\n"
        "[watcher:w]\ncmd = /bin/sleep 300\n"
    )
    daemon.start(wait=False)
    wait_until(lambda: _answers(daemon), 30, "circusd to answer on tcp")
    answer = daemon.call("daemon-reexec", timeout=30)
    assert answer["status"] == "error" and answer["errno"] == 3, answer
    assert "generation 1" not in daemon.output()


def _answers(daemon: Any) -> bool:
    try:
        return bool(daemon.call("numwatchers", timeout=1).get("status") == "ok")
    except Exception:
        daemon.close_client()
        return False
