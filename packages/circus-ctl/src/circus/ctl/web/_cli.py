"""``circushttpd``: serve the dashboard for one or more daemons."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
from collections.abc import Sequence

import tornado.httpserver
import tornado.netutil

from .. import __version__, protocol
from ..keys import ClientCurve, KeyFileError
from ._app import Dashboard
from ._auth import TOKEN_ENV, AuthPolicy, read_token
from ._hosts import ALLOWED_HOSTS_ENV, HostGuard, allowed_hosts_from_env
from .errors import WebError

__all__ = ["allowed_hosts", "curve_from", "main", "parser"]


def parser() -> argparse.ArgumentParser:
    """The command-line parser of circushttpd."""
    p = argparse.ArgumentParser(
        prog="circushttpd",
        description="Live web dashboard for circusd: watchers, processes, CPU and memory, "
        "events and output, actions, and Prometheus /metrics.",
    )
    p.add_argument(
        "--endpoint",
        action="append",
        metavar="E",
        help="a daemon's control endpoint; repeat for several daemons "
        f"(default $CIRCUSCTL_ENDPOINT or {protocol.DEFAULT_ENDPOINT})",
    )
    p.add_argument(
        "--pubsub",
        action="append",
        metavar="P",
        help="the pub/sub endpoint of each --endpoint, in order (default: asked of the daemon)",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks one)")
    p.add_argument(
        "--fd",
        type=int,
        help="serve on this already-listening socket (as circusd passes "
        "$(circus.sockets.circushttpd)); --host/--port are then ignored",
    )
    p.add_argument(
        "--token-file",
        metavar="PATH",
        help=f"file whose first line is the login token (or set ${TOKEN_ENV}); "
        "required unless listening on loopback",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for this host name (NAME or NAME:PORT), e.g. the name of "
        "a reverse proxy in front of the dashboard; repeatable (also read from "
        f"${ALLOWED_HOSTS_ENV}, comma separated). Other names get 421",
    )
    p.add_argument(
        "--curve-key",
        metavar="PATH",
        help="this dashboard's CURVE secret key file, NAME.key_secret, for a circusd that "
        "requires CURVE (default $CIRCUSCTL_CURVE_KEY)",
    )
    p.add_argument(
        "--curve-server-key",
        metavar="PATH",
        help="circusd's public CURVE key file, with --curve-key "
        "(default $CIRCUSCTL_CURVE_SERVER_KEY)",
    )
    p.add_argument(
        "--interval", type=float, default=1.0, help="seconds between stats polls (default 1)"
    )
    p.add_argument(
        "--timeout", type=float, default=2.0, help="seconds to wait for a poll answer (default 2)"
    )
    p.add_argument("--log-level", default="info", help="debug, info, warning, error")
    p.add_argument("--version", action="version", version=f"circushttpd {__version__}")
    return p


def _listen(ns: argparse.Namespace) -> tuple[list[socket.socket], str]:
    """Return the listening sockets and the host they are bound to."""
    if ns.fd is not None:
        sock = socket.socket(fileno=ns.fd)
        sock.setblocking(False)
        host = sock.getsockname()[0] if sock.family != socket.AF_UNIX else "localhost"
        return [sock], str(host)
    return tornado.netutil.bind_sockets(ns.port, ns.host), ns.host


def curve_from(ns: argparse.Namespace) -> ClientCurve | None:
    """The CURVE keys given by ``--curve-key``/``--curve-server-key`` or, as for
    circusctl, ``CIRCUSCTL_CURVE_KEY``/``CIRCUSCTL_CURVE_SERVER_KEY``; None for neither.

    Raises:
        KeyFileError: only one of the two is given, or a file cannot be read.
    """
    return ClientCurve.from_args(
        ns.curve_key or os.environ.get("CIRCUSCTL_CURVE_KEY") or None,
        ns.curve_server_key or os.environ.get("CIRCUSCTL_CURVE_SERVER_KEY") or None,
    )


def allowed_hosts(ns: argparse.Namespace) -> list[str]:
    """``--allowed-host`` names, then those of ``$CIRCUSHTTPD_ALLOWED_HOSTS``.

    Raises:
        WebError: one of them is not a host name or address (with an optional port).
    """
    names = [*ns.allowed_host, *allowed_hosts_from_env(os.environ)]
    HostGuard.allowing(names)
    return names


async def _serve(ns: argparse.Namespace, auth: AuthPolicy, curve: ClientCurve | None) -> int:
    endpoints = ns.endpoint or [os.environ.get("CIRCUSCTL_ENDPOINT") or protocol.DEFAULT_ENDPOINT]
    dashboard = Dashboard(
        endpoints,
        pubsub_endpoints=ns.pubsub or (),
        interval=ns.interval,
        timeout=ns.timeout,
        auth=auth,
        curve=curve,
        allowed_hosts=allowed_hosts(ns),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sockets, _host = _listen(ns)
    server = tornado.httpserver.HTTPServer(dashboard.application(), xheaders=False)
    try:
        server.add_sockets(sockets)
        dashboard.start()
        for sock in sockets:
            address = sock.getsockname()
            if sock.family == socket.AF_INET6:
                url = f"http://[{address[0]}]:{address[1]}/"
            else:
                url = f"http://{address[0]}:{address[1]}/"
            print(f"circushttpd: serving {url} for {', '.join(endpoints)}", flush=True)
        await stop.wait()
    finally:
        server.stop()
        await server.close_all_connections()
        await dashboard.close()
        for sock in sockets:
            sock.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run circushttpd until SIGTERM/SIGINT; return the exit code (1: refused to start)."""
    ns = parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(ns.log_level).upper(), logging.INFO),
        format="%(asctime)s circushttpd[%(process)d] %(levelname)s %(message)s",
    )
    try:
        auth = AuthPolicy(read_token(ns.token_file))
        allowed_hosts(ns)
        curve = curve_from(ns)
        if ns.fd is None:
            auth.check_bind(ns.host)
        else:
            with socket.socket(fileno=os.dup(ns.fd)) as probe:
                if probe.family != socket.AF_UNIX:
                    auth.check_bind(str(probe.getsockname()[0]))
        return asyncio.run(_serve(ns, auth, curve))
    except (WebError, KeyFileError) as exc:
        print(f"circushttpd: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"circushttpd: cannot listen on {ns.host}:{ns.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
