"""``circus-plugin``: run one plugin class against a running circusd (spec/features.md §4).

::

    circus-plugin [--endpoint E] [--pubsub P] [--check-delay N] [--config KEY=VALUE ...]
                  [--curve-key FILE --curve-server-key FILE] [--log-level L]
                  [--log-output O] [--version] dotted.path.Class

This is the process circusd runs for each ``[plugin:NAME]`` section, as the command of a
``plugin:NAME`` watcher (upstream's model); run by hand, it attaches a plugin to a running
circusd. The plugin (a :class:`~circus.arbiter.plugins.CircusPlugin`: ``handle_init``, the
DEALER and SUB sockets) runs on its own loop in a thread. ``--config`` may be repeated;
upstream's single ``key:value:::key2:value2`` form is accepted too. SIGTERM or SIGINT stops
the plugin (``handle_stop`` runs, sockets close) and the command exits 0; it exits 1 when the plugin
cannot be loaded or does not start, 2 on a bad command line.

With CURVE on in circusd, give the plugin an authorized key pair and circusd's public key
(``--curve-key``/``--curve-server-key``, or ``CIRCUSCTL_CURVE_KEY``/
``CIRCUSCTL_CURVE_SERVER_KEY`` as for ``circusctl`` and ``circus-top``).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circus.ctl.keys import ClientCurve

__all__ = ["build_parser", "main", "parse_config", "run_plugin"]

log = logging.getLogger("circus.plugins")

_LEVELS = ("debug", "info", "warning", "error", "critical")
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _version() -> str:
    try:
        return version("circus-arbiter")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.1.0"


def parse_config(items: Sequence[str]) -> dict[str, str]:
    """The plugin's options from ``--config`` values.

    Each item is ``key=value``, or upstream's ``key:value:::key2:value2`` (split on the
    first ``:`` of each pair). Later keys win.

    Raises:
        ValueError: an item with no separator, or an empty key.
    """
    config: dict[str, str] = {}
    for item in items:
        if "=" in item:
            pairs = [item.partition("=")]
        else:
            pairs = [pair.partition(":") for pair in item.split(":::") if pair]
        for key, sep, value in pairs:
            key = key.strip()
            if not sep or not key:
                raise ValueError(f"--config {item!r}: expected KEY=VALUE (or key:value:::k2:v2)")
            config[key] = value
    return config


def build_parser() -> argparse.ArgumentParser:
    """The command line, as upstream's ``circus-plugin`` (``--config`` also takes KEY=VALUE)."""
    from circus.ctl.protocol import DEFAULT_ENDPOINT, DEFAULT_PUBSUB_ENDPOINT

    parser = argparse.ArgumentParser(
        prog="circus-plugin", description="Run one Circus plugin against a running circusd."
    )
    parser.add_argument(
        "plugin", help="the plugin class: a dotted path or a 'circus.plugins' entry point name"
    )
    parser.add_argument("--endpoint", default=DEFAULT_ENDPOINT, help="circusd's control endpoint")
    parser.add_argument(
        "--pubsub", default=DEFAULT_PUBSUB_ENDPOINT, help="circusd's pub/sub endpoint"
    )
    parser.add_argument(
        "--check-delay",
        dest="check_delay",
        type=float,
        default=5.0,
        help="passed to the plugin (upstream plugins' polling period), default 5",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a plugin option (repeatable); upstream's key:value:::key2:value2 works too",
    )
    parser.add_argument("--log-level", dest="loglevel", type=str.lower, choices=_LEVELS)
    parser.add_argument(
        "--log-output", dest="logoutput", default="-", help="'-' (stdout), stderr, a file..."
    )
    parser.add_argument(
        "--curve-key", metavar="FILE", help="our CURVE NAME.key_secret (env CIRCUSCTL_CURVE_KEY)"
    )
    parser.add_argument(
        "--curve-server-key",
        metavar="FILE",
        help="circusd's public CURVE key (env CIRCUSCTL_CURVE_SERVER_KEY)",
    )
    parser.add_argument("--ssh", help="not supported: run circus-plugin on the daemon's host")
    parser.add_argument("--version", action="version", version=_version())
    return parser


class _Stopper:
    """Signal handler asking the plugin's loop to stop the plugin (safe at any moment)."""

    def __init__(self, running: Any) -> None:
        self.running = running
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        self.deliver()

    def deliver(self) -> None:
        """Schedule ``plugin.stop`` on the plugin's loop if it runs (else at start-up)."""
        loop = self.running.loop
        if loop is None:
            return
        try:
            loop.add_callback(self.running.plugin.stop)
        except RuntimeError:  # the loop already closed: the plugin is ending anyway
            pass


def run_plugin(
    use: str,
    endpoint: str,
    pubsub_endpoint: str,
    check_delay: float = 5.0,
    config: dict[str, str] | None = None,
    curve: ClientCurve | None = None,
) -> int:
    """Run the plugin class ``use`` until SIGTERM/SIGINT or until it stops by itself.

    ``curve`` makes both of the plugin's sockets CURVE clients of circusd. Must be called
    from the main thread (it installs the signal handlers, and restores them).
    Returns 0 once the plugin has run and stopped, 1 when it cannot be loaded, is not
    ``active`` or fails to start (the reason is logged).
    """
    from ._errors import ArbiterError
    from .plugins._host import PluginThread, load_plugin_class

    try:
        cls = load_plugin_class(use)
        plugin = cls(endpoint, pubsub_endpoint, check_delay, None, **(config or {}))
    except ArbiterError as exc:
        log.error("%s", exc)
        return 1
    except Exception as exc:
        log.error("plugin %s cannot be created: %s", use, exc)
        return 1
    if curve is not None:
        # Default options of the plugin's context reach every socket it makes, before connect.
        plugin.context.curve_publickey = curve.public
        plugin.context.curve_secretkey = curve.secret
        plugin.context.curve_serverkey = curve.server
    if not getattr(plugin, "active", True):
        log.error("plugin %s is not active (active = %s)", use, (config or {}).get("active"))
        plugin.close()
        return 1
    name = getattr(plugin, "name", "") or use.rpartition(".")[2]
    plugin.name = name
    running = PluginThread(name, plugin)
    stopper = _Stopper(running)
    started = False
    previous = {signum: signal.signal(signum, stopper) for signum in _STOP_SIGNALS}
    try:
        running.thread.start()
        running.ready.wait()
        started = bool(getattr(plugin, "running", False))
        if started:
            log.info("plugin %s (%s) running on %s", name, use, endpoint)
        if stopper.requested:
            stopper.deliver()  # a signal that came before the loop existed
        running.thread.join()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if not started:
        log.error("plugin %s did not start (see the error above)", name)
        return 1
    log.info("plugin %s stopped", name)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``circus-plugin``; returns the exit status."""
    from circus.ctl.keys import ClientCurve, KeyFileError

    from ._logging import configure_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ssh:
        parser.error("--ssh is not supported: run circus-plugin on the daemon's host")
    try:
        config = parse_config(args.config)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        curve = ClientCurve.from_args(
            args.curve_key or os.environ.get("CIRCUSCTL_CURVE_KEY") or None,
            args.curve_server_key or os.environ.get("CIRCUSCTL_CURVE_SERVER_KEY") or None,
        )
    except KeyFileError as exc:
        parser.error(str(exc))
    try:
        configure_logging(args.loglevel or "info", args.logoutput)
    except (OSError, ValueError) as exc:
        parser.error(f"--log-output {args.logoutput!r}: {exc}")
    return run_plugin(args.plugin, args.endpoint, args.pubsub, args.check_delay, config, curve)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
