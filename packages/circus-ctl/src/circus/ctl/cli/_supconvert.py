"""``circusctl convert supervisord.conf``: print the equivalent Circus INI file.

The conversion belongs to the daemon's config loader (``circus.arbiter.supervisor``), which
circusctl never imports (ctl stands alone): it runs ``python -P -m circus.arbiter.supervisor
convert FILE`` with this interpreter (``-P``: never the current directory's modules), so the
output is exactly what circusd would run.
Warnings (``file:line: ...``) go to stderr; an invalid file exits 1 with its error.
"""

from __future__ import annotations

import subprocess
import sys

__all__ = ["convert", "USAGE"]

USAGE = "usage: circusctl convert SUPERVISORD_CONF"


def convert(args: list[str]) -> int:
    """Run the conversion of ``args[0]``; return the exit code (2: bad usage or no loader)."""
    if len(args) != 1 or args[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    probe = (
        "import importlib.util, sys; sys.exit(importlib.util.find_spec('circus.arbiter') is None)"
    )
    # -P: the current directory (maybe another user's) is not put first on sys.path
    if subprocess.run([sys.executable, "-P", "-c", probe], check=False).returncode != 0:
        print(
            "circusctl: convert needs circus-arbiter installed beside circusctl (from a "
            "clone: pip install ./packages/circus-arbiter ./packages/circus-daemon; once "
            "published: pip install circus-daemon)",
            file=sys.stderr,
        )
        return 2
    sys.stdout.flush()
    command = [sys.executable, "-P", "-m", "circus.arbiter.supervisor", "convert", args[0]]
    return subprocess.run(command, check=False).returncode
