"""circusctl commands that only read: list, status, stats, counts, sockets, the daemon's own
stats, and the two streams (listen, logs, run by _streams.py)."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from . import _format
from ._color import Palette
from ._spec import CliCommand, Render, int_arg, simple

__all__ = ["COMMANDS"]


def _render_field(field: str) -> Render:
    return lambda answer, ns, palette: str(answer.get(field))


def _conf_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extended", action="store_true", help="add the extended_stats hook's data")
    p.add_argument("name", nargs="?", metavar="NAME", help="watcher name")
    p.add_argument("process", nargs="?", metavar="PID", help="one process")


def _build_stats(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    props: dict[str, Any] = {"extended": ns.extended}
    if ns.name:
        props["name"] = ns.name
        if ns.process is not None:
            props["process"] = int_arg(ns.process, "PID")
    return "stats", props


def _render_stats(answer: Mapping[str, Any], ns: argparse.Namespace, palette: Palette) -> str:
    return _format.format_stats(answer)


COMMANDS: tuple[CliCommand, ...] = (
    simple(
        "dstats", summary="stats of circusd itself", render=lambda a, n, p: _format.format_dstats(a)
    ),
    simple(
        "ipython",
        summary="open an IPython kernel inside circusd (if the daemon supports it)",
        render=lambda a, n, p: str(a.get("msg", "ok")),
    ),
    simple(
        "list",
        with_name_arg=True,
        summary="list the watchers, or the pids of one watcher",
        render=lambda a, n, p: _format.format_list(a),
    ),
    CliCommand("listen", "print events from the pub/sub channel", "[TOPIC...]"),
    simple(
        "listsockets",
        summary="list the sockets circusd holds",
        render=lambda a, n, p: _format.format_sockets(a),
    ),
    CliCommand("logs", "show (and follow) the output of watchers", "[-f] [-n LINES] [NAME...]"),
    simple(
        "numprocesses",
        with_name_arg=True,
        summary="number of processes (of one watcher, or in total)",
        render=_render_field("numprocesses"),
    ),
    simple("numwatchers", summary="number of watchers", render=_render_field("numwatchers")),
    CliCommand(
        "stats",
        "cpu, memory and age of processes",
        "[--extended] [NAME [PID]]",
        "Per process: pid, command, user, nice, RSS, VMS, cpu %, mem %, cpu time.",
        _conf_stats,
        _build_stats,
        _render_stats,
    ),
    simple(
        "status",
        with_name_arg=True,
        summary="state of the watchers (active, stopped, ...)",
        render=lambda a, n, p: _format.format_status(a, p),
    ),
)
