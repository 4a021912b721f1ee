"""Deploys that drop nothing: ``circusctl reload NAME --waiting`` on a watcher with readiness.

A pre-fork HTTP app (examples/rolling/app.py) serves on a ``[socket:]`` circusd holds; each
worker spends a second "loading" before it says ``READY=1`` and starts accepting. A client
(examples/rolling/hammer.py) requests it at a steady rate, open loop, throughout; a request
refused, failed or answered after more than 0.5 s counts as failed. Without a roll gated on
readiness, a graceful reload stops the old workers while the new ones are still loading, and
every request due in that second fails.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import wait_until

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "rolling"
CIRCUSCTL = str(Path(sys.executable).with_name("circusctl"))
WORKERS = 3

pytestmark = pytest.mark.slow


def _hammer_module() -> Any:
    spec = importlib.util.spec_from_file_location("rolling_hammer", EXAMPLE / "hammer.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look the module up
    spec.loader.exec_module(module)
    return module


Hammer = _hammer_module().Hammer


def _app(circusd: Any, readiness: bool = True, timeout: float = 10) -> tuple[Any, int]:
    """circusd running WORKERS ready workers of version v1; returns (daemon, port)."""
    daemon = circusd(start=False)
    shutil.copy(EXAMPLE / "app.py", daemon.dir / "app.py")
    (daemon.dir / "version").write_text("v1\n")
    ready = f"readiness = notify\nreadiness_timeout = {timeout}\n" if readiness else ""
    daemon.write(
        "[socket:web]\nhost = 127.0.0.1\nport = 0\n"
        f"[watcher:web]\ncmd = {sys.executable} app.py $(circus.sockets.web)\n"
        f"working_dir = {daemon.dir}\nuse_sockets = true\nnumprocesses = {WORKERS}\n"
        f"graceful_timeout = 5\nautostart = false\n{ready}"
        "[env:web]\nAPP_WARMUP = 1\n"
    )
    daemon.start()
    answer = daemon.call("start", name="web", waiting=True, timeout=30)
    assert answer["status"] == "ok", answer
    (row,) = daemon.call("listsockets")["sockets"]
    return daemon, int(row["port"])


def _ctl(daemon: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CIRCUSCTL, "--endpoint", daemon.endpoint, *args],
        capture_output=True,
        text=True,
        timeout=90,
    )


def _serving(hammer: Any, version: str, count: int) -> None:
    wait_until(
        lambda: hammer.tally.versions[version] >= count,
        30,
        f"{count} answers from {version} ({hammer.tally})",
    )


def test_reload_waiting_drops_no_request(circusd: Any) -> None:
    daemon, port = _app(circusd)
    old = set(daemon.pids("web"))
    assert len(old) == WORKERS
    with Hammer(port, rate=100) as hammer:
        _serving(hammer, "v1", 30)
        (daemon.dir / "version").write_text("v2\n")
        done = _ctl(daemon, "reload", "web", "--waiting")
        assert done.returncode == 0, done.stdout + done.stderr
        # The answer came once the new workers were ready: every pid is new, all serve v2.
        new = set(daemon.pids("web"))
        assert len(new) == WORKERS and not new & old, (old, new)
        _serving(hammer, "v2", 30)
    tally = hammer.tally
    assert tally.failed == 0, f"{tally}: {tally.samples}"
    assert tally.refused == 0


def test_broken_version_keeps_the_old_workers_serving(circusd: Any, is_alive: Any) -> None:
    # readiness_timeout above circusctl's default 5 s: --waiting alone waits long enough
    daemon, port = _app(circusd, timeout=6)
    old = set(daemon.pids("web"))
    with Hammer(port, rate=100) as hammer:
        _serving(hammer, "v1", 30)
        (daemon.dir / "version").write_text("broken\n")
        done = _ctl(daemon, "reload", "web", "--waiting")
        output = done.stdout + done.stderr
        assert done.returncode != 0, output
        assert "not ready after 6 s" in output, output
        failed = int(re.search(r"process (\d+)", output).group(1))  # type: ignore[union-attr]
        # Still the old workers, still answering; the failed new one is gone.
        assert set(daemon.pids("web")) == old
        assert not is_alive(failed)
        before = hammer.tally.versions["v1"]
        _serving(hammer, "v1", before + 30)
    tally = hammer.tally
    assert tally.failed == 0, f"{tally}: {tally.samples}"
    assert set(tally.versions) == {"v1"}, tally
    assert daemon.call("status", name="web")["status"] == "active"


def test_the_readme_example_config_rolls(circusd: Any) -> None:
    """examples/rolling/circus.ini, with its fixed endpoints and port made the test's own and
    two workers instead of four, rolls to a new version with ``reload --waiting``."""
    daemon = circusd(start=False)
    for name in ("app.py", "hammer.py"):
        shutil.copy(EXAMPLE / name, daemon.dir / name)
    text = (EXAMPLE / "circus.ini").read_text()
    text = re.sub(r"(?m)^(\[circus\]|endpoint = .*|pubsub_endpoint = .*)\n", "", text)
    text = re.sub(r"(?m)^port = \d+$", "port = 0", text)
    text = re.sub(r"(?m)^numprocesses = \d+$", "numprocesses = 2", text)
    text = text.replace("working_dir = examples/rolling", f"working_dir = {daemon.dir}")
    text = text.replace("cmd = python3 ", f"cmd = {sys.executable} ")
    assert "readiness = notify" in text
    daemon.write(text)
    daemon.start()
    assert _ctl(daemon, "start", "web", "--waiting").returncode == 0
    old = set(daemon.pids("web"))
    (daemon.dir / "version").write_text("v2\n")
    done = _ctl(daemon, "reload", "web", "--waiting")
    assert done.returncode == 0, done.stdout + done.stderr
    new = set(daemon.pids("web"))
    assert len(new) == 2 and not new & old
    (row,) = daemon.call("listsockets")["sockets"]
    with Hammer(int(row["port"]), rate=50) as hammer:
        _serving(hammer, "v2", 10)
    assert hammer.tally.failed == 0 and set(hammer.tally.versions) == {"v2"}, hammer.tally


def test_reload_of_every_watcher_goes_on_past_a_broken_one(circusd: Any) -> None:
    daemon = circusd(start=False)
    for name in ("a", "b"):
        (daemon.dir / name).mkdir()
        shutil.copy(EXAMPLE / "app.py", daemon.dir / name / "app.py")
    body = "[socket:web]\nhost = 127.0.0.1\nport = 0\n"
    for name, priority in (("a", 2), ("b", 1)):  # a is reloaded first
        body += (
            f"[watcher:{name}]\ncmd = {sys.executable} app.py $(circus.sockets.web)\n"
            f"working_dir = {daemon.dir / name}\nuse_sockets = true\nnumprocesses = 2\n"
            f"priority = {priority}\nreadiness = notify\nreadiness_timeout = 2\n"
            f"graceful_timeout = 5\n[env:{name}]\nAPP_WARMUP = 0\n"
        )
    daemon.write(body)
    daemon.start()
    assert _ctl(daemon, "start", "--waiting").returncode == 0
    old_a, old_b = set(daemon.pids("a")), set(daemon.pids("b"))
    (daemon.dir / "a" / "version").write_text("broken\n")
    done = _ctl(daemon, "reload", "--waiting")
    assert done.returncode != 0 and "watcher 'a'" in done.stderr, done.stdout + done.stderr
    assert set(daemon.pids("a")) == old_a
    new_b = set(daemon.pids("b"))
    assert len(new_b) == 2 and not new_b & old_b
