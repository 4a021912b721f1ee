"""``httpd = true`` in [circus]: circusd serves the dashboard as a watcher on its own socket."""

from __future__ import annotations

import sys
import urllib.request

import pytest

pytest.importorskip("prometheus_client", reason="the dashboard needs circus-ctl[web]")


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=2) as answer:
        return answer.status, answer.read().decode()


def test_httpd_true_serves_the_dashboard_and_metrics(circusd, wait) -> None:
    daemon = circusd(
        "[circus]\nhttpd = true\nhttpd_host = 127.0.0.1\nhttpd_port = 0\n"
        f"[watcher:sleeper]\ncmd = {sys.executable} -c 'import time; time.sleep(300)'\n"
    )
    try:
        assert "circushttpd" in daemon.call("list")["watchers"]
        sockets = daemon.call("listsockets")["sockets"]
        (row,) = [s for s in sockets if s["name"] == "circushttpd"]
        assert row["port"] > 0, row
        base = f"http://127.0.0.1:{row['port']}"

        def page() -> str | None:
            try:
                status, body = _get(base + "/")
            except OSError:
                return None
            return body if status == 200 else None

        assert "Circus" in wait(page, 30, "the dashboard to answer")

        def metrics() -> str | None:
            try:
                body = _get(base + "/metrics")[1]
            except OSError:
                return None
            return body if 'watcher="sleeper"' in body else None

        assert "circus_" in wait(metrics, 30, "metrics naming the sleeper watcher")
    finally:
        assert daemon.stop() == 0
