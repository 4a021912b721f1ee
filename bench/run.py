"""Benchmark circusd against the raw reference, Circus 0.19 and Supervisor 4.3.

Run it as ``make bench`` (full) or ``make bench-small`` (CI smoke sizes); see bench/README.md
and ``python bench/run.py --help``. Needs only the project venv (psutil, pyzmq, stdlib): the
peers are installed on first use into cached venvs under .cache/.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchkit.cli import main  # noqa: E402 - needs the path above

if __name__ == "__main__":
    sys.exit(main())
