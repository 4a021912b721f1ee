"""Helpers for testing the dashboard: serve it in-process, run ``circushttpd``, find chromium.

Used by circus-ctl's own tests and the end-to-end browser tests; importable (tests have no
``__init__.py``), and cheap: tornado is only imported by the functions that need it.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import Dashboard

__all__ = [
    "CHROMIUM_FLAGS",
    "Circushttpd",
    "chromium_path",
    "chromium_page",
    "close_websocket",
    "serve",
]

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Flags the browser tests launch chromium with (a fresh ``--user-data-dir`` is added)."""


def chromium_path() -> str | None:
    """Return Debian's chromium (``$CHROMIUM`` first), or None if it is not installed."""
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", "chromium"):
        if candidate:
            found = shutil.which(candidate)
            if found:
                return found
    return None


@contextlib.asynccontextmanager
async def serve(dashboard: Dashboard, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Serve ``dashboard`` on a free port of ``host`` for the block; yield its base URL.

    The dashboard is started and, on exit, the server and the dashboard are closed.
    """
    import tornado.httpserver
    import tornado.netutil

    sockets = tornado.netutil.bind_sockets(0, host)
    server = tornado.httpserver.HTTPServer(dashboard.application())
    server.add_sockets(sockets)
    dashboard.start()
    try:
        yield f"http://{host}:{sockets[0].getsockname()[1]}"
    finally:
        server.stop()
        await server.close_all_connections()
        await dashboard.close()
        for sock in sockets:
            sock.close()


async def close_websocket(ws: Any, timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Close a tornado websocket client and wait until its connection is really closed.

    ``ws.close()`` only starts the closing handshake; a test that ends its loop right after
    would leave the socket open (and a ResourceWarning behind).
    """
    import asyncio

    ws.close()
    async with asyncio.timeout(timeout):
        while await ws.read_message() is not None:
            pass


_SERVING = re.compile(r"circushttpd: serving (http://\S+/)")


class Circushttpd:
    """``circushttpd`` run as a real process on a free port; :attr:`url` once it serves.

    Use as a context manager: on exit it gets SIGTERM (SIGKILL after 10 s) and is reaped.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 20) -> None:
        self.args: Sequence[str] = args
        self._log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close())
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "circus.ctl.web", "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        self.url = ""
        try:
            self.url = self._wait_serving(timeout)
        except BaseException:
            self.close()
            raise

    def _wait_serving(self, timeout: float) -> str:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        seen = b""
        while (remaining := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                break
            chunk = os.read(fd, 4096)
            if not chunk:  # circushttpd exited
                self.proc.wait(5)
                break
            seen += chunk
            match = _SERVING.search(seen.decode(errors="replace"))
            if match:
                return match.group(1)
        raise AssertionError(f"circushttpd did not start: {seen.decode()}{self.stderr()}")

    def stderr(self) -> str:
        """What circushttpd logged so far."""
        self._log.seek(0)
        return self._log.read()

    def close(self) -> int | None:
        """Stop circushttpd and reap it; its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()
        return self.proc.returncode

    def __enter__(self) -> Circushttpd:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextlib.contextmanager
def chromium_page(
    url: str, *, width: int = 1280, height: int = 720, args: Sequence[str] = ()
) -> Iterator[Any]:
    """Open ``url`` in headless chromium (Playwright, Debian's binary); yield the page.

    ``args``: more chromium flags, e.g. ``--host-resolver-rules=MAP evil.example 127.0.0.1``.

    Raises:
        RuntimeError: chromium or playwright is missing.
    """
    executable = chromium_path()
    if executable is None:
        raise RuntimeError("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="circushttpd-chromium-") as profile:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=executable,
                headless=True,
                args=[*CHROMIUM_FLAGS, *args],
                viewport={"width": width, "height": height},
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.goto(url)
                yield page
            finally:
                context.close()
