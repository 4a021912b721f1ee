"""What ``daemon-reexec`` would exec, recorded when circusd starts.

Kept apart from ``_reexec`` so that a daemon which never re-execs does not load the switch's
machinery (``_reexec``, ``_handover``, ``_resume``: about 0.2 MiB of every daemon's RSS).
"""

from __future__ import annotations

import os
import sys

__all__ = ["enable", "enabled_argv", "launch_argv"]

# What to exec: this process's command line with its script path resolved; None until
# circusd calls enable() (an arbiter embedded in another program never re-execs it).
_argv: list[str] | None = None


def enable(argv: list[str] | None = None) -> None:
    """Allow ``daemon-reexec`` in this process (called by circusd, which owns it);
    ``argv``: what to exec (default :func:`launch_argv` now)."""
    global _argv
    _argv = list(argv) if argv else launch_argv()


def enabled_argv() -> list[str] | None:
    """What :func:`enable` recorded, or None when this process may not re-exec."""
    return _argv


def launch_argv() -> list[str]:
    """This process's command line to exec again: ``sys.executable``, the interpreter's
    own flags, the script (its path made absolute) or ``-m module``, and the arguments."""
    orig = list(getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv])
    out = [sys.executable]
    i = 1
    while i < len(orig):
        arg = orig[i]
        if arg in ("-m", "-c"):
            return out + orig[i:]
        if arg in ("-X", "-W"):
            out += orig[i : i + 2]
            i += 2
        elif arg.startswith("-") and arg != "-":
            out.append(arg)
            i += 1
        else:
            return [*out, os.path.abspath(arg), *orig[i + 1 :]]
    return out
