"""circusctl commands that change what runs: start, stop, restart, reload, reloadconfig, quit,
add, rm, and the process counts (incr, decr)."""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping
from typing import Any

from ._color import Palette
from ._spec import (
    Build,
    CliCommand,
    UsageError,
    int_arg,
    name_opt,
    name_req,
    ok,
    waiting_flag,
    with_name,
)

__all__ = ["COMMANDS"]


def _conf_lifecycle(p: argparse.ArgumentParser) -> None:
    name_opt(p, "watcher name or pattern (all watchers when absent)")
    waiting_flag(p)
    p.add_argument(
        "--match",
        choices=("simple", "glob", "regex"),
        default="glob",
        help="how NAME is matched (default: glob)",
    )


def _build_lifecycle(command: str) -> Build:
    def build(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
        return command, with_name(ns, {"waiting": ns.waiting, "match": ns.match})

    return build


def _conf_reload(p: argparse.ArgumentParser) -> None:
    name_opt(p)
    p.add_argument("--terminate", action="store_true", help="restart instead of reloading")
    p.add_argument("--sequential", action="store_true", help="one process at a time")
    waiting_flag(p)


def _build_reload(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    props = {"graceful": not ns.terminate, "waiting": ns.waiting, "sequential": ns.sequential}
    return "reload", with_name(ns, props)


def _build_waiting_only(command: str) -> Build:
    return lambda ns: (command, {"waiting": ns.waiting})


def _render_reexec(answer: Mapping[str, Any], ns: argparse.Namespace, palette: Palette) -> str:
    return palette.ok(
        f"ok: circusd (pid {answer.get('pid')}) re-executes with the installed code, keeping "
        f"{answer.get('processes')} processes of {answer.get('watchers')} watchers "
        f"(generation {answer.get('generation')})"
    )


def _conf_incr(p: argparse.ArgumentParser) -> None:
    name_req(p)
    p.add_argument("nb", nargs="?", metavar="N", help="how many (default 1)")
    waiting_flag(p)


def _build_incr(command: str) -> Build:
    def build(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
        props: dict[str, Any] = {"name": ns.name}
        if ns.nb is not None:
            props["nb"] = int_arg(ns.nb, "N")
        props["waiting"] = ns.waiting
        return command, props

    return build


def _render_incr(answer: Mapping[str, Any], ns: argparse.Namespace, palette: Palette) -> str:
    if answer.get("singleton"):
        return f"{ns.name} is a singleton: it keeps {answer.get('numprocesses')} process"
    if "numprocesses" in answer:
        return str(answer["numprocesses"])
    return palette.ok("ok")


def _conf_add(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", action="store_true", help="start the watcher right away")
    name_req(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD", help="command line")


def _build_add(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if not ns.cmd:
        raise UsageError("the following arguments are required: CMD", "add", True)
    # One argument is a whole command line ("sleep 10"); several are argv items, quoted so
    # the daemon's shlex split gives them back intact (0.19 joined them with bare spaces).
    cmd = ns.cmd[0] if len(ns.cmd) == 1 else shlex.join(ns.cmd)
    return "add", {"name": ns.name, "cmd": cmd, "start": ns.start}


def _conf_rm(p: argparse.ArgumentParser) -> None:
    name_req(p)
    waiting_flag(p)
    p.add_argument("--nostop", action="store_true", help="leave its processes running")


def _build_rm(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    # 0.19's CLI dropped --waiting and --nostop; we send them.
    return "rm", {"name": ns.name, "waiting": ns.waiting, "nostop": ns.nostop}


_LIFECYCLE_USAGE = "[NAME] [--waiting] [--match simple|glob|regex]"

COMMANDS: tuple[CliCommand, ...] = (
    CliCommand(
        "add",
        "add a watcher (stopped unless --start)",
        "[--start] NAME CMD...",
        "Create a watcher at run time (it is not written to the config file).",
        _conf_add,
        _build_add,
        ok,
    ),
    CliCommand(
        "decr",
        "remove processes from a watcher",
        "NAME [N] [--waiting]",
        "Decrease the number of processes of NAME by N (default 1). With --waiting the "
        "new count is printed.",
        _conf_incr,
        _build_incr("decr"),
        _render_incr,
    ),
    CliCommand(
        "incr",
        "add processes to a watcher",
        "NAME [N] [--waiting]",
        "Increase the number of processes of NAME by N (default 1). With --waiting the "
        "new count is printed.",
        _conf_incr,
        _build_incr("incr"),
        _render_incr,
    ),
    CliCommand(
        "daemon-reexec",
        "re-exec circusd with the installed code; its processes keep running",
        "",
        "circusd checks in a separate process that the installed code loads its state, "
        "answers, then execs itself in the same pid: processes, their output, sockets and "
        "watcher state carry over; the control channel pauses briefly. An error answer means "
        "nothing changed.",
        None,
        lambda ns: ("daemon-reexec", {}),
        _render_reexec,
    ),
    CliCommand(
        "quit",
        "stop every watcher and exit circusd",
        "[--waiting]",
        "",
        waiting_flag,
        _build_waiting_only("quit"),
        ok,
    ),
    CliCommand(
        "reload",
        "reload a watcher (or all): new processes first, then the old ones stop",
        "[NAME] [--terminate] [--sequential] [--waiting]",
        "Graceful reload. --sequential replaces one process at a time; --terminate restarts "
        "instead; watchers with send_hup get SIGHUP.",
        _conf_reload,
        _build_reload,
        ok,
    ),
    CliCommand(
        "reloadconfig",
        "re-read the configuration file and apply the changes",
        "[--waiting]",
        "",
        waiting_flag,
        _build_waiting_only("reloadconfig"),
        ok,
    ),
    CliCommand(
        "restart",
        "restart a watcher (or, without NAME, the whole daemon)",
        _LIFECYCLE_USAGE,
        "",
        _conf_lifecycle,
        _build_lifecycle("restart"),
        ok,
    ),
    CliCommand(
        "rm",
        "remove a watcher",
        "NAME [--waiting] [--nostop]",
        "Remove watcher NAME, stopping its processes unless --nostop.",
        _conf_rm,
        _build_rm,
        ok,
    ),
    CliCommand(
        "start",
        "start a watcher (or every autostart watcher)",
        _LIFECYCLE_USAGE,
        "",
        _conf_lifecycle,
        _build_lifecycle("start"),
        ok,
    ),
    CliCommand(
        "stop",
        "stop a watcher (or all)",
        _LIFECYCLE_USAGE,
        "",
        _conf_lifecycle,
        _build_lifecycle("stop"),
        ok,
    ),
)
