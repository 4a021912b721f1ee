"""A background worker for examples/docker: takes a job every few seconds, finishes the one
in hand on SIGTERM, then exits. Stdlib only."""

from __future__ import annotations

import signal
import time

stopping = False


def _stop(signum: int, frame: object) -> None:
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, _stop)
job = 0
while not stopping:
    job += 1
    print(f"job {job}: working", flush=True)
    time.sleep(2)
print(f"job {job}: done, exiting", flush=True)
