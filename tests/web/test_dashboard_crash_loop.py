"""The dashboard, in a real headless Chromium against a real circusd, shows a crash-looping
watcher as such (the state pill and its details), not ``active``."""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="the dashboard needs circus-ctl's web extra")
pytest.importorskip("playwright", reason="the browser tests need playwright (dev group)")

from circus.ctl.web.testing import Circushttpd, chromium_page, chromium_path  # noqa: E402
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium_path() is None,
        reason="chromium is not installed and could not be (.ci/run installs it with apt-get)",
    ),
]

TOKEN = "open-sesame-open-sesame"


@contextlib.contextmanager
def logged_in(url: str) -> Iterator[Page]:
    with chromium_page(url) as page:
        expect(page).to_have_url(re.compile(r"/login$"))
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        expect(page.locator("#link-status")).to_have_text("live", timeout=15_000)
        yield page


def test_crash_looping_watcher_shows_on_the_page(tmp_path: Path, circusd: Any) -> None:
    daemon = circusd(
        f"""
[watcher:crasher]
cmd = {sys.executable} -c 'raise SystemExit(3)'
graceful_timeout = 2
backoff_max = 1

[watcher:fine]
cmd = {sys.executable} -c 'import time; time.sleep(300)'
graceful_timeout = 2
"""
    )
    env = {**os.environ, "CIRCUSHTTPD_TOKEN": TOKEN}
    with (
        Circushttpd(
            "--endpoint", daemon.endpoint, "--interval", "0.5", "--timeout", "1", env=env
        ) as httpd,
        logged_in(httpd.url) as page,
    ):
        pill = page.locator('.daemon[data-daemon="0"] tr.watcher[data-watcher="crasher"] .state')
        expect(pill).to_have_text("crash-looping", timeout=30_000)
        expect(pill).to_have_class(re.compile(r"\bcrash-looping\b"))
        expect(pill).to_have_attribute(
            "title", re.compile(r"failed exits in a row, last exit code 3")
        )
        fine = page.locator('.daemon[data-daemon="0"] tr.watcher[data-watcher="fine"] .state')
        expect(fine).to_have_text("active")
