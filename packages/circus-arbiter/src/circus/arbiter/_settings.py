"""The daemon's options as one immutable value, checked once.

:class:`ArbiterSettings` holds every option the arbiter acts on: endpoints and their security,
the watcher set's pacing, the dashboard, what plugins are told, and the process-wide options
an embedded arbiter applies at start. ``Arbiter(...)`` builds one from upstream's keywords,
``Arbiter.from_config`` from a loaded config (``_from_config``); a ``reloadconfig`` replaces
it with the next one. circusd's own command-line concerns (logging set-up, the pidfile it
holds before anything binds) stay in ``circusd``.

A few upstream options have nothing to act on in this daemon: :func:`ignored_options` names
each one that was set, with the reason, and the arbiter logs them as WARNINGs at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from circus.process import DEFAULT_SPAWN_THREAD_FROM

from ._authz import parse_access
from ._errors import ArbiterError
from ._limits import check_arbiter_args

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_PUBSUB_ENDPOINT",
    "DEFAULT_STATS_ENDPOINT",
    "ArbiterSettings",
    "ignored_options",
]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_PUBSUB_ENDPOINT = "tcp://127.0.0.1:5556"
DEFAULT_STATS_ENDPOINT = "tcp://127.0.0.1:5557"  # with statsd on and no stats_endpoint


@dataclass(frozen=True)
class ArbiterSettings:
    """Every daemon option, validated when made.

    ``stats_endpoint`` ``None``: no stats channel; ``multicast_endpoint`` ``""``: no
    discovery. ``curve``: a ``CurveSettings``, the ``[circus]`` CURVE options as a dict, or
    ``None`` (checked when the channels open). ``unauthenticated_access`` is stored in its
    canonical lowercase spelling. ``max_connections``: the cap on simultaneous connections
    of each control endpoint (``None``: each endpoint's default, see ``_connguard``).
    ``spawn_thread``: the process's spawns fork from circus.process's small-table spawn
    thread once that many descriptors are open (``None``: never); applied with
    ``circus.process.set_spawn_thread`` at start and by a ``reloadconfig``.

    Raises (constructor):
        OptionError: (a ValueError) ``check_delay``, ``warmup_delay``, ``stats_interval`` or
            ``output_lines`` beyond its ceiling (``circus.watcher.LIMITS``).
        ArbiterError: ``unauthenticated_access`` is not read, operate or full, or
            ``spawn_thread`` is neither None nor a whole number, 0 or more.
    """

    endpoint: str = DEFAULT_ENDPOINT
    pubsub_endpoint: str = DEFAULT_PUBSUB_ENDPOINT
    stats_endpoint: str | None = None
    stats_interval: float = 1.0
    multicast_endpoint: str = ""
    endpoint_owner: str | None = None
    unauthenticated_access: str = "read"
    max_connections: int | None = None
    spawn_thread: int | None = DEFAULT_SPAWN_THREAD_FROM
    curve: Any = None
    check_delay: float = 1.0
    warmup_delay: float = 0.0
    output_lines: int = 1000
    config_file: str | None = None
    httpd: bool = False
    httpd_host: str = "localhost"
    httpd_port: int = 8080
    httpd_token_file: str | None = None
    httpd_close_outputs: bool = False
    loglevel: str | None = None
    logoutput: str | None = None
    debug: bool = False
    debug_gc: bool = False
    umask: int | None = None
    pidfile: str | None = None
    on_crash: str = "adopt"
    runtime_dir: str | None = None
    fqdn_prefix: str | None = None
    # accepted for compatibility; nothing here acts on them (see ignored_options)
    statsd_close_outputs: bool = False
    ssh_server: str | None = None
    proc_name: str = "circusd"
    loggerconfig: str | None = None

    def __post_init__(self) -> None:
        check_arbiter_args(
            check_delay=self.check_delay,
            warmup_delay=self.warmup_delay,
            stats_interval=self.stats_interval,
            output_lines=self.output_lines,
        )
        try:
            access = parse_access(self.unauthenticated_access)
        except ValueError:
            raise ArbiterError(
                f"unauthenticated_access = {self.unauthenticated_access!r}: expected read, "
                "operate or full"
            ) from None
        object.__setattr__(self, "unauthenticated_access", access)
        threshold = self.spawn_thread
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0
        ):
            raise ArbiterError(
                f"spawn_thread = {threshold!r}: expected None (off) or a whole number of "
                "open descriptors, 0 or more"
            )


def ignored_options(settings: ArbiterSettings, loop: Any = None) -> list[tuple[str, str]]:
    """``(option, why nothing acts on it)`` for each such option that was set (``loop``: the
    ``Arbiter(loop=...)`` argument)."""
    ignored: list[tuple[str, str]] = []
    if settings.statsd_close_outputs:
        ignored.append(
            (
                "statsd_close_outputs",
                "stats are published by circusd itself; there is no circusd-stats process "
                "whose output could be closed",
            )
        )
    if settings.ssh_server:
        ignored.append(
            (
                "ssh_server",
                "ssh tunnels are not supported: plugins and the dashboard connect to the "
                "endpoints directly (use CURVE to reach circusd from another machine)",
            )
        )
    if settings.proc_name != "circusd":
        ignored.append(("proc_name", "this daemon does not change its process title"))
    if settings.loggerconfig:
        ignored.append(
            (
                "loggerconfig",
                "an Arbiter leaves logging to the program that runs it (circusd applies "
                "--logger-config / [circus] loggerconfig itself)",
            )
        )
    if loop is not None:
        ignored.append(
            (
                "loop",
                "the arbiter runs on the asyncio loop that runs start_async() or run() "
                "(arbiter.loop is tornado's IOLoop for that loop)",
            )
        )
    return ignored
