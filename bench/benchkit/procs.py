"""Cheap process helpers: children of a pid from /proc, condition polling, cleanup by pid.

psutil's ``children()`` scans every pid on the machine; with thousands of processes that scan
costs more than what we time, so the counting here reads ``/proc/PID/task/*/children`` (one
file per thread of the parent) and each child's ``stat`` line.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import time
from collections.abc import Callable
from pathlib import Path


class BenchError(Exception):
    """A measurement could not be taken (daemon failed, deadline passed); the message says why."""


def raise_nofile() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to the hard one; daemons we start inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child


def die_with_parent() -> None:
    """``preexec_fn`` for the daemons we start: SIGTERM them if the bench dies first.

    A bench killed by a timeout would otherwise leave daemons (and their thousands of
    children) running; SIGTERM makes each daemon quit and stop its children.
    """
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def children(pid: int) -> set[int]:
    """Direct children of ``pid`` (any state), read from /proc; empty if ``pid`` is gone."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            found.update(
                int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            )
        except OSError:
            continue
    return found


def comm_state(pid: int) -> tuple[str, str] | None:
    """``(comm, state letter)`` of ``pid`` from /proc/PID/stat, or None when it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # comm may hold spaces and parentheses: it spans from the first '(' to the last ')'.
    lpar, rpar = raw.index(b"("), raw.rindex(b")")
    return raw[lpar + 1 : rpar].decode(errors="replace"), raw[rpar + 2 : rpar + 3].decode()


def running_children(pid: int, comm: str) -> set[int]:
    """Children of ``pid`` that already exec'd ``comm`` and are not zombies."""
    live = set()
    for child in children(pid):
        cs = comm_state(child)
        if cs is not None and cs[0] == comm and cs[1] not in ("Z", "X"):
            live.add(child)
    return live


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.001
) -> float:
    """Poll ``condition`` until true; return when it became true (perf_counter).

    Raises:
        BenchError: naming ``what`` when ``timeout`` seconds pass first.
    """
    deadline = time.perf_counter() + timeout
    while True:
        if condition():
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot (with the pid, identifies a process)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return int(raw[raw.rindex(b")") + 2 :].split()[19])


def identify(pids: set[int] | list[int]) -> dict[int, int]:
    """``{pid: start time}`` for the pids still alive, to kill them later without hitting a
    process that reused a pid (other people's tests run on this machine)."""
    found = {}
    for pid in pids:
        started = start_time(pid)
        if started is not None:
            found[pid] = started
    return found


def kill_identified(known: dict[int, int], sig: int = signal.SIGKILL) -> None:
    """Signal each process of ``known`` that is still the same process (cleanup: no errors)."""
    for pid, started in known.items():
        if start_time(pid) == started:
            try:
                os.kill(pid, sig)
            except OSError:
                pass


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds consumed so far by ``pid`` (from /proc/PID/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_bytes()
    fields = raw[raw.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise BenchError(f"no VmRSS for pid {pid}")
