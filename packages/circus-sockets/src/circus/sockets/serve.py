"""``python -m circus.sockets.serve --fd N module:app``: a WSGI worker on an inherited socket.

Start N of these (``subprocess.Popen(pass_fds=[fd])``, or a watcher with ``use_sockets``
and ``--fd $(circus.sockets.web)``): they share the socket's accept queue, so workers can be
restarted while the daemon keeps the socket open and no connection is refused. The app is
imported from ``module:attribute`` (the current folder is on ``sys.path``, as with ``-m``).
SIGTERM or SIGINT stops the worker after the request in progress. When ready to accept, the
worker prints one line on stdout: ``serving MODULE:APP on fd N (HOST:PORT), pid PID``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ._wsgi import InheritedWSGIServer, QuietHandler, serve_fd

__all__ = ["InheritedWSGIServer", "QuietHandler", "load_app", "main", "serve_fd"]


def load_app(spec: str) -> Callable[..., Any]:
    """Import ``module:attribute`` (dotted attribute allowed) and return the WSGI callable."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"expected module:app, got {spec!r}")
    target: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ValueError(f"{spec} is not callable")
    app: Callable[..., Any] = target
    return app


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m circus.sockets.serve",
        description="Serve a WSGI app on an inherited listening socket (pre-fork worker).",
    )
    parser.add_argument("--fd", type=int, required=True, help="inherited listening socket fd")
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    parser.add_argument("app", help="the WSGI application, as module:attribute")
    args = parser.parse_args(argv)
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        app = load_app(args.app)
    except (ImportError, AttributeError, ValueError) as exc:
        parser.error(f"cannot load {args.app}: {exc}")

    def announce(server: InheritedWSGIServer) -> None:
        # One line on stdout when ready, so a supervisor or a test can wait for it.
        where = f"{server.server_name}:{server.server_port}"
        print(f"serving {args.app} on fd {args.fd} ({where}), pid {os.getpid()}", flush=True)

    try:
        serve_fd(args.fd, app, quiet=args.quiet, on_ready=announce)
    except OSError as exc:
        print(f"circus.sockets.serve: fd {args.fd}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
