"""The interactive circusctl shell (``circusctl`` without a command), built on :mod:`cmd`.

Every circusctl command is a shell command; TAB completes command names, watcher names and
flags; history is kept in ``$CIRCUSCTL_HISTORY`` (default ``~/.circusctl_history``) when
readline is available. ``exit`` or Ctrl-D leaves the shell (``quit`` stops the daemon, as in
0.19).
"""

from __future__ import annotations

import cmd
import importlib
import os
import shlex
import sys
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..errors import CallTimeout, CtlError, DaemonUnreachable
from ._commands import CLI_COMMANDS

if TYPE_CHECKING:
    from ._app import Context

__all__ = ["CircusShell", "run_shell"]

_FLAGS: dict[str, list[str]] = {
    "start": ["--waiting", "--match"],
    "stop": ["--waiting", "--match"],
    "restart": ["--waiting", "--match"],
    "reload": ["--terminate", "--sequential", "--waiting"],
    "reloadconfig": ["--waiting"],
    "quit": ["--waiting"],
    "incr": ["--waiting"],
    "decr": ["--waiting"],
    "set": ["--waiting"],
    "rm": ["--waiting", "--nostop"],
    "add": ["--start"],
    "signal": ["--children", "--recursive"],
    "kill": ["--signum", "--graceful_timeout", "--waiting"],
    "stats": ["--extended"],
    "logs": ["-f", "--lines", "--pubsub-endpoint", "--count"],
    "listen": ["--pubsub-endpoint", "--count", "--timeout"],
}
_NO_WATCHER_ARG = {
    "numwatchers",
    "dstats",
    "listsockets",
    "globaloptions",
    "quit",
    "reloadconfig",
    "ipython",
    "listen",
}


class CircusShell(cmd.Cmd):
    """A ``cmd.Cmd`` whose commands are circusctl's; each line runs like a one-shot command."""

    prompt = "(circusctl) "

    def __init__(self, ctx: Context, stdin: Any = None, stdout: Any = None) -> None:
        super().__init__(stdin=stdin, stdout=stdout)
        if stdin is not None:
            self.use_rawinput = False
        self.ctx = ctx
        self.last_status = 0
        self._watchers: list[str] | None = None

    # cmd.Cmd looks commands up as do_<name>; route them all to one dispatcher.
    def get_names(self) -> list[str]:
        """Names cmd.Cmd uses for help and completion."""
        names = [f"do_{name}" for name in CLI_COMMANDS] + ["do_exit", "do_EOF", "do_help"]
        return names

    def __getattr__(self, attr: str) -> Any:
        if attr.startswith("do_") and attr[3:] in CLI_COMMANDS:
            return lambda line, _name=attr[3:]: self._run(_name, line)
        if attr.startswith("complete_") and attr[9:] in CLI_COMMANDS:
            return lambda text, line, begidx, endidx, _name=attr[9:]: self._complete(
                _name, text, line
            )
        raise AttributeError(attr)

    def _run(self, name: str, line: str) -> bool:
        from ._app import run_command

        try:
            args = shlex.split(line)
        except ValueError as exc:
            self.ctx.err(f"error: {exc}")
            self.last_status = 1
            return False
        self.last_status = run_command(self.ctx, name, args)
        if name in ("add", "rm"):
            self._watchers = None
        return False

    def do_exit(self, line: str) -> bool:
        """Leave the shell (the daemon keeps running)."""
        return True

    def do_EOF(self, line: str) -> bool:  # noqa: N802 - the name cmd.Cmd uses for Ctrl-D
        """Leave the shell."""
        self.ctx.out("")
        return True

    def emptyline(self) -> bool:
        """An empty line does nothing (cmd.Cmd would repeat the last command)."""
        return False

    def default(self, line: str) -> None:
        """An unknown command: say so and suggest the closest one."""
        from ._app import suggest

        word = line.split()[0] if line.split() else line
        self.ctx.err(f"unknown command '{word}'.{suggest(word)} Type 'help' for the list.")
        self.last_status = 2

    def do_help(self, arg: str) -> None:
        """List commands, or show one command's help."""
        from ._app import command_help

        name = arg.strip().lower()
        if name in CLI_COMMANDS:
            self.ctx.out(command_help(name))
            return
        if name:
            self.default(name)
            return
        width = max(len(n) for n in CLI_COMMANDS)
        lines = [f"  {n:<{width}}  {CLI_COMMANDS[n].summary}" for n in sorted(CLI_COMMANDS)]
        lines.append(f"  {'exit':<{width}}  leave the shell (Ctrl-D too)")
        self.ctx.out("Commands (help COMMAND for details):\n" + "\n".join(lines))

    # ------------------------------------------------------------------ completion

    def completenames(self, text: str, *ignored: Any) -> list[str]:
        """Complete command names."""
        return [n for n in sorted([*CLI_COMMANDS, "exit", "help"]) if n.startswith(text)]

    def watcher_names(self) -> list[str]:
        """The daemon's watcher names (cached until add/rm), [] if it cannot be asked."""
        if self._watchers is None:
            try:
                answer = self.ctx.get_client().call("list", {})
            except (CtlError, DaemonUnreachable, CallTimeout):
                return []
            self._watchers = [str(w) for w in answer.get("watchers") or []]
        return self._watchers

    def _complete(self, name: str, text: str, line: str) -> list[str]:
        words = line.split()
        completing_first_arg = len(words) == 1 or (len(words) == 2 and not line.endswith(" "))
        if text.startswith("-"):
            return [f for f in _FLAGS.get(name, []) if f.startswith(text)]
        if name == "help":
            return self.completenames(text)
        if completing_first_arg and name not in _NO_WATCHER_ARG:
            return [w for w in self.watcher_names() if w.startswith(text)]
        if name == "logs":
            return [w for w in self.watcher_names() if w.startswith(text)]
        return []

    def complete_help(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        """Complete ``help`` with command names."""
        return self.completenames(text)


def _history_file() -> str:
    return os.environ.get("CIRCUSCTL_HISTORY") or os.path.expanduser("~/.circusctl_history")


def run_shell(ctx: Context) -> int:
    """Run the interactive shell until exit/EOF; return the last command's exit status."""
    interactive = sys.stdin.isatty()
    readline: Any = None
    if interactive:
        try:
            # Importing readline is what gives input() line editing and TAB completion.
            readline = importlib.import_module("readline")
        except ImportError:  # pragma: no cover - some builds lack readline
            readline = None
    history = _history_file()
    if readline is not None:
        try:
            readline.read_history_file(history)
        except OSError:
            pass
        readline.set_history_length(1000)
    shell = CircusShell(ctx)
    if not interactive:
        shell.prompt = ""
    ctx.out(f"circusctl {__version__}")
    from ._app import run_command

    run_command(ctx, "status", [])
    try:
        while True:
            try:
                shell.cmdloop()
                break
            except KeyboardInterrupt:
                ctx.out("^C")
    finally:
        if readline is not None:
            try:
                readline.write_history_file(history)
            except OSError:
                pass
    return shell.last_status
