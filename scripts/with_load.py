"""Run a command while busy-loop processes keep every core loaded, then stop them.

``make test-loaded`` runs the test suite through this script, so that timing assumptions
(a deadline too tight, a sleep used as a synchronisation) fail here rather than on a busy CI
machine. The load is plain CPU: one Python busy loop per core by default, at normal
priority, competing with the tests for every core.

Usage: ``python scripts/with_load.py [--procs N] -- COMMAND [ARG...]``; the exit status is
the command's. The load processes are killed when the command ends, when this script is
interrupted, and (each one checks its parent) within a fraction of a second when this
script dies without cleaning up.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

# A loop that stops once its parent is gone (re-parented: getppid changes), so no load
# process outlives a killed launcher.
BUSY = """
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(200_000):
        pass
"""
MARKER = "circus-synthetic-load"


def start_load(procs: int) -> list[subprocess.Popen[bytes]]:
    """``procs`` busy-loop processes, children of this process."""
    argv = [sys.executable, "-S", "-c", BUSY, str(os.getpid()), MARKER]
    return [subprocess.Popen(argv, stdin=subprocess.DEVNULL) for _ in range(procs)]


def stop_load(load: list[subprocess.Popen[bytes]]) -> None:
    """Kill and reap every load process."""
    for proc in load:
        if proc.poll() is None:
            proc.kill()
    for proc in load:
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the command's exit status (128 + signal when it was killed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--procs",
        type=int,
        default=0,
        help="busy-loop processes (default 0: one per core)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG...]")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("a command to run is required")
    procs = args.procs if args.procs > 0 else (os.cpu_count() or 1)

    load = start_load(procs)
    try:
        print(f"with_load: {procs} busy-loop processes running", file=sys.stderr, flush=True)
        child = subprocess.Popen(command)
        # Ctrl-C reaches the command from the terminal (same process group): let it wind
        # down and report; a SIGTERM sent to this script is passed on to it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, lambda signum, _frame: child.send_signal(signum))
        status = child.wait()
    finally:
        stop_load(load)
    return status if status >= 0 else 128 - status


if __name__ == "__main__":
    sys.exit(main())
