"""The dashboard, in a real headless Chromium, shows per-process readiness and STATUS= text."""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="the dashboard needs circus-ctl's web extra")
pytest.importorskip("playwright", reason="the browser tests need playwright (dev group)")

from circus.ctl.web.testing import Circushttpd, chromium_page, chromium_path  # noqa: E402
from playwright.sync_api import expect  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium_path() is None,
        reason="chromium is not installed and could not be (.ci/run installs it with apt-get)",
    ),
]

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "open-sesame-open-sesame"


def test_process_rows_show_readiness_and_status_text(circusd: Any) -> None:
    daemon = circusd(start=False)
    shutil.copy(ROOT / "examples" / "rolling" / "app.py", daemon.dir / "app.py")
    (daemon.dir / "version").write_text("v7\n")
    app = f"{sys.executable} app.py $(circus.sockets.web)"
    common = f"working_dir = {daemon.dir}\nuse_sockets = true\ngraceful_timeout = 5\n"
    daemon.write(
        "[socket:web]\nhost = 127.0.0.1\nport = 0\n"
        f"[watcher:web]\ncmd = {app}\n{common}readiness = notify\n[env:web]\nAPP_WARMUP = 0\n"
        f"[watcher:slow]\ncmd = {app}\n{common}readiness = notify\nreadiness_timeout = 120\n"
        "[env:slow]\nAPP_WARMUP = 120\n"
    )
    daemon.start()
    assert daemon.call("start", name="web", waiting=True, timeout=30)["status"] == "ok"
    (web,) = daemon.pids("web")
    (slow,) = daemon.pids("slow")
    env = {**os.environ, "CIRCUSHTTPD_TOKEN": TOKEN}
    with (
        Circushttpd("--endpoint", daemon.endpoint, "--interval", "0.5", env=env) as httpd,
        chromium_page(httpd.url) as page,
    ):
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        expect(page).to_have_url(re.compile(r"/login$"))
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        for name in ("web", "slow"):
            row = page.locator(f'tr.watcher[data-watcher="{name}"]')
            expect(row.locator(".state")).to_have_text("active", timeout=15_000)
            row.locator("td.name").click()
        ready = page.locator(f'tr.proc[data-pid="{web}"]')
        expect(ready.locator(".pill.health")).to_have_text("ready", timeout=10_000)
        expect(ready.locator(".pill.health")).to_have_class(re.compile(r"\bready\b"))
        expect(ready.locator(".status-text")).to_have_text("serving v7")
        starting = page.locator(f'tr.proc[data-pid="{slow}"]')
        expect(starting.locator(".pill.health")).to_have_text("starting")
        assert not errors
