"""``httpd = true``: the dashboard (``circushttpd``) run as a watcher of the daemon, as upstream.

circusd binds a socket named ``circushttpd`` on ``httpd_host:httpd_port`` and runs the dashboard
as a singleton watcher that inherits it, so the port is held by the daemon across dashboard
restarts. The dashboard is a plain client of the control and pub/sub channels
(``circus.ctl.web``, the ``web`` extra of circus-ctl); nothing of the arbiter runs inside it.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from typing import Any

__all__ = ["HTTPD_NAME", "httpd_available", "httpd_socket", "httpd_watcher"]

HTTPD_NAME = "circushttpd"


def httpd_available() -> str | None:
    """None when the dashboard can run here, else the reason it cannot."""
    for module in ("circus.ctl.web", "tornado", "prometheus_client"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (pip install 'circus-ctl[web]')"
    return None


def httpd_socket(host: str, port: int) -> dict[str, Any]:
    """``CircusSocket`` arguments of the dashboard's listening socket."""
    return {"name": HTTPD_NAME, "host": host or "localhost", "port": int(port)}


def httpd_watcher(
    endpoint: str, pubsub_endpoint: str, token_file: str | None = None
) -> dict[str, Any]:
    """The watcher spec running ``python -m circus.ctl.web`` on the inherited socket.

    ``copy_env`` passes ``CIRCUSHTTPD_TOKEN`` through; off loopback the dashboard refuses to
    start without a token (or ``httpd_token_file``), and says why in circusd's log.
    """
    args = [
        "-m",
        "circus.ctl.web",
        "--fd",
        f"$(circus.sockets.{HTTPD_NAME})",
        "--endpoint",
        endpoint,
        "--pubsub",
        pubsub_endpoint,
    ]
    if token_file:
        args += ["--token-file", token_file]
    return {
        "name": HTTPD_NAME,
        "cmd": sys.executable,
        "args": shlex.join(args),
        "singleton": True,
        "numprocesses": 1,
        "use_sockets": True,
        "copy_env": True,
    }
