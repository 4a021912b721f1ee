"""``circusctl listen`` and ``circusctl logs``: the commands that read the pub/sub channel.

``logs`` prints the last lines the daemon kept (our ``logs`` command), then with ``-f``
follows ``output.<watcher>.<stream>`` messages live. ``listen`` prints events.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .. import protocol
from .._consumer import CircusConsumer
from ..errors import CallTimeout, CtlError, DaemonUnreachable
from ._commands import CommandParser, UsageError

if TYPE_CHECKING:
    from ._app import Context
    from ._color import Palette

__all__ = ["format_log_line", "parser", "run"]


def parser(name: str) -> CommandParser:
    """Return the argument parser of ``listen`` or ``logs``."""
    if name == "listen":
        p = CommandParser(
            prog="circusctl listen",
            usage=(
                "circusctl [--endpoint PUBSUB] listen [--pubsub-endpoint E] [--timeout S] "
                "[--count N] [ENDPOINT] [TOPIC...]"
            ),
            description=(
                "Print events from the pub/sub channel. TOPICs are prefixes "
                "(e.g. watcher.web. or output.); default: everything. As with Circus 0.19, "
                "--endpoint given before the command is the pub/sub endpoint here "
                f"(default {protocol.DEFAULT_PUBSUB_ENDPOINT}); so is an argument that is "
                "an endpoint (tcp://..., ipc://...). With --timeout (before or after the "
                "command), exit 1 if no connection to the pub/sub endpoint is made within "
                "that many seconds; without it, wait for circusd as long as it takes."
            ),
        )
        p.add_argument("topics", nargs="*", metavar="TOPIC")
        p.add_argument(
            "--timeout",
            type=float,
            metavar="SECONDS",
            help="give up if no connection is made within SECONDS (default: wait forever)",
        )
    else:
        p = CommandParser(
            prog="circusctl logs",
            usage="circusctl logs [-f] [-n LINES] [--pubsub-endpoint E] [NAME...]",
            description=(
                "Show the last lines of output of watchers (all when no NAME), merged and "
                "prefixed with time and watcher name; with -f keep following them live. "
                "The pub/sub endpoint is asked from circusd (globaloptions) unless given."
            ),
        )
        p.add_argument("names", nargs="*", metavar="NAME", help="watcher names")
        p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
        p.add_argument(
            "-n", "--lines", type=int, default=20, help="lines of history per watcher (20)"
        )
    p.add_argument("--pubsub-endpoint", metavar="ENDPOINT", help="the daemon's pub/sub endpoint")
    p.add_argument(
        "--count",
        type=int,
        default=0,
        metavar="N",
        help="exit after N live messages (default: run until interrupted)",
    )
    return p


def run(ctx: Context, name: str, args: list[str]) -> int:
    """Run ``listen`` or ``logs`` with its arguments; return the exit code."""
    from ._app import report_transport_error, report_usage_error

    try:
        ns = parser(name).parse_args(args)
    except UsageError as exc:
        return report_usage_error(ctx, name, exc)
    try:
        if name == "listen":
            return _listen(ctx, ns)
        return _logs(ctx, ns)
    except (DaemonUnreachable, CallTimeout) as exc:
        return report_transport_error(ctx, exc)
    except KeyboardInterrupt:
        return 0


# --------------------------------------------------------------------------- listen


def _listen_endpoint(ctx: Context, ns: argparse.Namespace) -> str:
    """Where ``listen`` subscribes.

    ``--pubsub-endpoint``; else, as in 0.19, an explicit ``--endpoint`` (which must then be the
    pub/sub one); else, when ``CIRCUSCTL_ENDPOINT`` names a daemon, its pub/sub endpoint
    asked with ``globaloptions``; else the default pub/sub endpoint.
    """
    if ns.pubsub_endpoint:
        return str(ns.pubsub_endpoint)
    if ns.endpoint_arg:
        return str(ns.endpoint_arg)
    if ctx.endpoint_given:
        control_pubsub = _pubsub_if_control(ctx)
        if control_pubsub is not None:
            ctx.err(
                f"note: {ctx.endpoint} is circusd's control endpoint; "
                f"listening on its pub/sub endpoint {control_pubsub}"
            )
            return control_pubsub
        return str(ctx.endpoint)
    if os.environ.get("CIRCUSCTL_ENDPOINT"):
        try:
            return _discover_pubsub(ctx)
        except CtlError:
            pass
    return protocol.DEFAULT_PUBSUB_ENDPOINT


def _pubsub_if_control(ctx: Context) -> str | None:
    """If ``--endpoint`` is a control endpoint (a common mistake with ``listen``), return the
    daemon's pub/sub endpoint; None when it is not a control socket (a PUB refuses the probe
    at once)."""
    from .._client import CircusClient

    try:
        with CircusClient(ctx.endpoint, min(ctx.timeout, 1.0), **ctx.curve()) as probe:
            options = probe.call("globaloptions", {}).get("options") or {}
    except CtlError:
        return None
    endpoint = options.get("pubsub_endpoint")
    return str(endpoint) if endpoint else None


def _split_endpoint(ns: argparse.Namespace) -> None:
    """An argument that is an endpoint (upstream's documented ``circusctl listen
    tcp://127.0.0.1:5556``) is where to listen, not a topic no message would ever match."""
    endpoints = [t for t in ns.topics if "://" in t]
    if len(endpoints) > 1:
        raise UsageError(f"one endpoint at most, got {' '.join(endpoints)}", "listen")
    if endpoints and ns.pubsub_endpoint:
        raise UsageError("an endpoint argument and --pubsub-endpoint: give one", "listen")
    ns.endpoint_arg = endpoints[0] if endpoints else None
    ns.topics = [t for t in ns.topics if "://" not in t]


def _connect_timeout(ctx: Context, ns: argparse.Namespace) -> float | None:
    """``--timeout`` after the command, else before it; None (wait forever, as 0.19)
    without either."""
    if ns.timeout is not None:
        if ns.timeout <= 0:
            raise UsageError("--timeout must be positive", "listen")
        return float(ns.timeout)
    return ctx.timeout if ctx.timeout_given else None


def _listen(ctx: Context, ns: argparse.Namespace) -> int:
    from ._app import report_usage_error

    try:
        _split_endpoint(ns)
        connect_timeout = _connect_timeout(ctx, ns)
    except UsageError as exc:
        return report_usage_error(ctx, "listen", exc)
    endpoint = _listen_endpoint(ctx, ns)
    seen = 0
    try:
        consumer = CircusConsumer(
            ns.topics or None,
            endpoint,
            ssh_server=ctx.ssh,
            ssh_keyfile=ctx.ssh_keyfile,
            connect_timeout=connect_timeout,
            **ctx.curve(),
        )
    except DaemonUnreachable as exc:
        if ctx.json:
            ctx.dump({"status": "error", "reason": str(exc), "errno": None, "endpoint": endpoint})
        else:
            ctx.err(ctx.palette.error(f"error: {exc}"))
            ctx.err(
                "listen subscribes to circusd's pub/sub endpoint (the [circus] "
                "pubsub_endpoint option): give it with --pubsub-endpoint or as an argument."
            )
        return 1
    with consumer:
        while True:
            message = consumer.recv()
            if message is None:  # pragma: no cover - recv() without timeout always returns
                continue
            topic, payload = message
            if ctx.json:
                ctx.dump({"topic": topic, "payload": payload})
            else:
                ctx.out(f"{ctx.palette.paint(topic, 'cyan')}: {protocol.encode(payload).decode()}")
            seen += 1
            if ns.count and seen >= ns.count:
                return 0


# --------------------------------------------------------------------------- logs


def format_log_line(
    entry: Mapping[str, Any], palette: Palette, colors: dict[str, int]
) -> list[str]:
    """Render one output entry as ``HH:MM:SS.mmm watcher[pid] | line`` lines.

    stderr lines use ``!`` instead of ``|``. Each watcher keeps its own colour.
    """
    when = float(entry.get("time") or 0.0)
    stamp = time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when % 1 * 1000):03d}"
    watcher = str(entry.get("watcher", "?"))
    index = colors.setdefault(watcher, len(colors))
    prefix = f"{palette.paint(stamp, 'dim')} {palette.name(watcher, index)}[{entry.get('pid')}]"
    mark = palette.error("!") if entry.get("stream") == "stderr" else "|"
    text = str(entry.get("data", ""))
    lines = text.splitlines() or [""]
    return [f"{prefix} {mark} {line}" for line in lines]


