"""Print a numbered tick every second (a stand-in for a worker that logs). Stdlib only."""

from __future__ import annotations

import signal
import sys
import time


def main() -> None:
    """Tick until SIGTERM."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    count = 0
    while True:
        count += 1
        print(f"tick {count}", flush=True)
        time.sleep(1.0)


if __name__ == "__main__":
    main()
