"""``usable_cpus``: the affinity mask and the cgroup CPU quota, observed in real children."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from circus.process import usable_cpus

PROBE = "from circus.process import usable_cpus; print(usable_cpus())"


def run(code: str) -> int:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.strip().splitlines()[-1])


def test_the_count_is_at_least_one_and_at_most_the_affinity_mask() -> None:
    assert 1 <= usable_cpus() <= len(os.sched_getaffinity(0))


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to narrow")
def test_a_narrowed_affinity_mask_is_counted() -> None:
    first = min(os.sched_getaffinity(0))
    assert run(f"import os; os.sched_setaffinity(0, {{{first}}}); {PROBE}") == 1


def _cpu_cgroup_parent() -> Path | None:
    """A cpu-controlled cgroup directory we may create children in (v1 or v2), or None."""
    if os.geteuid() != 0:
        return None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(tail) < 3 or len(fields) < 5:
            continue
        point = Path(fields[4])
        if tail[0] == "cgroup" and "cpu" in tail[2].split(","):
            return point if (point / "cpu.cfs_quota_us").exists() else None
        if tail[0] == "cgroup2" and "cpu" in (point / "cgroup.subtree_control").read_text().split():
            return point
    return None


@pytest.fixture
def quota_group() -> Iterator[Path]:
    parent = _cpu_cgroup_parent()
    if parent is None:
        pytest.skip("needs root and a cgroup hierarchy with the cpu controller")
    group = parent / f"circus-test-{uuid.uuid4().hex[:8]}"
    try:
        group.mkdir()
    except OSError as exc:
        pytest.skip(f"cannot create a cgroup: {exc}")
    try:
        yield group
    finally:
        group.rmdir()  # empty by now: the child that joined it has exited


def _set_quota(group: Path, quota: int, period: int) -> None:
    if (group / "cpu.max").exists():
        (group / "cpu.max").write_text(f"{quota} {period}")
    else:
        (group / "cpu.cfs_period_us").write_text(str(period))
        (group / "cpu.cfs_quota_us").write_text(str(quota))


@pytest.mark.parametrize(("quota", "expected"), [(50_000, 1), (100_000, 1), (150_000, 2)])
def test_a_cgroup_cpu_quota_is_counted_rounded_up(
    quota_group: Path, quota: int, expected: int
) -> None:
    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs two CPUs to see a quota below the mask")
    _set_quota(quota_group, quota, 100_000)
    join = f"open({str(quota_group / 'cgroup.procs')!r}, 'w').write(str(__import__('os').getpid()))"
    assert run(f"{join}; {PROBE}") == expected
