"""circusctl commands that signal processes: signal, kill."""

from __future__ import annotations

import argparse
from typing import Any

from ._convert import parse_signal, signal_property
from ._spec import CliCommand, UsageError, int_arg, name_req, ok, waiting_flag

__all__ = ["COMMANDS"]


def _conf_signal(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="+", metavar="NAME [PID [CHILDPID]] SIGNAL")
    p.add_argument("--children", action="store_true", help="signal the children only")
    p.add_argument("--recursive", action="store_true", help="signal the whole process tree")


def _build_signal(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    args = ns.args
    if len(args) < 2:
        raise UsageError("expected NAME [PID [CHILDPID]] SIGNAL", "signal", True)
    if len(args) > 4:
        raise UsageError(f"too many arguments: {' '.join(args)}", "signal")
    props: dict[str, Any] = {"name": args[0], "children": ns.children, "recursive": ns.recursive}
    props["signum"] = signal_property(args[-1])
    if len(args) >= 3:
        props["pid"] = int_arg(args[1], "PID")
    if len(args) == 4:
        props["childpid"] = int_arg(args[2], "CHILDPID")
    return "signal", props


def _conf_kill(p: argparse.ArgumentParser) -> None:
    name_req(p)
    p.add_argument("pid", nargs="?", metavar="PID", help="one process (all when absent)")
    p.add_argument("--signum", metavar="SIG", help="signal to send first (default stop_signal)")
    p.add_argument(
        "--graceful_timeout",
        "--graceful-timeout",
        metavar="SECONDS",
        help="wait this long before SIGKILL",
    )
    waiting_flag(p)


def _build_kill(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    # 0.19 sent pid and graceful_timeout as strings, which broke the SIGKILL escalation.
    props: dict[str, Any] = {"name": ns.name}
    if ns.pid is not None:
        props["pid"] = int_arg(ns.pid, "PID")
    if ns.signum is not None:
        props["signum"] = parse_signal(ns.signum)
    if ns.graceful_timeout is not None:
        try:
            props["graceful_timeout"] = float(ns.graceful_timeout)
        except ValueError:
            raise UsageError(
                f"--graceful_timeout must be a number, not {ns.graceful_timeout!r}", "kill"
            ) from None
    props["waiting"] = ns.waiting
    return "kill", props


COMMANDS: tuple[CliCommand, ...] = (
    CliCommand(
        "kill",
        "stop processes, then SIGKILL them after a grace period",
        "NAME [PID] [--signum SIG] [--graceful_timeout SECONDS] [--waiting]",
        "Send SIG (default: the watcher's stop_signal) to all processes of NAME or to PID, "
        "then SIGKILL whatever is left after the grace period. The watcher respawns them.",
        _conf_kill,
        _build_kill,
        ok,
    ),
    CliCommand(
        "signal",
        "send a signal to the processes of a watcher",
        "NAME [PID [CHILDPID]] SIGNAL [--children] [--recursive]",
        "SIGNAL is a name (HUP, SIGHUP) or a number.",
        _conf_signal,
        _build_signal,
        ok,
    ),
)
