"""The dashboard in a real headless Chromium, against a real circusd.

Debian's chromium driven by Playwright (``executable_path``; no browser download). .ci/run
installs chromium when it is missing; these tests skip, saying why, only if it is still absent.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="the dashboard needs circus-ctl's web extra")
pytest.importorskip("playwright", reason="the browser tests need playwright (dev group)")

from circus.ctl.web.testing import Circushttpd, chromium_page, chromium_path  # noqa: E402
from playwright.sync_api import Page, expect  # noqa: E402

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="chromium is not installed and could not be (.ci/run installs it with apt-get)",
)

CIRCUSCTL = str(Path(sys.executable).with_name("circusctl"))
TOKEN = "open-sesame-open-sesame"

CHILD = """\
import sys, time
print(f"hello from wid {sys.argv[1]}", flush=True)
while True:
    sum(i * i for i in range(20000))  # a little CPU so the charts move
    time.sleep(0.05)
"""


def config(tmp_path: Path) -> str:
    (tmp_path / "child.py").write_text(CHILD)
    return f"""
[watcher:greeter]
cmd = {sys.executable} -u child.py $(circus.wid)
numprocesses = 1
graceful_timeout = 2

[watcher:idle]
cmd = {sys.executable} -c "import time; time.sleep(300)"
autostart = false
"""


@pytest.fixture
def stack(tmp_path: Path, circusd: Callable[..., Any]) -> Iterator[tuple[Any, Circushttpd]]:
    """A circusd with two watchers and a circushttpd (with a token: it acts) watching it."""
    daemon = circusd(config(tmp_path))
    env = {**os.environ, "CIRCUSHTTPD_TOKEN": TOKEN}
    with Circushttpd(
        "--endpoint", daemon.endpoint, "--interval", "0.5", "--timeout", "1", env=env
    ) as httpd:
        yield daemon, httpd


@contextlib.contextmanager
def logged_in(url: str) -> Iterator[Page]:
    """``url`` in chromium, past the login form."""
    with chromium_page(url) as page:
        expect(page).to_have_url(re.compile(r"/login$"))
        page.fill("input[name=token]", TOKEN)
        page.click("button[type=submit]")
        expect(page.locator("#link-status")).to_have_text("live", timeout=15_000)
        yield page


def watcher_row(page: Page, name: str) -> Any:
    return page.locator(f'.daemon[data-daemon="0"] tr.watcher[data-watcher="{name}"]')


@pytest.mark.slow
def test_page_shows_watchers_follows_incr_and_output(stack: tuple[Any, Circushttpd]) -> None:
    daemon, httpd = stack
    with logged_in(httpd.url) as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        greeter = watcher_row(page, "greeter")
        expect(greeter.locator(".nprocs")).to_have_text("1", timeout=15_000)
        expect(greeter.locator(".state")).to_have_text("active")
        expect(watcher_row(page, "idle").locator(".state")).to_have_text("stopped")
        expect(watcher_row(page, "idle").locator(".nprocs")).to_have_text("0")
        expect(page.locator("#link-status")).to_have_text("live")
        expect(page.locator(".daemon-head .state")).to_have_text("connected")
        expect(page.locator("#logs")).to_contain_text("hello from wid 1", timeout=10_000)

        # Someone else changes the daemon: the page follows live.
        result = subprocess.run(
            [CIRCUSCTL, "--endpoint", daemon.endpoint, "incr", "greeter", "--waiting"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0, result.stderr
        expect(greeter.locator(".nprocs")).to_have_text("2", timeout=10_000)
        # The new child's first line arrives through the output topic.
        expect(page.locator("#logs")).to_contain_text("hello from wid 2", timeout=10_000)
        expect(page.locator("#events")).to_contain_text("watcher.greeter.spawn")

        # The page's own button: confirmed by the daemon's answer.
        greeter.locator('button[data-action="incr"]').click()
        expect(page.locator(".toast.ok")).to_contain_text("numprocesses 3", timeout=10_000)
        expect(greeter.locator(".nprocs")).to_have_text("3", timeout=10_000)
        assert len(daemon.pids("greeter")) == 3

        # The charts move: the CPU canvas has been drawn on.
        greeter.locator("td.name").click()
        expect(page.locator("tr.proc[data-pid]")).to_have_count(3)
        drawn = page.evaluate(
            """() => {
                const c = document.querySelector('tr.watcher[data-watcher="greeter"] canvas.mem');
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                return d.some((v, i) => i % 4 === 3 && v > 0);
            }"""
        )
        assert drawn
        assert not errors


@pytest.mark.slow
def test_errors_are_shown_not_swallowed(stack: tuple[Any, Circushttpd]) -> None:
    daemon, httpd = stack
    with logged_in(httpd.url) as page:
        idle = watcher_row(page, "idle")
        expect(idle.locator(".nprocs")).to_have_text("0", timeout=15_000)
        greeter = watcher_row(page, "greeter")
        expect(greeter.locator(".nprocs")).to_have_text("1")
        greeter.locator("td.name").click()
        row = page.locator("tr.proc").first
        row.locator("select").select_option("USR1")
        # Make the signal fail: the process is gone by the time it is sent. The page's next
        # snapshot drops the row of the removed watcher, so hold its button (a row may vanish
        # between the rm and a click, a user's race too) and click it through the DOM.
        pid = int(row.get_attribute("data-pid") or 0)
        button = row.locator('button[data-action="signal"]').element_handle()
        daemon.call("rm", name="greeter", waiting=True)
        button.evaluate("button => button.click()")
        toast = page.locator(".toast.error")
        expect(toast).to_contain_text(re.compile(r"signal greeter\[\d+\] failed: .+"))
        assert pid > 0


@pytest.mark.slow
def test_a_daemon_that_goes_away_shows_disconnected_and_comes_back(
    stack: tuple[Any, Circushttpd],
) -> None:
    daemon, httpd = stack
    with logged_in(httpd.url) as page:
        head = page.locator('.daemon[data-daemon="0"] .daemon-head .state')
        expect(head).to_have_text("connected", timeout=15_000)
        daemon.stop()
        expect(head).to_have_text("disconnected", timeout=15_000)
        expect(page.locator(".daemon.disconnected")).to_have_count(1)
        # An action on a gone daemon answers an error at once, the page does not hang.
        watcher_row(page, "greeter").locator('button[data-action="incr"]').click()
        expect(page.locator(".toast.error")).to_contain_text("disconnected", timeout=10_000)
        daemon.start()
        expect(head).to_have_text("connected", timeout=20_000)
        expect(watcher_row(page, "greeter").locator(".nprocs")).to_have_text("1", timeout=10_000)


@pytest.mark.slow
def test_login_page_guards_the_dashboard_when_a_token_is_set(
    tmp_path: Path, circusd: Callable[..., Any]
) -> None:
    daemon = circusd(config(tmp_path))
    env = {**os.environ, "CIRCUSHTTPD_TOKEN": "open-sesame-open-sesame"}
    with (
        Circushttpd("--endpoint", daemon.endpoint, "--interval", "0.5", env=env) as httpd,
        chromium_page(httpd.url) as page,
    ):
        expect(page).to_have_url(re.compile(r"/login$"))
        page.fill("input[name=token]", "wrong")
        page.click("button[type=submit]")
        expect(page.locator(".error")).to_have_text("wrong token")
        page.fill("input[name=token]", "open-sesame-open-sesame")
        page.click("button[type=submit]")
        expect(watcher_row(page, "greeter").locator(".nprocs")).to_have_text("1", timeout=15_000)
        expect(page.locator("#logout")).to_be_visible()
        page.click("#logout")
        expect(page).to_have_url(re.compile(r"/login$"))


@pytest.mark.slow
def test_without_a_token_the_page_is_read_only(tmp_path: Path, circusd: Callable[..., Any]) -> None:
    daemon = circusd(config(tmp_path))
    env = {k: v for k, v in os.environ.items() if k != "CIRCUSHTTPD_TOKEN"}
    with (
        Circushttpd("--endpoint", daemon.endpoint, "--interval", "0.5", env=env) as httpd,
        chromium_page(httpd.url) as page,
    ):
        greeter = watcher_row(page, "greeter")
        expect(greeter.locator(".nprocs")).to_have_text("1", timeout=15_000)
        expect(page.locator("#read-only")).to_be_visible()
        expect(page.locator("#read-only")).to_have_attribute("title", re.compile("--token-file"))
        expect(greeter.locator('button[data-action="incr"]')).to_be_hidden()
        expect(greeter.locator('button[data-action="incr"]')).to_be_disabled()
        expect(page.locator("#logs")).to_contain_text("output needs a login token")
        # Forcing a click through the DOM still acts on nothing: the button is disabled, and
        # the server refuses the call anyway (test_web_api).
        greeter.locator('button[data-action="incr"]').evaluate("button => button.click()")
        # Events still come live (circusctl acts here, with its own access to circusd).
        daemon.call("incr", name="greeter", waiting=True)
        expect(page.locator("#events")).to_contain_text("watcher.greeter.spawn", timeout=10_000)
        expect(greeter.locator(".nprocs")).to_have_text("2", timeout=10_000)
        assert "hello from wid" not in page.locator("#logs").inner_text()
    assert len(daemon.pids("greeter")) == 2


WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
    (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));
"""


