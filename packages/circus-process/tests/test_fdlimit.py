"""The descriptor limit: raised for the supervisor, given back to its children; a reserve
that spawning never eats into; EMFILE reported as such.

Each case runs in a fresh interpreter started with ``RLIMIT_NOFILE`` 256 soft / 4096 hard,
since the limit and the reserve are process-wide.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys

import pytest

SOFT, HARD = 256, 4096

CHILD_LIMITS = (
    f"{sys.executable} -c 'import resource; print(*resource.getrlimit(resource.RLIMIT_NOFILE))'"
)


def _low_limits() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, HARD))


def _run(code: str) -> dict[str, object]:
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < HARD:
        pytest.skip(f"needs a hard descriptor limit of {HARD}")
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=_low_limits,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


PRELUDE = f"""
import errno, json, os, resource, time
from circus.process import Process, SpawnError
from circus.process import free_fds, raise_nofile_limit, set_fd_reserve

def child_limits(**options):
    proc = Process("t", 1, {CHILD_LIMITS!r}, shell=True, **options)
    out = b""
    while True:
        chunk = os.read(proc.stdout, 4096)
        if not chunk:
            break
        out += chunk
    proc.wait(30)
    proc.close()
    return [int(x) for x in out.split()]
"""


def test_raised_for_us_given_back_to_children() -> None:
    result = _run(
        PRELUDE
        + """
before = child_limits()
raised = raise_nofile_limit()
again = raise_nofile_limit()
ours = resource.getrlimit(resource.RLIMIT_NOFILE)
print(json.dumps({"before": before, "raised": raised, "again": again, "ours": ours,
                  "child": child_limits(), "own": child_limits(rlimits={"nofile": 1000})}))
"""
    )
    assert result["before"] == [SOFT, HARD]  # nothing raised: children inherit ours
    assert result["raised"] == [SOFT, HARD]
    assert result["again"] == [SOFT, HARD]
    assert result["ours"] == [HARD, HARD]
    assert result["child"] == [SOFT, HARD]  # the old soft limit back, the hard one kept
    assert result["own"] == [1000, 1000]  # the watcher's rlimit_nofile wins


def test_reserve_refuses_spawn_with_emfile_and_leaves_nothing() -> None:
    result = _run(
        PRELUDE
        + """
set_fd_reserve(64)
spare = [os.open(os.devnull, os.O_RDONLY) for _ in range(free_fds(1 << 30) - 40)]
before = sorted(os.listdir("/proc/self/fd"))
try:
    Process("t", 1, "true")
except SpawnError as exc:
    refused = {"errno": exc.errno, "option": exc.option, "text": str(exc)}
after = sorted(os.listdir("/proc/self/fd"))
for fd in spare[:100]:
    os.close(fd)
child = child_limits()
print(json.dumps({"refused": refused, "same_fds": before == after, "child": child,
                  "free": free_fds(1 << 30), "emfile": errno.EMFILE}))
"""
    )
    assert result["refused"]["errno"] == result["emfile"]
    assert "file descriptors free" in result["refused"]["text"]
    assert result["same_fds"]
    assert result["child"] == [SOFT, HARD]  # with room again, spawning works
    assert result["free"] >= 64


def test_emfile_from_the_kernel_carries_its_errno() -> None:
    result = _run(
        PRELUDE
        + """
spare = []
try:
    while True:
        spare.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
os.close(spare.pop())  # one left: not enough for a pipe pair and Popen's own
before = sorted(os.listdir("/proc/self/fd"))
try:
    Process("t", 1, "true")
except SpawnError as exc:
    caught = exc.errno
after = sorted(os.listdir("/proc/self/fd"))
print(json.dumps({"errno": caught, "emfile": errno.EMFILE, "same_fds": before == after}))
"""
    )
    assert result["errno"] == result["emfile"]
    assert result["same_fds"]
