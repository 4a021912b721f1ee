"""What one circusctl command is, and the argument helpers the command families share.

A :class:`CliCommand` names a daemon command and holds its parser configuration, ``build``
(parsed arguments -> ``(command, properties)``) and ``render`` (an ok answer -> plain text).
Commands that are not one request (``listen``, ``logs``) have neither; _streams.py runs them.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import CtlError
from ._color import Palette

__all__ = [
    "Build",
    "CliCommand",
    "CommandParser",
    "Render",
    "UsageError",
    "int_arg",
    "name_opt",
    "name_req",
    "named",
    "ok",
    "simple",
    "waiting_flag",
    "with_name",
]

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


def ok(answer: Mapping[str, Any], ns: argparse.Namespace, palette: Palette) -> str:
    """Render any ok answer as ``ok``."""
    return palette.ok("ok")


def name_opt(p: argparse.ArgumentParser, help: str = "watcher name") -> None:
    """An optional NAME positional."""
    p.add_argument("name", nargs="?", metavar="NAME", help=help)


def name_req(p: argparse.ArgumentParser) -> None:
    """A required NAME positional (a watcher)."""
    p.add_argument("name", metavar="NAME", help="watcher name")


def waiting_flag(p: argparse.ArgumentParser) -> None:
    """``--waiting``: the daemon answers once the work is done (for start, restart, reload
    and incr: once the processes started are ready); without --timeout, waits up to 30 min."""
    p.add_argument(
        "--waiting",
        action="store_true",
        help="answer only once the work is done and the processes started are ready",
    )


def with_name(ns: argparse.Namespace, props: dict[str, Any]) -> dict[str, Any]:
    """``props`` with ``name`` first when one was given."""
    if getattr(ns, "name", None):
        return {"name": ns.name, **props}
    return props


def int_arg(value: str, what: str) -> int:
    """``value`` as an int, or a UsageError naming ``what``."""
    try:
        return int(value)
    except ValueError:
        raise UsageError(f"{what} must be an integer, not {value!r}") from None


def simple(command: str, with_name_arg: bool = False, **extra: Any) -> CliCommand:
    """A command sending ``{}`` (or ``{"name"}`` when given)."""
    return CliCommand(
        command,
        configure=name_opt if with_name_arg else None,
        build=lambda ns: (command, with_name(ns, {})),
        usage="[NAME]" if with_name_arg else "",
        **extra,
    )


def named(command: str, **extra: Any) -> CliCommand:
    """A command sending ``{"name"}`` for a required NAME."""
    return CliCommand(
        command,
        usage="NAME",
        configure=name_req,
        build=lambda ns: (command, {"name": ns.name}),
        **extra,
    )