def _emit(ctx: Context, entry: Mapping[str, Any], colors: dict[str, int]) -> None:
    """Print an entry (a live message may hold several lines): one output line, or one JSON
    object, per line."""
    if ctx.json:
        for line in protocol.split_output(entry):
            line.pop("seq", None)
            ctx.dump(line)
    else:
        ctx.out("\n".join(format_log_line(entry, ctx.palette, colors)))


def _discover_pubsub(ctx: Context) -> str:
    answer = ctx.get_client().call("globaloptions", {})
    options = answer.get("options") or {}
    endpoint = options.get("pubsub_endpoint")
    if not endpoint:
        raise DaemonUnreachable(ctx.endpoint, ctx.timeout, "circusd reported no pubsub_endpoint")
    return str(endpoint)


def _logs(ctx: Context, ns: argparse.Namespace) -> int:
    if ns.lines < 0:
        raise UsageError("--lines must be >= 0", "logs")
    wanted = {protocol.resource_name(n) for n in ns.names}
    consumer: CircusConsumer | None = None
    try:
        if ns.follow:
            # Subscribe before asking for the history, so no line falls between the two.
            endpoint = ns.pubsub_endpoint or _discover_pubsub(ctx)
            topics = [f"output.{n}." for n in sorted(wanted)] or ["output."]
            consumer = CircusConsumer(
                topics, endpoint, ssh_server=ctx.ssh, ssh_keyfile=ctx.ssh_keyfile, **ctx.curve()
            )
        props: dict[str, Any] = {"lines": ns.lines}
        if ns.names:
            props["name"] = ns.names[0] if len(ns.names) == 1 else list(ns.names)
        answer = ctx.get_client().call("logs", props)
        if answer.get("status") == "error":
            if ctx.json:
                ctx.dump(answer)
                return 0
            reason = answer.get("reason", "")
            if answer.get("errno") == protocol.Errno.UNKNOWN_COMMAND:
                reason = "this circusd has no 'logs' command (Circus 0.19 does not keep output)"
            ctx.err(ctx.palette.error(f"error: {reason}"))
            return 3
        colors: dict[str, int] = {}
        last_time = 0.0
        for entry in answer.get("logs") or []:
            _emit(ctx, entry, colors)
            last_time = max(last_time, float(entry.get("time") or 0.0))
        if consumer is None:
            return 0
        seen = 0
        gaps = protocol.OutputGaps()
        while True:
            message = consumer.recv()
            if message is None:  # pragma: no cover - recv() without timeout always returns
                continue
            topic, payload = message
            name = protocol.resource_name(str(payload.get("watcher", "")))
            if wanted and name not in wanted:
                continue  # a prefix match on a longer watcher name (web vs web.v2)
            missed = gaps.feed(topic, payload)
            if missed:
                # never silent: circusd drops messages for a subscriber that falls behind
                ctx.err(
                    ctx.palette.error(
                        f"circusctl: {missed} line{'s' if missed != 1 else ''} of "
                        f"{name} {payload.get('stream', '')} missed (this follower fell "
                        "behind and circusd dropped them)"
                    )
                )
            if float(payload.get("time") or 0.0) <= last_time:
                continue  # already printed as history
            _emit(ctx, payload, colors)
            seen += 1
            if ns.count and seen >= ns.count:
                return 0
    finally:
        if consumer is not None:
            consumer.close()