@pytest.mark.slow
def test_the_page_works_under_its_content_security_policy(
    stack: tuple[Any, Circushttpd],
) -> None:
    daemon, httpd = stack
    url = httpd.url.replace("127.0.0.1", "localhost")  # a loopback name, not the address
    with logged_in(url) as page:
        console: list[str] = []
        page.on("console", lambda message: console.append(message.text))
        page.add_init_script(WATCH_CSP)
        page.reload()
        greeter = watcher_row(page, "greeter")
        expect(greeter.locator(".nprocs")).to_have_text("1", timeout=15_000)
        expect(page.locator("#link-status")).to_have_text("live")
        expect(page.locator("#logs")).to_contain_text("hello from wid 1", timeout=10_000)
        greeter.locator('button[data-action="incr"]').click()
        expect(page.locator(".toast.ok")).to_contain_text("numprocesses 2", timeout=10_000)
        assert page.evaluate("window.__csp") == []
        assert not [text for text in console if "Content Security Policy" in text]


@pytest.mark.slow
def test_a_rebound_name_reaches_nothing_from_a_real_browser(
    stack: tuple[Any, Circushttpd],
) -> None:
    """evil.example resolves to 127.0.0.1 in this browser: a script of that origin can
    neither call the API nor open the websocket."""
    daemon, httpd = stack
    port = httpd.url.rstrip("/").rsplit(":", 1)[1]
    rules = "--host-resolver-rules=MAP evil.example 127.0.0.1"
    with chromium_page(f"http://evil.example:{port}/", args=[rules]) as page:
        expect(page.locator("body")).to_contain_text("does not answer for that Host")
        outcome = page.evaluate(
            """async () => {
                const call = await fetch("/api/daemons/0/call", {
                    method: "POST",
                    headers: {"Content-Type": "application/json"},
                    body: JSON.stringify({command: "incr", properties: {name: "greeter"}}),
                });
                const socket = await new Promise((resolve) => {
                    const ws = new WebSocket("ws://" + location.host + "/ws");
                    ws.onopen = () => resolve("open");
                    ws.onerror = () => resolve("refused");
                });
                return [call.status, socket];
            }"""
        )
        assert outcome == [421, "refused"]
    assert len(daemon.pids("greeter")) == 1
