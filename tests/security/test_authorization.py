"""Who may do what on a root circusd's control channel, attacked by a real unprivileged user.

circusd runs as root; requests are sent by a client process running as ``nobody`` (uid
65534). On ipc with ``endpoint_owner = nobody`` that user is the owner: it may operate and
run things as itself, never as root. On the default loopback tcp endpoint any local user is
identified by the kernel and may only read, while root may do everything. With CURVE an
authorized key is an admin, whoever holds it. ``unauthenticated_access = full`` brings
upstream's behaviour back, loudly, and ``reloadconfig`` switches it.

The client runs on the system's python of the same version with the venv's site-packages
(the venv's interpreter lives under /root, which ``nobody`` cannot enter).
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.ctl import CircusClient
from circus.ctl.errors import CallTimeout, DaemonUnreachable

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root (circusd as root, a nobody client)"),
]

NOBODY = 65534
SITE = sysconfig.get_paths()["purelib"]
SYSTEM_PY = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
CLIENT_ENV = {"PATH": "/usr/bin:/bin", "HOME": "/", "PYTHONDONTWRITEBYTECODE": "1"}

CLIENT = r"""
import json, site, sys
site.addsitedir(sys.argv[1])
from circus.ctl import CircusClient
endpoint, requests, options = sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
answers = []
with CircusClient(endpoint, timeout=20, check=False, **options) as client:
    for command, props in requests:
        answers.append(client.call(command, props))
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def nobody_python() -> str:
    """The interpreter the nobody client runs on (skip when there is none it can use)."""
    try:
        pwd.getpwuid(NOBODY)
    except KeyError:
        pytest.skip("no user with uid 65534")
    if not os.access(SYSTEM_PY, os.X_OK):
        pytest.skip(f"{SYSTEM_PY} (the venv's python version, reachable by nobody) is missing")
    probe = subprocess.run(
        [SYSTEM_PY, "-c", f"import site; site.addsitedir({SITE!r}); import zmq, circus.ctl"],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        cwd="/",
        env=CLIENT_ENV,
        timeout=60,
    )
    if probe.returncode != 0:
        pytest.skip(f"nobody cannot import circus.ctl: {probe.stderr.decode()[-300:]}")
    return SYSTEM_PY


