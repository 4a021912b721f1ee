"""circusctl's commands: their arguments, the request each sends, and how answers print.

One :class:`CliCommand` per daemon command. ``build`` turns parsed arguments into
``(command, properties)``; ``render`` turns an ok answer into plain text. Commands that are
not one request (``listen``, ``logs``) have a ``run`` handler instead (see _streams.py).
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import CtlError
from . import _format
from ._color import Palette
from ._convert import convert_set_value, parse_signal, signal_property

__all__ = ["CLI_COMMANDS", "CliCommand", "UsageError", "CommandParser"]

Build = Callable[[argparse.Namespace], "tuple[str, dict[str, Any]]"]
Render = Callable[[Mapping[str, Any], argparse.Namespace, Palette], str]


class UsageError(CtlError):
    """Bad command-line arguments. ``missing`` is True for a missing required argument."""

    def __init__(self, message: str, command: str = "", missing: bool = False) -> None:
        super().__init__(message)
        self.command = command
        self.missing = missing


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of printing and exiting."""

    def error(self, message: str) -> Any:
        missing = "required" in message
        raise UsageError(message, self.prog.rsplit(" ", 1)[-1], missing)


@dataclass(frozen=True)
class CliCommand:
    """One circusctl command.

    ``summary``: one line for ``--help``; ``usage``: the argument synopsis; ``description``:
    the longer text of ``circusctl help COMMAND``.
    """

    name: str
    summary: str
    usage: str = ""
    description: str = ""
    configure: Callable[[argparse.ArgumentParser], None] | None = None
    build: Build | None = None
    render: Render | None = None
    run: Callable[..., int] | None = None
    raw_args: bool = False

    def parser(self) -> CommandParser:
        """Return a fresh parser for this command's arguments."""
        parser = CommandParser(
            prog=f"circusctl {self.name}",
            usage=f"circusctl {self.name} {self.usage}".rstrip(),
            description=self.description or self.summary,
            add_help=True,
        )
        if self.configure is not None:
            self.configure(parser)
        return parser

    def parse(self, args: list[str]) -> argparse.Namespace:
        """Parse this command's arguments (raises UsageError)."""
        return self.parser().parse_args(args)


# --------------------------------------------------------------------------- helpers


def _ok(answer: Mapping[str, Any], ns: argparse.Namespace, palette: Palette) -> str:
    return palette.ok("ok")


def _name_opt(p: argparse.ArgumentParser, help: str = "watcher name") -> None:
    p.add_argument("name", nargs="?", metavar="NAME", help=help)


