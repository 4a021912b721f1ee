"""circusd SIGKILLed with N workers, then started again on the same config: what it costs.

For each N (argv, default 20 1000) and each ``on_crash`` mode, one circusd runs N ``sleep``
workers (``stop_children = true``: a cgroup leaf each where cgroup2 is writable), is
SIGKILLed once its state file names them all, and is started again. It prints:

* recovery s   - from the restart to ``list`` naming N workers (adopt: the same pids;
                 replace: N new ones, none of the old);
* old running  - old workers still running then (0 expected);
* extra        - processes of the watcher beyond N (0 expected);
* state writes - times the first daemon wrote its state file while starting N workers;
* write ms     - what one write of the state file costs with N processes (median of 30).

Run: ``python bench/bench_crash.py 20 1000``.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from circus.ctl import CircusClient

CIRCUSD = str(Path(sys.executable).with_name("circusd"))


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except OSError:
        return False


def _wait(predicate: Any, limit: float = 300.0) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit("timed out")


def _marked(marker: str) -> int:
    count = 0
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/cmdline", "rb") as fh:
                    if marker.encode() in fh.read() and _running(int(name)):
                        count += 1
            except OSError:
                continue
    return count


def one(n: int, mode: str) -> dict[str, Any]:
    """One crash and restart; the figures."""
    top = Path(tempfile.mkdtemp(prefix="bench-crash-"))
    run = top / "run"
    run.mkdir(mode=0o700)
    marker = f"600.{os.getpid()}{n}{len(mode)}"  # a sleep time no other process has
    config = top / "circus.ini"
    config.write_text(
        f"[circus]\nendpoint = ipc://{top}/ctl\npubsub_endpoint = ipc://{top}/pub\n"
        f"on_crash = {mode}\nruntime_dir = {run}\nloglevel = warning\n\n"
        f"[watcher:s]\ncmd = sleep {marker}\nnumprocesses = {n}\nstop_children = true\n"
        "graceful_timeout = 5\n"
    )
    log = open(top / "circusd.log", "ab")  # noqa: SIM115 - closed below
    client = CircusClient(f"ipc://{top}/ctl", timeout=60, check=False)

    def pids() -> list[int] | None:
        try:
            answer = client.call("list", {"name": "s"})
        except Exception:
            return None
        found = answer.get("pids")
        return sorted(found) if isinstance(found, list) else None

    daemon = subprocess.Popen([CIRCUSD, str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        first = _wait(lambda: (p := pids()) and len(p) == n and p)
        state = next(run.glob("*.state"))
        _wait(lambda: len(json.loads(state.read_text())["watchers"]["s"]["processes"]) == n)
        daemon.kill()
        daemon.wait()
        began = time.monotonic()
        daemon = subprocess.Popen([CIRCUSD, str(config)], stdout=log, stderr=subprocess.STDOUT)
        if mode == "adopt":
            second = _wait(lambda: (p := pids()) and len(p) == n and p)
        else:
            second = _wait(lambda: (p := pids()) and len(p) == n and not set(p) & set(first) and p)
        took = time.monotonic() - began
        old = sum(_running(pid) for pid in first if pid not in second)
        extra = _marked(marker) - n
        client.call("quit", {})
        daemon.wait(120)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        client.close()
        log.close()
        for pid in first if "first" in locals() else []:
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(top, ignore_errors=True)
    return {"n": n, "mode": mode, "recovery_s": took, "same": second == first,
            "old_running": old, "extra": extra}  # fmt: skip


def writes(n: int) -> dict[str, Any]:
    """State writes while starting ``n`` workers in-process, and one write's cost."""
    from circus.arbiter import Arbiter
    from circus.arbiter._settings import ArbiterSettings

    top = tempfile.mkdtemp(prefix="bench-crash-")
    os.chmod(top, 0o700)
    settings = ArbiterSettings(
        endpoint=f"ipc://{top}/ctl", pubsub_endpoint=f"ipc://{top}/pub", runtime_dir=top
    )

    async def main() -> dict[str, Any]:
        watcher = {"name": "s", "cmd": "sleep 600", "numprocesses": n, "graceful_timeout": 5}
        arbiter = Arbiter.from_settings(settings, [watcher])
        await arbiter.start_async()
        try:
            crash = arbiter.crash_state
            assert crash is not None
            await asyncio.sleep(0.2)
            during = crash.writes
            crash.write()
            costs = []
            for _ in range(30):
                began = time.perf_counter()
                crash.write()
                costs.append(time.perf_counter() - began)
            costs.sort()
            return {"state_writes": during, "write_ms": costs[15] * 1000}
        finally:
            await arbiter.stop()

    try:
        return asyncio.run(main())
    finally:
        shutil.rmtree(top, ignore_errors=True)


def main() -> None:
    ns = [int(arg) for arg in sys.argv[1:]] or [20, 1000]
    print(f"{'N':>6} {'mode':>8} {'recovery s':>11} {'same pids':>10} {'old running':>12} "
          f"{'extra':>6} {'state writes':>13} {'write ms':>9}")  # fmt: skip
    for n in ns:
        cost = writes(n)
        for mode in ("adopt", "replace"):
            r = one(n, mode)
            print(f"{n:>6} {mode:>8} {r['recovery_s']:>11.2f} {str(r['same']):>10} "
                  f"{r['old_running']:>12} {r['extra']:>6} {cost['state_writes']:>13} "
                  f"{cost['write_ms']:>9.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
