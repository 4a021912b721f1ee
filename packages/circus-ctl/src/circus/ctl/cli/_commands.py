"""circusctl's command table: every command by name, from the command families.

What one command is lives in _spec.py; the commands themselves, by family, in
_cmd_watchers.py (start, stop, reload, add, rm, incr, ...), _cmd_options.py (get, set,
options, globaloptions), _cmd_signals.py (signal, kill) and _cmd_status.py (list, status,
stats, ..., listen, logs).
"""

from __future__ import annotations

import argparse

from . import _cmd_options, _cmd_signals, _cmd_status, _cmd_watchers
from ._spec import CliCommand, CommandParser, UsageError

__all__ = ["CLI_COMMANDS", "CliCommand", "UsageError", "CommandParser", "parse_command_args"]

CLI_COMMANDS: dict[str, CliCommand] = {
    c.name: c
    for c in sorted(
        (
            *_cmd_watchers.COMMANDS,
            *_cmd_options.COMMANDS,
            *_cmd_signals.COMMANDS,
            *_cmd_status.COMMANDS,
        ),
        key=lambda c: c.name,
    )
}


def parse_command_args(command: CliCommand, args: list[str]) -> argparse.Namespace:
    """Parse the arguments of ``command`` (raises UsageError)."""
    if command.name == "set":
        return _cmd_options.parse_set(args)
    return command.parse(args)
