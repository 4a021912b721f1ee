"""A crowded host for tests: thousands of unrelated ``sleep`` processes, all reaped at the end.

:class:`Crowd` starts one leader (its own session, not a child of any circusd) that spawns
``count`` ``sleep`` processes, prints how many it started and waits. Closing the crowd tells
the leader to SIGKILL its children and reap every one before it exits, so no process and no
zombie outlives the test. Shared by ``test_crowded_host.py`` and scratch profiling.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

LEADER = r"""
import os, signal, sys
count = int(sys.argv[1])
sleep = "/bin/sleep" if os.path.exists("/bin/sleep") else "/usr/bin/sleep"
pids = []
try:
    for _ in range(count):
        pids.append(os.posix_spawn(sleep, [sleep, "3600"], {}))
except OSError as exc:  # the host ran out of pids: report what we have
    print(f"spawn stopped: {exc}", file=sys.stderr, flush=True)
print(len(pids), flush=True)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
signal.sigwait({signal.SIGTERM})
for pid in pids:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
for pid in pids:
    os.waitpid(pid, 0)
"""


class Crowd:
    """``count`` unrelated sleeping processes; use as a context manager (reaps them all)."""

    def __init__(self, count: int, timeout: float = 120.0) -> None:
        self.leader = subprocess.Popen(
            [sys.executable, "-c", LEADER, str(count)],
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.leader.stdout is not None
        deadline = time.monotonic() + timeout
        line = self.leader.stdout.readline()  # blocks until every sleep is spawned
        if not line or time.monotonic() > deadline:
            self.close()
            raise AssertionError("the crowd leader did not start its processes")
        self.count = int(line)

    def close(self) -> None:
        """Kill and reap every crowd process, then the leader."""
        if self.leader.poll() is None:
            self.leader.send_signal(signal.SIGTERM)
            try:
                self.leader.wait(60)
            except subprocess.TimeoutExpired:
                self.leader.kill()
                self.leader.wait(10)
        if self.leader.stdout is not None:
            self.leader.stdout.close()

    def __enter__(self) -> Crowd:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
