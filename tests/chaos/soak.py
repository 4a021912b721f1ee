"""``make soak``: the chaos run of ``test_chaos.py`` for as long as asked, with its figures.

    python tests/chaos/soak.py [--seconds N] [--clients N] [--seed N] [--flood-mb N]

Prints the requests sent and answered, latencies, the kills, the restarts, and circusd's fd and
RSS drift, then checks what the CI test checks (every watcher back at its size, no zombie, no
process outside circusd's tree, every request answered, fds and RSS back near the start).
``--flood-mb`` (default 1024) then has a child write that much output as fast as it can and
checks the daemon stays responsive and the log file gets every byte. Exit status 0 when all
is well, 1 otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "reliability"))

from chaos_engine import ChaosRun, tagged  # noqa: E402
from circus.process.testing import wait_until  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when every check passed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=90.0, help="storm duration (90)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--seed", type=int, default=None, help="random seed")
    parser.add_argument(
        "--flood-mb", type=int, default=1024, help="MB written by one child afterwards (0: skip)"
    )
    args = parser.parse_args(argv)
    failed = False
    with tempfile.TemporaryDirectory(prefix="circus-soak-") as tmp:
        began = time.monotonic()
        with ChaosRun(Path(tmp), seed=args.seed) as run:
            print(f"circusd pid {run.daemon().pid}, 5 watchers x 10 processes; storming...")
            run.storm(args.seconds, clients=args.clients)
            run.settle()
            problems = run.check()
            print(run.figures.summary())
            print(f"events seen: {dict(run.events)}")
        rc = run.proc.returncode if run.proc is not None else None
        print(
            f"circusd exit status after SIGTERM: {rc}, "
            f"in {run.figures.stop_seconds:.2f} s (graceful_timeout <= 1 s)"
        )
        if rc != 0:
            problems.append(f"circusd exited {rc}")
        try:
            wait_until(lambda: not tagged(run.tag), 10, "no process left")
        except AssertionError:
            problems.append("processes left after circusd exited")
        print(f"chaos total {time.monotonic() - began:.1f} s")
        if problems:
            failed = True
            print("PROBLEMS:\n  " + "\n  ".join(problems))
        if args.flood_mb:
            from flood import flood_run

            flood_dir = Path(tmp) / "flood"
            flood_dir.mkdir()
            report = flood_run(flood_dir, args.flood_mb * 2**20)
            print(report.summary())
            if report.problems:
                failed = True
                print("FLOOD PROBLEMS:\n  " + "\n  ".join(report.problems))
    print("soak: FAILED" if failed else "soak: OK")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
