"""``httpd = true``: the dashboard (``circushttpd``) run as a watcher of the daemon, as upstream.

circusd binds a socket named ``circushttpd`` on ``httpd_host:httpd_port`` and runs the dashboard
as a singleton watcher that inherits it, so the port is held by the daemon across dashboard
restarts. The dashboard is a plain client of the control and pub/sub channels
(``circus.ctl.web``, the ``web`` extra of circus-ctl); nothing of the arbiter runs inside it.

With CURVE on, the dashboard is given circusd's own key pair (``--curve-key`` and
``--curve-server-key`` naming circusd's key files), as plugin processes are: that key is
always authorized, so ``curve_authorized_keys`` needs no entry for the dashboard. Only the
file names appear on its command line, never a key.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
from collections.abc import Mapping
from typing import Any

__all__ = [
    "HTTPD_NAME",
    "httpd_available",
    "httpd_curve_files",
    "httpd_refusal",
    "httpd_socket",
    "httpd_watcher",
]

HTTPD_NAME = "circushttpd"


def httpd_available() -> str | None:
    """None when the dashboard can run here, else the reason it cannot."""
    for module in ("circus.ctl.web", "tornado", "prometheus_client"):
        if importlib.util.find_spec(module) is None:
            return (
                f"{module} is not installed: it is circus-ctl's web extra (from a clone: "
                "pip install './packages/circus-ctl[web]'; once published: "
                "pip install 'circus-ctl[web]')"
            )
    return None


def httpd_refusal(
    host: str, token_file: str | None, environ: Mapping[str, str]
) -> tuple[str, str] | None:
    """Why the dashboard would refuse to start, as ``(option to blame, message)``; None
    when it would start (or cannot be checked: circus.ctl.web is missing).

    The dashboard exits at once, and would be respawned over and over, when its token
    (``token_file``, else ``CIRCUSHTTPD_TOKEN`` in ``environ``, circusd's environment which
    the watcher copies) cannot be read or is too short, or when ``host`` is not loopback and
    there is no token. Checked when the config is loaded, so circusd refuses it once.
    """
    try:
        from circus.ctl.web import WebError, is_loopback, read_token
    except ImportError:
        return None
    try:
        token = read_token(token_file, dict(environ))
    except WebError as exc:
        return ("httpd_token_file" if token_file else "httpd"), str(exc)
    if token is None and not is_loopback(host or "localhost"):
        return "httpd_host", (
            "the dashboard would be reachable from other machines without a login (anyone "
            "reaching it could stop your processes): set httpd_token_file = PATH (or "
            "CIRCUSHTTPD_TOKEN in circusd's environment), or use httpd_host = 127.0.0.1"
        )
    return None


def httpd_socket(host: str, port: int) -> dict[str, Any]:
    """``CircusSocket`` arguments of the dashboard's listening socket."""
    return {"name": HTTPD_NAME, "host": host or "localhost", "port": int(port)}


def httpd_curve_files(curve_server: Any) -> tuple[str, str] | None:
    """circusd's own ``(secret, public)`` key files for the dashboard, from the running
    :class:`~circus.arbiter._curve.CurveServer` (None: CURVE is off).

    Paths are made absolute, since the dashboard may not run in circusd's directory; the
    public half is read from the secret file when ``curve_public_key`` is not set.
    """
    if curve_server is None:
        return None
    settings = curve_server.settings
    secret = os.path.abspath(settings.secret_key)
    return secret, os.path.abspath(settings.public_key) if settings.public_key else secret


def httpd_watcher(
    endpoint: str,
    pubsub_endpoint: str,
    token_file: str | None = None,
    curve_files: tuple[str, str] | None = None,
    close_outputs: bool = False,
) -> dict[str, Any]:
    """The watcher spec running ``python -m circus.ctl.web`` on the inherited socket.

    ``copy_env`` passes ``CIRCUSHTTPD_TOKEN`` (and ``CIRCUSHTTPD_ALLOWED_HOSTS``) through; a
    config the dashboard would refuse (see :func:`httpd_refusal`) is refused at load.
    ``curve_files``: ``(secret key file, public key file)`` the dashboard connects with when
    circusd requires CURVE (see :func:`httpd_curve_files`). ``close_outputs``
    (``httpd_close_outputs``): the dashboard's stdout and stderr are closed, as upstream.
    """
    args = [
        "-P",  # not the working directory (maybe another user's) first on sys.path: root runs it
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
    if curve_files is not None:
        args += ["--curve-key", curve_files[0], "--curve-server-key", curve_files[1]]
    spec: dict[str, Any] = {
        "name": HTTPD_NAME,
        "cmd": sys.executable,
        "args": shlex.join(args),
        "singleton": True,
        "numprocesses": 1,
        "use_sockets": True,
        "copy_env": True,
    }
    if close_outputs:
        spec.update(close_child_stdout=True, close_child_stderr=True)
    return spec