def as_nobody(
    python: str, endpoint: str, *requests: tuple[str, dict[str, Any]], **client: Any
) -> list[dict[str, Any]]:
    """Send ``requests`` in order from one client process running as nobody; the answers."""
    done = subprocess.run(
        [python, "-c", CLIENT, SITE, endpoint, json.dumps(requests), json.dumps(client)],
        user=NOBODY,
        group=NOBODY,
        extra_groups=[],
        capture_output=True,
        cwd="/",
        env=CLIENT_ENV,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr.decode()
    answers: list[dict[str, Any]] = json.loads(done.stdout)
    return answers


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A temp dir nobody can enter (pytest's own is under a 0700 directory): the ipc
    sockets, the config, ``out/`` (0777, where watchers leave markers) and ``rootonly/``."""
    path = Path(tempfile.mkdtemp(prefix="circus-authz-"))
    path.chmod(0o755)
    (path / "out").mkdir(mode=0o777)
    (path / "out").chmod(0o777)
    (path / "rootonly").mkdir(mode=0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def marker(tmp_path: Path, name: str) -> str:
    """A command that writes the uid it runs as into ``out/NAME``, then sleeps."""
    return f"sh -c 'id -u > {tmp_path}/out/{name}; exec sleep 300'"


def refused(answer: dict[str, Any], command: str) -> None:
    assert answer["status"] == "error", answer
    assert answer["errno"] == 3, answer
    assert answer["reason"].startswith("permission denied:"), answer
    assert repr(command) in answer["reason"], answer
    assert "uid 65534 (nobody)" in answer["reason"], answer


def uids_of(pids: list[int]) -> set[int]:
    return {psutil.Process(pid).uids().real for pid in pids}


# ------------------------------------------------------------------ ipc, endpoint_owner


OWNER_CONFIG = """
[circus]
endpoint_owner = nobody

[watcher:victim]
cmd = sleep 300

[watcher:mine]
cmd = sleep 300
uid = nobody
"""


def test_owner_on_ipc_never_gets_root(
    circusd: Any, e2e: Any, tmp_path: Path, nobody_python: str
) -> None:
    daemon = circusd(OWNER_CONFIG)
    assert os.stat(daemon.endpoint[len("ipc://") :]).st_uid == NOBODY
    out, rootonly = tmp_path / "out", tmp_path / "rootonly"
    attacks: list[tuple[str, dict[str, Any]]] = [
        ("set", {"name": "victim", "options": {"cmd": marker(tmp_path, "victim")}}),
        ("set", {"name": "mine", "options": {"uid": 0}}),
        ("set", {"name": "mine", "options": {"gid": 0}}),
        (
            "add",
            {
                "name": "gid0",
                "cmd": marker(tmp_path, "gid0"),
                "options": {"uid": "nobody", "gid": 0},
                "start": True,
            },
        ),
        ("add", {"name": "uid0", "cmd": marker(tmp_path, "uid0"), "options": {"uid": 0}}),
        ("add", {"name": "nouid", "cmd": marker(tmp_path, "nouid"), "start": True}),
        (
            "set",
            {
                "name": "mine",
                "options": {
                    "stdout_stream.class": "FileStream",
                    "stdout_stream.filename": f"{rootonly}/owned",
                },
            },
        ),
        ("set", {"name": "mine", "options": {"hooks.before_spawn": "os.getcwd"}}),
        ("set", {"name": "mine", "options": {"rlimit_nofile": 1 << 20}}),
        (
            "add",
            {
                "name": "envcopy",
                "cmd": marker(tmp_path, "envcopy"),
                "options": {"uid": "nobody", "copy_env": True},
            },
        ),
        ("reloadconfig", {"waiting": True}),
        ("restart", {"waiting": True}),
    ]
    answers = as_nobody(nobody_python, daemon.endpoint, *attacks)
    for (command, _), answer in zip(attacks, answers, strict=True):
        refused(answer, command)
    # nothing changed, nothing was created, nothing ran
    assert daemon.call("list")["watchers"] == ["mine", "victim"]
    options = daemon.call("options", name="victim")["options"]
    assert options["cmd"] == "sleep 300" and options["uid"] is None
    mine = daemon.call("options", name="mine")["options"]
    assert (mine["uid"], mine["gid"]) == ("nobody", None)
    assert daemon.call("get", name="mine", keys=["stdout_stream", "hooks"])["options"] == {
        "stdout_stream": None,
        "hooks": {},
    }
    assert list(out.iterdir()) == [] and list(rootonly.iterdir()) == []
    assert "refused: permission denied: 'set'" in daemon.output()

    # what the owner may do: operate root's watchers, run things as itself
    allowed = as_nobody(
        nobody_python,
        daemon.endpoint,
        ("stop", {"name": "victim", "waiting": True}),
        (
            "add",
            {
                "name": "own",
                "cmd": marker(tmp_path, "own"),
                "options": {"uid": "nobody"},
                "start": True,
                "waiting": True,
            },
        ),
        ("set", {"name": "mine", "options": {"cmd": marker(tmp_path, "mine")}, "waiting": True}),
    )
    assert [a["status"] for a in allowed] == ["ok", "ok", "ok"], allowed
    assert daemon.call("status", name="victim")["status"] == "stopped"
    for name in ("own", "mine"):
        e2e.wait(lambda n=name: (out / n).exists() and (out / n).read_text().strip(), 20)
        assert (out / name).read_text().strip() == str(NOBODY)
        e2e.wait(lambda n=name: daemon.pids(n), 20)
        assert uids_of(daemon.pids(name)) == {NOBODY}
        assert (out / name).stat().st_uid == NOBODY


# ------------------------------------------------------------------ loopback tcp


def tcp_daemon(circusd: Any, e2e: Any, body: str) -> Any:
    daemon = circusd(start=False)
    daemon.endpoint = f"tcp://127.0.0.1:{_free_port()}"
    daemon.pubsub = f"tcp://127.0.0.1:{_free_port()}"
    daemon.write(body)
    daemon.start(wait=False)

    def answers() -> bool:
        assert daemon.proc.poll() is None, daemon.output()
        try:
            with CircusClient(daemon.endpoint, timeout=1, check=False) as client:
                return client.call("numwatchers").get("status") == "ok"
        except (CallTimeout, DaemonUnreachable):
            return False

    e2e.wait(answers, 20, "circusd to answer on tcp")
    return daemon


VICTIM = "\n[watcher:victim]\ncmd = sleep 300\n"


def test_any_local_user_on_loopback_tcp_may_only_read(
    circusd: Any, e2e: Any, tmp_path: Path, nobody_python: str
) -> None:
    daemon = tcp_daemon(circusd, e2e, VICTIM)
    e2e.wait(lambda: daemon.pids("victim"), 20)
    reads = as_nobody(
        nobody_python,
        daemon.endpoint,
        ("status", {}),
        ("list", {"name": "victim"}),
        ("options", {"name": "victim"}),
    )
    assert [a["status"] for a in reads] == ["ok", "ok", "ok"], reads
    attacks: list[tuple[str, dict[str, Any]]] = [
        ("stop", {"name": "victim", "waiting": True}),
        ("signal", {"name": "victim", "signum": 9}),
        ("add", {"name": "evil", "cmd": marker(tmp_path, "evil"), "start": True}),
        ("add", {"name": "evil2", "cmd": marker(tmp_path, "evil2"), "options": {"uid": 65534}}),
        ("set", {"name": "victim", "options": {"cmd": marker(tmp_path, "victim")}}),
        ("rm", {"name": "victim"}),
        ("quit", {}),
    ]
    answers = as_nobody(nobody_python, daemon.endpoint, *attacks)
    for (command, _), answer in zip(attacks, answers, strict=True):
        refused(answer, command)
        assert "on tcp 127.0.0.1:" in answer["reason"]
        assert "unauthenticated_access = read" in answer["reason"]
    assert daemon.proc.poll() is None
    assert daemon_call(daemon, "status", name="victim")["status"] == "active"
    assert daemon_call(daemon, "list")["watchers"] == ["victim"]
    assert list((tmp_path / "out").iterdir()) == []


def daemon_call(daemon: Any, command: str, **props: Any) -> dict[str, Any]:
    """One command from this (root) process over the daemon's tcp endpoint."""
    with CircusClient(daemon.endpoint, timeout=20, check=False) as client:
        return client.call(command, props)


def test_root_on_loopback_tcp_operates_but_never_changes_what_runs(
    circusd: Any, e2e: Any, tmp_path: Path
) -> None:
    """A tcp peer's uid is read from the fd its message came in on, which a closed connection
    leaves to the next one: advisory, so root there operates and reads everything (upstream's
    circusctl keeps working for status/start/stop/restart/signal/incr/logs/quit) but changing
    what runs needs the ipc endpoint or CURVE."""
    daemon = tcp_daemon(circusd, e2e, VICTIM)
    assert daemon_call(daemon, "stop", name="victim", waiting=True)["status"] == "ok"
    assert daemon_call(daemon, "start", name="victim", waiting=True)["status"] == "ok"
    assert daemon_call(daemon, "incr", name="victim", waiting=True)["status"] == "ok"
    assert "<hidden>" not in json.dumps(daemon_call(daemon, "options", name="victim"))
    assert daemon_call(daemon, "logs", name="victim")["status"] == "ok"
    for command, props in (
        ("add", {"name": "rooted", "cmd": marker(tmp_path, "rooted"), "start": True}),
        ("set", {"name": "victim", "options": {"cmd": marker(tmp_path, "victim")}}),
        ("reloadconfig", {}),
    ):
        answer = daemon_call(daemon, command, waiting=True, **props)
        assert answer["status"] == "error", (command, answer)
        assert "tcp without CURVE" in answer["reason"], answer
    assert daemon_call(daemon, "list")["watchers"] == ["victim"]
    assert list((tmp_path / "out").iterdir()) == []
    assert daemon_call(daemon, "quit", waiting=True)["status"] == "ok"
    daemon.wait(30)


@pytest.mark.slow
def test_unauthenticated_access_full_is_upstreams_and_reloadable(
    circusd: Any, e2e: Any, tmp_path: Path, nobody_python: str
) -> None:
    daemon = tcp_daemon(circusd, e2e, "[circus]\nunauthenticated_access = full\n" + VICTIM)
    loud = "unauthenticated_access = full: ANY local user"
    assert "WARNING" in daemon.output() and daemon.output().count(loud) == 1
    stop = ("stop", {"name": "victim", "waiting": True})
    start = ("start", {"name": "victim", "waiting": True})
    assert as_nobody(nobody_python, daemon.endpoint, stop)[0]["status"] == "ok"
    # back to the default by a reload (SIGHUP: a tcp peer never reloads the config)
    daemon.write("[circus]\nunauthenticated_access = read\n" + VICTIM)
    daemon.proc.send_signal(signal.SIGHUP)
    probe = ("stop", {"name": "no-such-watcher"})  # refused under read, not found under full
    e2e.wait(
        lambda: (
            "permission denied" in as_nobody(nobody_python, daemon.endpoint, probe)[0]["reason"]
        ),
        30,
    )
    refused(as_nobody(nobody_python, daemon.endpoint, start)[0], "start")
    assert daemon_call(daemon, "status", name="victim")["status"] == "stopped"
    # and full again: allowed, and said again
    daemon.write("[circus]\nunauthenticated_access = full\n" + VICTIM)
    daemon.proc.send_signal(signal.SIGHUP)
    e2e.wait(lambda: daemon.output().count(loud) == 2, 30)
    assert as_nobody(nobody_python, daemon.endpoint, start)[0]["status"] == "ok"
    assert daemon_call(daemon, "status", name="victim")["status"] == "active"
    # a reload that keeps it says it once more
    daemon.proc.send_signal(signal.SIGHUP)
    e2e.wait(lambda: daemon.output().count(loud) == 3, 30)


# ------------------------------------------------------------------ CURVE


def test_a_curve_key_is_an_admin_whoever_holds_it(
    circusd: Any, e2e: Any, tmp_path: Path, nobody_python: str
) -> None:
    from circus.ctl.keys import generate

    server_public, server_secret = generate(tmp_path / "server-keys", "server")
    client_public, client_secret = generate(tmp_path / "client-keys", "client")
    for path in (tmp_path / "client-keys", client_public, client_secret):
        os.chown(path, NOBODY, NOBODY)
    (tmp_path / "server-keys").chmod(0o755)
    server_public.chmod(0o644)
    authorized = tmp_path / "authorized"
    authorized.mkdir()
    shutil.copy(client_public, authorized / "client.key")
    section = (
        f"[circus]\ncurve_secret_key = {server_secret}\ncurve_authorized_keys = {authorized}\n"
    )
    daemon = circusd(start=False)
    daemon.endpoint = f"tcp://127.0.0.1:{_free_port()}"
    daemon.pubsub = f"tcp://127.0.0.1:{_free_port()}"
    daemon.write(section + VICTIM)
    daemon.start(wait=False)

    def answers() -> bool:
        assert daemon.proc.poll() is None, daemon.output()
        try:
            with CircusClient(
                daemon.endpoint, timeout=1, curve_key=client_secret, curve_server_key=server_public
            ) as client:
                return client.call("numwatchers").get("status") == "ok"
        except (CallTimeout, DaemonUnreachable):
            return False

    e2e.wait(answers, 20, "circusd to answer over CURVE")
    keys = {"curve_key": str(client_secret), "curve_server_key": str(server_public)}
    added = as_nobody(
        nobody_python,
        daemon.endpoint,
        ("numwatchers", {}),
        (
            "add",
            {"name": "keyed", "cmd": marker(tmp_path, "keyed"), "start": True, "waiting": True},
        ),
        **keys,
    )
    assert [a["status"] for a in added] == ["ok", "ok"], added
    with CircusClient(
        daemon.endpoint, timeout=20, curve_key=client_secret, curve_server_key=server_public
    ) as client:
        e2e.wait(lambda: client.call("list", name="keyed")["pids"], 20)
        assert uids_of(client.call("list", name="keyed")["pids"]) == {0}
