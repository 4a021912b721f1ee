"""``status`` shows each process's readiness (``health``) and sd_notify ``STATUS=`` text, and
stays what Circus 0.19's circusctl parses; upstream's circusctl drives ``--waiting`` on ours."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.ctl.testing.upstream import UpstreamUnavailable, ensure_upstream, run_circusctl

ROOT = Path(__file__).resolve().parents[1]
CIRCUSCTL = str(Path(sys.executable).with_name("circusctl"))

pytestmark = pytest.mark.slow


def _daemon(circusd: Any) -> Any:
    """``web`` (ready at once, says STATUS=serving v1), ``slow`` (still loading: starting),
    ``plain`` (no readiness)."""
    daemon = circusd(start=False)
    shutil.copy(ROOT / "examples" / "rolling" / "app.py", daemon.dir / "app.py")
    (daemon.dir / "version").write_text("v1\n")
    app = f"{sys.executable} app.py $(circus.sockets.web)"
    common = f"working_dir = {daemon.dir}\nuse_sockets = true\ngraceful_timeout = 5\n"
    daemon.write(
        "[socket:web]\nhost = 127.0.0.1\nport = 0\n"
        f"[watcher:web]\ncmd = {app}\n{common}numprocesses = 2\n"
        "readiness = notify\nreadiness_timeout = 30\n"
        "[env:web]\nAPP_WARMUP = 0\n"
        f"[watcher:slow]\ncmd = {app}\n{common}readiness = notify\nreadiness_timeout = 120\n"
        "[env:slow]\nAPP_WARMUP = 120\n"
        f"[watcher:plain]\ncmd = {sys.executable} -c 'import time; time.sleep(300)'\n"
    )
    daemon.start()
    assert daemon.call("start", name="web", waiting=True, timeout=30)["status"] == "ok"
    return daemon


def _ours(daemon: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CIRCUSCTL, "--endpoint", daemon.endpoint, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_status_json_shows_readiness_and_status_text(circusd: Any) -> None:
    daemon = _daemon(circusd)
    web = daemon.pids("web")
    (slow,) = daemon.pids("slow")
    done = _ours(daemon, "--json", "status", "web")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "active"
    assert sorted(answer["health"]) == sorted(str(pid) for pid in web)
    for row in answer["health"].values():
        assert row["health"] == "ready" and row["status_text"] == "serving v1", row
    every = json.loads(_ours(daemon, "--json", "status").stdout)
    assert every["health"]["slow"][str(slow)]["health"] == "starting"
    assert "plain" not in every["health"]
    # a watcher without readiness answers exactly as upstream
    assert set(daemon.call("status", name="plain")) == {"status", "time", "id"}
    # the plain output is unchanged
    assert _ours(daemon, "status").stdout.splitlines() == [
        "plain: active",
        "slow: active",
        "web: active",
    ]


def test_upstream_circusctl_reads_status_and_waits_for_a_rolling_reload(circusd: Any) -> None:
    try:
        upstream = ensure_upstream()
    except UpstreamUnavailable as exc:
        pytest.skip(f"upstream Circus 0.19 unavailable: {exc}")
    daemon = _daemon(circusd)
    done = run_circusctl(upstream, daemon.endpoint, ["status"])
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["plain:", "active", "slow:", "active", "web:", "active"]
    done = run_circusctl(upstream, daemon.endpoint, ["status", "web"])
    assert (done.returncode, done.stdout.strip()) == (0, "active"), done.stderr
    old = set(daemon.pids("web"))
    done = run_circusctl(upstream, daemon.endpoint, ["reload", "web", "--waiting"], ctl_timeout=60)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr
    new = set(daemon.pids("web"))
    assert len(new) == 2 and not new & old
    answer = daemon.call("status", name="web")
    assert {row["health"] for row in answer["health"].values()} == {"ready"}
