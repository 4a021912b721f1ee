"""circusctl's entry point: global options, dispatch, output and exit codes.

Exit codes follow 0.19: 0 success, 3 error answer, 1 timeout / unreachable / bad argument,
2 usage error (unknown command or option). ``--json`` prints the raw answer and exits 0
even for an error answer, as 0.19 does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from .. import __version__, protocol
from .._client import CircusClient
from ..errors import CallError, CallTimeout, CtlError, DaemonUnreachable
from ._color import Palette, use_color
from ._commands import CLI_COMMANDS, CliCommand, CommandParser, UsageError, parse_command_args

__all__ = ["Context", "main", "run_command"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_ERROR_ANSWER = 3
#: How long a ``--waiting`` command waits for its answer when no --timeout is given: a
#: rolling reload takes one readiness wait per process, far more than the default 5 s.
WAITING_TIMEOUT = 1800.0

_GLOBAL_FLAGS = (
    "--json",
    "--prettify",
    "--endpoint",
    "--timeout",
    "--ssh",
    "--ssh_keyfile",
    "--curve-key",
    "--curve-server-key",
)


@dataclass
class Context:
    """What every command needs: where the daemon is, how to print, where to write."""

    endpoint: str
    timeout: float
    json: bool = False
    prettify: bool = False
    ssh: str | None = None
    ssh_keyfile: str | None = None
    endpoint_given: bool = False
    timeout_given: bool = False  # --timeout was on the command line (listen waits otherwise)
    curve_key: str | None = None
    curve_server_key: str | None = None
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    palette: Palette = field(default_factory=lambda: Palette(False))
    client: CircusClient | None = None

    def get_client(self) -> CircusClient:
        """Return the (lazily created, reused) control client."""
        if self.client is None:
            self.client = CircusClient(
                self.endpoint,
                self.timeout,
                ssh_server=self.ssh,
                ssh_keyfile=self.ssh_keyfile,
                check=False,
                **self.curve(),
            )
        return self.client

    def curve(self) -> dict[str, Any]:
        """The ``curve_key``/``curve_server_key`` arguments of every client and consumer."""
        return {"curve_key": self.curve_key, "curve_server_key": self.curve_server_key}

    def close(self) -> None:
        """Close the client if one was created."""
        if self.client is not None:
            self.client.close()
            self.client = None

    def out(self, text: str) -> None:
        """Write a line (or several) to stdout; an empty text prints an empty line, as 0.19."""
        print(text, file=self.stdout, flush=True)

    def err(self, text: str) -> None:
        """Write a line (or several) to stderr."""
        print(text, file=self.stderr, flush=True)

    def dump(self, obj: Any) -> None:
        """Print a JSON object: one line, or indented with sorted keys under --prettify."""
        if self.prettify:
            self.out(json.dumps(obj, indent=2, sort_keys=True))
        else:
            self.out(json.dumps(obj))


def _global_parser() -> argparse.ArgumentParser:
    parser = CommandParser(
        prog="circusctl",
        usage="circusctl [options] command [args]",
        description="Control a running circusd.",
        add_help=False,
    )
    parser.add_argument("--endpoint", help="control endpoint (env CIRCUSCTL_ENDPOINT)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,  # protocol.DEFAULT_TIMEOUT, told apart from an explicit --timeout
        help="seconds to wait for an answer (default 5)",
    )
    parser.add_argument("--json", action="store_true", help="print answers as JSON")
    parser.add_argument("--prettify", action="store_true", help="indented, sorted JSON")
    parser.add_argument("--ssh", metavar="USER@HOST:PORT", help="tunnel through SSH")
    parser.add_argument("--ssh_keyfile", "--ssh-keyfile", metavar="FILE", help="SSH key")
    parser.add_argument("--curve-key", metavar="FILE", help="our CURVE NAME.key_secret")
    parser.add_argument("--curve-server-key", metavar="FILE", help="circusd's public CURVE key")
    parser.add_argument("--help", "-h", action="store_true", help="show help and exit")
    parser.add_argument("--version", action="store_true", help="show the version and exit")
    parser.add_argument("command", nargs="?")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def general_help() -> str:
    """The text of ``circusctl --help``."""
    lines = [
        "usage: circusctl [options] command [args]",
        "",
        "Control a running circusd. Without a command, start an interactive shell.",
        "",
        "Commands:",
    ]
    for name in sorted(CLI_COMMANDS):
        lines.append(f"  {name:<16}{CLI_COMMANDS[name].summary}")
    lines += [
        "",
        "Options (before the command):",
        "  --endpoint ENDPOINT  control endpoint (default: $CIRCUSCTL_ENDPOINT or "
        f"{protocol.DEFAULT_ENDPOINT})",
        "  --timeout SECONDS    how long to wait for an answer (default 5)",
        "  --json               print the answers as JSON (one object per line)",
        "  --prettify           with --json: indented, key-sorted",
        "  --ssh USER@HOST:PORT tunnel the connection over SSH (needs paramiko or pexpect)",
        "  --ssh_keyfile FILE   key for --ssh",
        "  --curve-key FILE     this client's CURVE secret key file, NAME.key_secret",
        "                       (default: $CIRCUSCTL_CURVE_KEY)",
        "  --curve-server-key FILE  circusd's public CURVE key file (with --curve-key;",
        "                       default: $CIRCUSCTL_CURVE_SERVER_KEY)",
        "  --help [COMMAND]     this help, or a command's",
        "  --version            print the version",
        "",
        "Run 'circusctl help COMMAND' for a command's arguments.",
        "'circusctl keygen DIR [NAME]' makes a CURVE key pair (DIR/NAME.key, NAME.key_secret).",
        "'circusctl convert supervisord.conf' prints the equivalent Circus INI file.",
    ]
    return "\n".join(lines)


def command_help(name: str) -> str:
    """The help of one command (its usage, description and options)."""
    if name in ("listen", "logs"):
        from . import _streams

        return _streams.parser(name).format_help().rstrip()
    return CLI_COMMANDS[name].parser().format_help().rstrip()


def _distance(a: str, b: str) -> int:
    """Edit distance counting a swap of two neighbours as one edit (typos like 'stauts')."""
    rows = [list(range(len(b) + 1))]
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], rows[-2][j - 2] + 1)
        rows.append(row)
    return rows[-1][-1]


def closest_command(name: str) -> str | None:
    """Return the command closest to a mistyped ``name``, or None if nothing is close."""
    lowered = name.lower()
    scored = sorted((_distance(lowered, c), abs(len(c) - len(lowered)), c) for c in CLI_COMMANDS)
    best = scored[0]
    if best[0] <= max(1, len(lowered) // 3):
        return best[2]
    prefixed = [c for c in sorted(CLI_COMMANDS) if c.startswith(lowered)]
    return prefixed[0] if len(prefixed) == 1 else None


def suggest(name: str) -> str:
    """Return ' Did you mean X?' for the closest command name, or ''."""
    close = closest_command(name)
    return f" Did you mean '{close}'?" if close else ""


def _answer_failed(ctx: Context, answer: Mapping[str, Any]) -> int:
    reason = answer.get("reason", "unknown error")
    if answer.get("errno") == protocol.Errno.UNKNOWN_COMMAND:
        reason = f"{reason} (this circusd does not support that command)"
    ctx.err(ctx.palette.error(f"error: {reason}"))
    return EXIT_ERROR_ANSWER


def report_transport_error(ctx: Context, exc: CtlError) -> int:
    """Print an unreachable / timed-out error with hints; return the exit code (1)."""
    if ctx.json:
        ctx.dump({"status": "error", "reason": str(exc), "errno": None, "endpoint": ctx.endpoint})
        return EXIT_FAILURE
    ctx.err(ctx.palette.error(f"error: {exc}"))
    if isinstance(exc, DaemonUnreachable):
        ctx.err(
            "Is circusd running? Give its control endpoint with --endpoint or "
            "CIRCUSCTL_ENDPOINT (the [circus] endpoint option of its config)."
        )
    elif isinstance(exc, CallTimeout):
        ctx.err("circusd is connected but busy; for long operations (--waiting) raise --timeout.")
    return EXIT_FAILURE


def run_command(ctx: Context, name: str, args: list[str]) -> int:
    """Run one circusctl command with its arguments; print its output; return the exit code."""
    if name == "keygen":  # local: makes files, talks to no daemon
        from ..keys import main as keygen

        return keygen(args)
    if name == "convert":  # local: reads a supervisord.conf, talks to no daemon
        from ._supconvert import convert

        return convert(args)
    command: CliCommand | None = CLI_COMMANDS.get(name.lower())
    if command is None:
        ctx.err(f"circusctl: unknown command '{name}'.{suggest(name)}")
        ctx.err("Run 'circusctl --help' for the list of commands.")
        return EXIT_USAGE
    if command.name in ("listen", "logs"):
        from . import _streams

        return _streams.run(ctx, command.name, args)
    try:
        ns = parse_command_args(command, args)
        assert command.build is not None and command.render is not None
        request_name, props = command.build(ns)
    except UsageError as exc:
        return report_usage_error(ctx, command.name, exc)
    except CtlError as exc:
        ctx.err(ctx.palette.error(f"error: {exc}"))
        return EXIT_FAILURE
    try:
        answer = _call(ctx, request_name, props)
    except (DaemonUnreachable, CallTimeout) as exc:
        return report_transport_error(ctx, exc)
    except CallError as exc:  # pragma: no cover - the client runs with check=False
        answer = exc.answer
    if ctx.json:
        ctx.dump(answer)
        return EXIT_OK
    if answer.get("status") == "error":
        return _answer_failed(ctx, answer)
    ctx.out(command.render(answer, ns, ctx.palette))
    return EXIT_OK


def _call(ctx: Context, name: str, props: dict[str, Any]) -> dict[str, Any]:
    """One request; a ``waiting`` one without --timeout may take up to WAITING_TIMEOUT once
    a quick read-only call has shown that the daemon is there and answers."""
    client = ctx.get_client()
    if not props.get("waiting") or ctx.timeout_given:
        return client.call(name, props)
    client.call("numwatchers", {})
    client.timeout = max(ctx.timeout, WAITING_TIMEOUT)
    try:
        return client.call(name, props)
    finally:
        client.timeout = ctx.timeout


def report_usage_error(ctx: Context, name: str, exc: UsageError) -> int:
    """Print a usage error with the command's synopsis; 1 for a missing argument, else 2."""
    message = str(exc)
    flag = next((f for f in _GLOBAL_FLAGS if f in message), None)
    if flag is not None and "unrecognized" in message:
        message += f" ({flag} is a global option: put it before the command, "
        message += f"e.g. circusctl {flag} {name} ...)"
    command = CLI_COMMANDS[name]
    ctx.err(f"circusctl {name}: {message}")
    ctx.err(f"usage: circusctl {name} {command.usage}".rstrip())
    ctx.err(f"Run 'circusctl help {name}' for details.")
    return EXIT_FAILURE if exc.missing else EXIT_USAGE


