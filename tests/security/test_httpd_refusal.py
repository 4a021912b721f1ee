"""``httpd = true`` with a dashboard that cannot start: circusd says so once, at load, instead
of respawning a dashboard that exits at every start.

The dashboard refuses to run without a usable token off loopback, or with a token it cannot
read or that is too short; circusd checks the same at config load (start and reloadconfig).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client", reason="the dashboard needs circus-ctl[web]")

SLEEPER = f"[watcher:sleeper]\ncmd = {sys.executable} -c 'import time; time.sleep(300)'\n"


def _exits_once(daemon: Any) -> str:
    """Start circusd; it must exit 1 by itself; return what it printed."""
    daemon.start(wait=False)
    try:
        code = daemon.wait(60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"circusd kept running: {daemon.output()[-3000:]}") from None
    assert code == 1, daemon.output()
    return daemon.output()


def test_an_unreadable_token_file_is_refused_once_not_respawned(
    circusd: Any, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-token"
    daemon = circusd(
        "[circus]\nhttpd = true\nhttpd_host = 127.0.0.1\nhttpd_port = 0\n"
        f"httpd_token_file = {missing}\n" + SLEEPER,
        start=False,
    )
    output = _exits_once(daemon)
    assert output.count("cannot read the token file") == 1, output
    assert "[circus] httpd_token_file" in output and "circus.ini:" in output
    assert "circushttpd[" not in output  # the dashboard never ran


def test_off_loopback_without_a_token_is_refused_once(
    circusd: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CIRCUSHTTPD_TOKEN", raising=False)
    # 192.0.2.10 (TEST-NET-1) is not loopback and not ours: nothing is ever bound there.
    daemon = circusd(
        "[circus]\nhttpd = true\nhttpd_host = 192.0.2.10\nhttpd_port = 0\n" + SLEEPER,
        start=False,
    )
    output = _exits_once(daemon)
    assert output.count("without a login") == 1, output
    assert "[circus] httpd_host = '192.0.2.10'" in output
    assert "httpd_token_file" in output and "CIRCUSHTTPD_TOKEN" in output


def test_a_short_token_in_circusds_environment_is_refused_once(
    circusd: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CIRCUSHTTPD_TOKEN", "too-short")
    daemon = circusd(
        "[circus]\nhttpd = true\nhttpd_host = 127.0.0.1\nhttpd_port = 0\n" + SLEEPER,
        start=False,
    )
    output = _exits_once(daemon)
    assert output.count("$CIRCUSHTTPD_TOKEN is 9 characters long; at least 16") == 1, output


def test_reloadconfig_into_a_refused_dashboard_changes_nothing(
    circusd: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CIRCUSHTTPD_TOKEN", raising=False)
    daemon = circusd(SLEEPER)
    before = daemon.call("list")["watchers"]
    daemon.write("[circus]\nhttpd = true\nhttpd_host = 192.0.2.10\nhttpd_port = 0\n" + SLEEPER)
    answer = daemon.call("reloadconfig", waiting=True)
    assert answer["status"] == "error", answer
    assert "httpd_host" in answer["reason"] and "without a login" in answer["reason"]
    assert daemon.call("list")["watchers"] == before
    assert daemon.proc is not None and daemon.proc.poll() is None
