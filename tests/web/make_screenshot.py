"""Take docs/dashboard.png: two real circusd, circushttpd watching both, headless chromium.

Run from the repository root: ``.venv/bin/python tests/web/make_screenshot.py [OUT.png]``.
Not a test (pytest does not collect it); it needs chromium like the browser tests.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from circus.ctl import CircusClient
from circus.ctl.web.testing import Circushttpd, chromium_page

WORKER = """\
import random, sys, time
name = sys.argv[1]
n = 0
while True:
    n += 1
    burst = random.random() < 0.5
    end = time.monotonic() + (0.15 if burst else 0.02)
    while time.monotonic() < end:
        pass
    if n % 4 == 0:
        print(f"{name}: handled job {n} in {random.randint(3, 40)} ms", flush=True)
    if n % 17 == 0:
        print(f"{name}: slow upstream, retrying", file=sys.stderr, flush=True)
    time.sleep(0.25)
"""


def start_daemon(root: Path, name: str, watchers: str) -> tuple[subprocess.Popen[bytes], str]:
    root.mkdir()
    (root / "worker.py").write_text(WORKER)
    endpoint = f"ipc://{root}/ctrl"
    (root / "circus.ini").write_text(
        f"[circus]\nendpoint = {endpoint}\npubsub_endpoint = ipc://{root}/pub\n" + watchers
    )
    circusd = str(Path(sys.executable).with_name("circusd"))
    proc = subprocess.Popen(
        [circusd, "circus.ini"], cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 20
    with CircusClient(endpoint, timeout=1, check=False) as client:
        while time.monotonic() < deadline:
            try:
                if client.call("status").get("status") == "ok":
                    return proc, endpoint
            except Exception:
                time.sleep(0.1)
    raise SystemExit(f"circusd {name} did not start")


def main(out: str = "docs/dashboard.png") -> None:
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        prod, prod_ep = start_daemon(
            Path(tmp, "prod"),
            "prod",
            f"""
[watcher:api]
cmd = {py} -u worker.py api
numprocesses = 3
[watcher:scheduler]
cmd = {py} -u worker.py scheduler
[watcher:mailer]
cmd = {py} -u worker.py mailer
autostart = false
""",
        )
        staging, staging_ep = start_daemon(
            Path(tmp, "staging"),
            "staging",
            f"""
[watcher:api]
cmd = {py} -u worker.py api-staging
""",
        )
        try:
            with (
                Circushttpd(
                    "--endpoint", prod_ep, "--endpoint", staging_ep, "--interval", "0.5"
                ) as httpd,
                chromium_page(httpd.url, width=1280, height=800) as page,
            ):
                page.wait_for_selector('tr.watcher[data-watcher="api"] .nprocs:text("3")')
                page.locator(
                    '.daemon[data-daemon="0"] tr.watcher[data-watcher="api"] td.name'
                ).click()
                page.wait_for_timeout(1500)
                page.locator('.daemon[data-daemon="0"] button[data-action="incr"]').first.click()
                page.wait_for_timeout(1500)
                scheduler = page.locator(
                    '.daemon[data-daemon="0"] tr.watcher[data-watcher="scheduler"]'
                )
                scheduler.locator('button[data-action="restart"]').click()
                page.wait_for_timeout(25000)
                Path(out).parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=out)
        finally:
            for proc in (prod, staging):
                proc.send_signal(signal.SIGTERM)
                proc.wait(30)
    print(f"wrote {out}")


if __name__ == "__main__":
    main(*sys.argv[1:])