def _make_context(ns: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> Context:
    endpoint = ns.endpoint or os.environ.get("CIRCUSCTL_ENDPOINT") or protocol.DEFAULT_ENDPOINT
    ctx = Context(
        endpoint=endpoint,
        timeout=protocol.DEFAULT_TIMEOUT if ns.timeout is None else ns.timeout,
        timeout_given=ns.timeout is not None,
        json=ns.json or ns.prettify,
        prettify=ns.prettify,
        ssh=ns.ssh,
        ssh_keyfile=ns.ssh_keyfile,
        endpoint_given=ns.endpoint is not None,
        curve_key=ns.curve_key or os.environ.get("CIRCUSCTL_CURVE_KEY") or None,
        curve_server_key=(
            ns.curve_server_key or os.environ.get("CIRCUSCTL_CURVE_SERVER_KEY") or None
        ),
        stdout=stdout,
        stderr=stderr,
    )
    ctx.palette = Palette(use_color(stdout, ctx.json))
    return ctx


def bash_complete(words: Sequence[str], cword: int) -> list[str]:
    """Candidates for bash completion (0.19's ``AUTO_COMPLETE`` protocol): command names."""
    current = words[cword] if 0 <= cword < len(words) else ""
    takes_value = {
        "--endpoint",
        "--timeout",
        "--ssh",
        "--ssh_keyfile",
        "--ssh-keyfile",
        "--curve-key",
        "--curve-server-key",
    }
    before = list(words[1:cword])
    while before:
        word = before.pop(0)
        if word in takes_value and before:
            before.pop(0)
        elif not word.startswith("-"):
            return []  # a command is already there: 0.19 completes command names only
    return sorted(name for name in CLI_COMMANDS if name.startswith(current))


def main(argv: Sequence[str] | None = None) -> int:
    """Run circusctl with ``argv`` (default: sys.argv[1:]) and return the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    stdout, stderr = sys.stdout, sys.stderr
    if os.environ.get("AUTO_COMPLETE"):
        words = os.environ.get("COMP_WORDS", "").split()
        try:
            cword = int(os.environ.get("COMP_CWORD", "0"))
        except ValueError:
            cword = len(words)
        print(" ".join(bash_complete(words, cword)), file=stdout)
        return EXIT_OK
    try:
        ns = _global_parser().parse_args(args)
    except UsageError as exc:
        print(f"circusctl: {exc}", file=stderr)
        print("usage: circusctl [options] command [args]  (circusctl --help)", file=stderr)
        return EXIT_USAGE
    if ns.version:
        print(f"circusctl {__version__}", file=stdout)
        return EXIT_OK
    if ns.help or ns.command == "help":
        topic = ns.args[0] if ns.command == "help" and ns.args else ns.command
        if ns.help and ns.command and ns.command != "help":
            topic = ns.command
        if topic and topic != "help":
            if topic.lower() not in CLI_COMMANDS:
                print(f"circusctl: unknown command '{topic}'.{suggest(topic)}", file=stderr)
                return EXIT_USAGE
            print(command_help(topic.lower()), file=stdout)
        else:
            print(general_help(), file=stdout)
        return EXIT_OK
    if ns.timeout is not None and ns.timeout <= 0:
        print("circusctl: --timeout must be positive", file=stderr)
        return EXIT_USAGE
    ctx = _make_context(ns, stdout, stderr)
    try:
        if ns.command is None:
            from ._shell import run_shell

            return run_shell(ctx)
        return run_command(ctx, ns.command, ns.args)
    except CtlError as exc:
        ctx.err(ctx.palette.error(f"error: {exc}"))
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    finally:
        ctx.close()