def _name_req(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", metavar="NAME", help="watcher name")


def _waiting(p: argparse.ArgumentParser) -> None:
    p.add_argument("--waiting", action="store_true", help="answer only once the work is done")


def _with_name(ns: argparse.Namespace, props: dict[str, Any]) -> dict[str, Any]:
    if getattr(ns, "name", None):
        return {"name": ns.name, **props}
    return props


def _int_arg(value: str, what: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{what} must be an integer, not {value!r}") from None


# --------------------------------------------------------------------------- start/stop family


def _conf_lifecycle(p: argparse.ArgumentParser) -> None:
    _name_opt(p, "watcher name or pattern (all watchers when absent)")
    _waiting(p)
    p.add_argument(
        "--match",
        choices=("simple", "glob", "regex"),
        default="glob",
        help="how NAME is matched (default: glob)",
    )


def _build_lifecycle(command: str) -> Build:
    def build(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
        return command, _with_name(ns, {"waiting": ns.waiting, "match": ns.match})

    return build


def _conf_reload(p: argparse.ArgumentParser) -> None:
    _name_opt(p)
    p.add_argument("--terminate", action="store_true", help="restart instead of reloading")
    p.add_argument("--sequential", action="store_true", help="one process at a time")
    _waiting(p)


def _build_reload(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    props = {"graceful": not ns.terminate, "waiting": ns.waiting, "sequential": ns.sequential}
    return "reload", _with_name(ns, props)


def _conf_waiting_only(p: argparse.ArgumentParser) -> None:
    _waiting(p)


def _build_waiting_only(command: str) -> Build:
    return lambda ns: (command, {"waiting": ns.waiting})


# --------------------------------------------------------------------------- counts


def _conf_incr(p: argparse.ArgumentParser) -> None:
    _name_req(p)
    p.add_argument("nb", nargs="?", metavar="N", help="how many (default 1)")
    _waiting(p)


def _build_incr(command: str) -> Build:
    def build(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
        props: dict[str, Any] = {"name": ns.name}
        if ns.nb is not None:
            props["nb"] = _int_arg(ns.nb, "N")
        props["waiting"] = ns.waiting
        return command, props

    return build


def _render_incr(answer: Mapping[str, Any], ns: argparse.Namespace, palette: Palette) -> str:
    if answer.get("singleton"):
        return f"{ns.name} is a singleton: it keeps {answer.get('numprocesses')} process"
    if "numprocesses" in answer:
        return str(answer["numprocesses"])
    return palette.ok("ok")


def _render_field(field: str) -> Render:
    return lambda answer, ns, palette: str(answer.get(field))


# --------------------------------------------------------------------------- options


def _conf_get(p: argparse.ArgumentParser) -> None:
    _name_req(p)
    p.add_argument("keys", nargs="+", metavar="KEY", help="option names")


def _conf_globaloptions(p: argparse.ArgumentParser) -> None:
    p.add_argument("option", nargs="?", metavar="KEY")


def _conf_set(p: argparse.ArgumentParser) -> None:
    _name_req(p)
    p.add_argument("pairs", nargs="*", metavar="KEY VALUE")
    _waiting(p)


def _parse_set(args: list[str]) -> argparse.Namespace:
    """``set`` values may start with '-' (``set w args -v``): only --waiting is an option."""
    waiting = False
    positional: list[str] = []
    rest = list(args)
    while rest:
        item = rest.pop(0)
        if item == "--":
            positional.extend(rest)
            break
        if item == "--waiting":
            waiting = True
        elif item in ("-h", "--help"):
            CLI_COMMANDS["set"].parser().parse_args(["--help"])
        else:
            positional.append(item)
    if not positional:
        raise UsageError("the following arguments are required: NAME KEY VALUE", "set", True)
    name, pairs = positional[0], positional[1:]
    if not pairs:
        raise UsageError("missing KEY VALUE after the watcher name", "set", True)
    if len(pairs) % 2:
        raise UsageError(f"missing the VALUE for {pairs[-1]!r}", "set", True)
    return argparse.Namespace(name=name, pairs=pairs, waiting=waiting)


def _build_set(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    options = {}
    for key, value in zip(ns.pairs[::2], ns.pairs[1::2], strict=True):
        options[key] = convert_set_value(key, value)
    props: dict[str, Any] = {"name": ns.name, "options": options}
    if ns.waiting:
        props["waiting"] = True
    return "set", props


def _render_options(answer: Mapping[str, Any], ns: argparse.Namespace, palette: Palette) -> str:
    return _format.format_options(answer.get("options") or {})


def _render_kv(answer: Mapping[str, Any], ns: argparse.Namespace, palette: Palette) -> str:
    return _format.format_key_values(answer.get("options") or {})


# --------------------------------------------------------------------------- add / rm


def _conf_add(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start", action="store_true", help="start the watcher right away")
    _name_req(p)
    p.add_argument("cmd", nargs=argparse.REMAINDER, metavar="CMD", help="command line")


def _build_add(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if not ns.cmd:
        raise UsageError("the following arguments are required: CMD", "add", True)
    # One argument is a whole command line ("sleep 10"); several are argv items, quoted so
    # the daemon's shlex split gives them back intact (0.19 joined them with bare spaces).
    cmd = ns.cmd[0] if len(ns.cmd) == 1 else shlex.join(ns.cmd)
    return "add", {"name": ns.name, "cmd": cmd, "start": ns.start}


def _conf_rm(p: argparse.ArgumentParser) -> None:
    _name_req(p)
    _waiting(p)
    p.add_argument("--nostop", action="store_true", help="leave its processes running")


def _build_rm(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    # 0.19's CLI dropped --waiting and --nostop; we send them.
    return "rm", {"name": ns.name, "waiting": ns.waiting, "nostop": ns.nostop}


# --------------------------------------------------------------------------- signals


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
        props["pid"] = _int_arg(args[1], "PID")
    if len(args) == 4:
        props["childpid"] = _int_arg(args[2], "CHILDPID")
    return "signal", props


def _conf_kill(p: argparse.ArgumentParser) -> None:
    _name_req(p)
    p.add_argument("pid", nargs="?", metavar="PID", help="one process (all when absent)")
    p.add_argument("--signum", metavar="SIG", help="signal to send first (default stop_signal)")
    p.add_argument(
        "--graceful_timeout",
        "--graceful-timeout",
        metavar="SECONDS",
        help="wait this long before SIGKILL",
    )
    _waiting(p)


def _build_kill(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    # 0.19 sent pid and graceful_timeout as strings, which broke the SIGKILL escalation.
    props: dict[str, Any] = {"name": ns.name}
    if ns.pid is not None:
        props["pid"] = _int_arg(ns.pid, "PID")
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


# --------------------------------------------------------------------------- stats


def _conf_stats(p: argparse.ArgumentParser) -> None:
    p.add_argument("--extended", action="store_true", help="add the extended_stats hook's data")
    p.add_argument("name", nargs="?", metavar="NAME", help="watcher name")
    p.add_argument("process", nargs="?", metavar="PID", help="one process")


def _build_stats(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    props: dict[str, Any] = {"extended": ns.extended}
    if ns.name:
        props["name"] = ns.name
        if ns.process is not None:
            props["process"] = _int_arg(ns.process, "PID")
    return "stats", props


# --------------------------------------------------------------------------- table


def _simple(command: str, with_name: bool = False, **extra: Any) -> CliCommand:
    """A command sending ``{}`` (or ``{"name"}`` when given)."""
    return CliCommand(
        command,
        configure=_name_opt if with_name else None,
        build=lambda ns: (command, _with_name(ns, {})),
        usage="[NAME]" if with_name else "",
        **extra,
    )


def _named(command: str, **extra: Any) -> CliCommand:
    return CliCommand(
        command,
        usage="NAME",
        configure=_name_req,
        build=lambda ns: (command, {"name": ns.name}),
        **extra,
    )


_LIFECYCLE_USAGE = "[NAME] [--waiting] [--match simple|glob|regex]"

_TABLE: tuple[CliCommand, ...] = (
    CliCommand(
        "add",
        "add a watcher (stopped unless --start)",
        "[--start] NAME CMD...",
        "Create a watcher at run time (it is not written to the config file).",
        _conf_add,
        _build_add,
        _ok,
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
    _simple(
        "dstats", summary="stats of circusd itself", render=lambda a, n, p: _format.format_dstats(a)
    ),
    CliCommand(
        "get",
        "show some options of a watcher",
        "NAME KEY...",
        "Print the value of each option KEY of watcher NAME.",
        _conf_get,
        lambda ns: ("get", {"name": ns.name, "keys": ns.keys}),
        _render_kv,
    ),
    CliCommand(
        "globaloptions",
        "show the daemon's options (endpoints, check_delay)",
        "[KEY]",
        "Print the daemon's global options, or just KEY.",
        _conf_globaloptions,
        lambda ns: ("globaloptions", {"option": ns.option} if ns.option else {}),
        _render_kv,
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
    _simple(
        "ipython",
        summary="open an IPython kernel inside circusd (if the daemon supports it)",
        render=lambda a, n, p: str(a.get("msg", "ok")),
    ),
    CliCommand(
        "kill",
        "stop processes, then SIGKILL them after a grace period",
        "NAME [PID] [--signum SIG] [--graceful_timeout SECONDS] [--waiting]",
        "Send SIG (default: the watcher's stop_signal) to all processes of NAME or to PID, "
        "then SIGKILL whatever is left after the grace period. The watcher respawns them.",
        _conf_kill,
        _build_kill,
        _ok,
    ),
    _simple(
        "list",
        with_name=True,
        summary="list the watchers, or the pids of one watcher",
        render=lambda a, n, p: _format.format_list(a),
    ),
    CliCommand("listen", "print events from the pub/sub channel", "[TOPIC...]"),
    _simple(
        "listsockets",
        summary="list the sockets circusd holds",
        render=lambda a, n, p: _format.format_sockets(a),
    ),
    CliCommand("logs", "show (and follow) the output of watchers", "[-f] [-n LINES] [NAME...]"),
    _simple(
        "numprocesses",
        with_name=True,
        summary="number of processes (of one watcher, or in total)",
        render=_render_field("numprocesses"),
    ),
    _simple("numwatchers", summary="number of watchers", render=_render_field("numwatchers")),
    _named("options", summary="show every option of a watcher", render=_render_options),
    CliCommand(
        "quit",
        "stop every watcher and exit circusd",
        "[--waiting]",
        "",
        _conf_waiting_only,
        _build_waiting_only("quit"),
        _ok,
    ),
    CliCommand(
        "reload",
        "reload a watcher (or all): new processes first, then the old ones stop",
        "[NAME] [--terminate] [--sequential] [--waiting]",
        "Graceful reload. --sequential replaces one process at a time; --terminate restarts "
        "instead; watchers with send_hup get SIGHUP.",
        _conf_reload,
        _build_reload,
        _ok,
    ),
    CliCommand(
        "reloadconfig",
        "re-read the configuration file and apply the changes",
        "[--waiting]",
        "",
        _conf_waiting_only,
        _build_waiting_only("reloadconfig"),
        _ok,
    ),
    CliCommand(
        "restart",
        "restart a watcher (or, without NAME, the whole daemon)",
        _LIFECYCLE_USAGE,
        "",
        _conf_lifecycle,
        _build_lifecycle("restart"),
        _ok,
    ),
    CliCommand(
        "rm",
        "remove a watcher",
        "NAME [--waiting] [--nostop]",
        "Remove watcher NAME, stopping its processes unless --nostop.",
        _conf_rm,
        _build_rm,
        _ok,
    ),
    CliCommand(
        "set",
        "change options of a watcher",
        "NAME KEY VALUE [KEY VALUE...] [--waiting]",
        "Change watcher options live, e.g. numprocesses 4, env A=1,B=2, "
        "hooks before_start:mod.func, stdout_stream.max_bytes 1000.",
        _conf_set,
        _build_set,
        _ok,
        raw_args=True,
    ),
    CliCommand(
        "signal",
        "send a signal to the processes of a watcher",
        "NAME [PID [CHILDPID]] SIGNAL [--children] [--recursive]",
        "SIGNAL is a name (HUP, SIGHUP) or a number.",
        _conf_signal,
        _build_signal,
        _ok,
    ),
    CliCommand(
        "start",
        "start a watcher (or every autostart watcher)",
        _LIFECYCLE_USAGE,
        "",
        _conf_lifecycle,
        _build_lifecycle("start"),
        _ok,
    ),
    CliCommand(
        "stats",
        "cpu, memory and age of processes",
        "[--extended] [NAME [PID]]",
        "Per process: pid, command, user, nice, RSS, VMS, cpu %, mem %, cpu time.",
        _conf_stats,
        _build_stats,
        lambda a, n, p: _format.format_stats(a),
    ),
    _simple(
        "status",
        with_name=True,
        summary="state of the watchers (active, stopped, ...)",
        render=lambda a, n, p: _format.format_status(a, p),
    ),
    CliCommand(
        "stop",
        "stop a watcher (or all)",
        _LIFECYCLE_USAGE,
        "",
        _conf_lifecycle,
        _build_lifecycle("stop"),
        _ok,
    ),
)

CLI_COMMANDS: dict[str, CliCommand] = {c.name: c for c in _TABLE}


def parse_command_args(command: CliCommand, args: list[str]) -> argparse.Namespace:
    """Parse the arguments of ``command`` (raises UsageError)."""
    if command.name == "set":
        return _parse_set(args)
    return command.parse(args)
