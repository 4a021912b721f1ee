"""circusd in a container: a ``critical`` watcher that gives up takes circusd down with exit
status 3; as PID 1 of a fresh pid namespace it reaps orphans and stops gracefully on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.arbiter.config import load_config
from circus.process.testing import wait_until

from .conftest import CIRCUSD, SLEEP

REPO = Path(__file__).resolve().parents[1]
CRASH = "sh -c 'exit 7'"
GIVES_UP_FAST = """
flapping.active = true
flapping.attempts = 2
flapping.window = 30
flapping.max_retry = 0
"""


def test_a_critical_watcher_that_gives_up_stops_circusd_with_status_3(circusd: Any) -> None:
    daemon = circusd(
        f"[watcher:steady]\ncmd = {SLEEP}\n\n[watcher:web]\ncmd = {CRASH}\ncritical = true\n"
        + GIVES_UP_FAST,
        start=False,
    )
    daemon.start(wait=False)
    assert daemon.wait(60) == 3
    log = daemon.output()
    assert "critical watcher web gave up (flapping" in log
    assert not daemon.track()  # the steady watcher was stopped with it


def test_a_critical_watcher_whose_spawns_fail_stops_circusd_with_status_3(circusd: Any) -> None:
    daemon = circusd("[watcher:web]\ncmd = /nonexistent/server\ncritical = true\n", start=False)
    daemon.start(wait=False)
    assert daemon.wait(60) == 3
    assert "critical watcher web gave up (watcher 'web': cannot spawn" in daemon.output()


def test_a_watcher_that_is_not_critical_gives_up_alone(circusd: Any) -> None:
    daemon = circusd(
        f"[watcher:steady]\ncmd = {SLEEP}\n\n[watcher:web]\ncmd = {CRASH}\n" + GIVES_UP_FAST
    )
    wait_until(lambda: "watcher web gave up" in daemon.output(), 30, "web to give up")
    assert daemon.call("status", name="web")["status"] == "stopped"
    assert daemon.call("status", name="steady")["status"] == "active"
    assert daemon.stop() == 0


# ---------------------------------------------------------------------- PID 1


@pytest.fixture
def pid1(tmp_path: Path) -> Iterator[Any]:
    """``pid1(body)``: circusd as PID 1 of a new pid namespace (``unshare --pid --fork``);
    returns ``(unshare's Popen, circusd's pid as we see it)``."""
    if os.geteuid() != 0:
        pytest.skip("a new pid namespace needs root")
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare(1) is not installed")
    started: list[subprocess.Popen[bytes]] = []

    def start(body: str, *, wait_bind: bool = True) -> tuple[subprocess.Popen[bytes], int]:
        config = tmp_path / "circus.ini"
        config.write_text(
            f"[circus]\nendpoint = ipc://{tmp_path}/ctl\npubsub_endpoint = ipc://{tmp_path}/pub\n"
            + body
        )
        with open(tmp_path / "circusd.log", "ab") as log:
            proc = subprocess.Popen(
                [unshare, "--pid", "--fork", CIRCUSD, str(config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )
        started.append(proc)

        def circusd_pid() -> int | None:
            kids = psutil.Process(proc.pid).children()
            return kids[0].pid if kids else None

        pid = wait_until(circusd_pid, 30, "circusd to run under unshare")
        if wait_bind:
            wait_until(lambda: os.path.exists(tmp_path / "ctl"), 30, "circusd to bind")
        return proc, pid

    yield start
    for proc in started:
        if proc.poll() is None:
            for kid in psutil.Process(proc.pid).children(recursive=True):
                kid.kill()
            proc.kill()
        proc.wait(30)


def _ns_pid(pid: int) -> int:
    """``pid``'s number inside its own (innermost) pid namespace."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError("no NSpid line")


def test_as_pid_1_it_reaps_orphans_and_stops_gracefully_on_sigterm(pid1: Any) -> None:
    orphan_maker = "sh -c '(sleep 1.5 &); exec sleep 300'"
    proc, circusd_pid = pid1(f"[watcher:w]\ncmd = {orphan_maker}\nnumprocesses = 2\n")
    assert _ns_pid(circusd_pid) == 1

    seen: dict[int, psutil.Process] = {}

    def orphans() -> list[psutil.Process]:
        # collected across polls: on a loaded host one orphan may be gone before the other is
        # seen, and a child can exit between children() and cmdline()
        for kid in psutil.Process(circusd_pid).children():
            try:
                if kid.cmdline() == ["sleep", "1.5"]:
                    seen[kid.pid] = kid
            except psutil.Error:
                pass
        return list(seen.values())

    # the two background sleeps are re-parented to PID 1 = circusd, then exit and are reaped
    wait_until(lambda: len(orphans()) == 2, 30, "orphans re-parented")
    for orphan in list(seen.values()):
        wait_until(lambda o=orphan: not psutil.pid_exists(o.pid), 30, "the orphan reaped")
    workers = [k.pid for k in psutil.Process(circusd_pid).children()]
    assert len(workers) == 2

    os.kill(circusd_pid, signal.SIGTERM)
    assert proc.wait(60) == 0
    assert not any(psutil.pid_exists(pid) for pid in workers)


def test_as_pid_1_a_critical_give_up_is_the_exit_status_the_orchestrator_sees(
    pid1: Any, tmp_path: Path
) -> None:
    # no wait for the bind: circusd may give up and remove its socket before a poll sees it
    proc, _ = pid1(
        f"[watcher:web]\ncmd = {CRASH}\ncritical = true\n" + GIVES_UP_FAST, wait_bind=False
    )
    assert proc.wait(60) == 3
    log = (tmp_path / "circusd.log").read_text()
    assert "critical watcher web gave up" in log, log


def test_the_shipped_dockerfile_runs_circusd_on_a_config_that_loads() -> None:
    folder = REPO / "examples" / "docker"
    dockerfile = (folder / "Dockerfile").read_text()
    assert 'CMD ["circusd", "/etc/circus/circus.ini"]' in dockerfile
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and not line.startswith("COPY --from"):
            source = line.split()[1]
            assert (REPO / source).exists(), source
    config = load_config(folder / "circus.ini")
    names = {watcher.name for watcher in config.watchers}
    assert names == {"web", "worker"}
    assert any(watcher.options.get("critical") for watcher in config.watchers)
    # `docker exec CONTAINER circusctl status` without options: circusctl's default is tcp
    assert f"ENV CIRCUSCTL_ENDPOINT={config.circus.endpoint}" in dockerfile.splitlines()
