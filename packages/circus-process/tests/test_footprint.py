"""Per-child memory: a manager holds thousands of Process objects, so each must stay small."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from types import MappingProxyType

import pytest
from circus.process import OutputRedirector, Process

N = 200


def test_process_has_no_instance_dict() -> None:
    proc = Process("t", 1, "true", spawn=False)
    assert not hasattr(proc, "__dict__")
    with pytest.raises(AttributeError):
        proc.undeclared = 1  # type: ignore[attr-defined]


def test_read_only_env_and_template_vars_are_shared_not_copied() -> None:
    env = MappingProxyType({"A": "1"})
    template = MappingProxyType({"x": "y"})
    one = Process("t", 1, "true", env=env, template_vars=template, spawn=False)
    two = Process("t", 2, "true", env=env, template_vars=template, spawn=False)
    assert one.env is two.env is env
    assert one.template_vars is template
    plain = {"A": "1"}
    copied = Process("t", 3, "true", env=plain, spawn=False)
    plain["A"] = "2"
    assert copied.env == {"A": "1"}  # a plain dict is still copied


@pytest.mark.timeout(60)
def test_running_children_cost_little_memory_each(py: str) -> None:
    """Spawned, watched (pidfd) and pumped (two pipes): under 3 KiB of Python heap per child."""
    env = MappingProxyType({"PATH": "/usr/bin:/bin"})

    async def main() -> int:
        redirector = OutputRedirector()
        procs: list[Process] = []
        exited: list[Process] = []
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for wid in range(N):
                proc = Process("t", wid, "sleep 60", env=env)
                proc.add_exit_callback(exited.append)
                redirector.add(proc)
                procs.append(proc)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
            for proc in procs:
                await proc.astop(graceful_timeout=2.0)
            redirector.close()
            for proc in procs:
                proc.close()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        return grown // N

    per_child = asyncio.run(main())
    assert per_child < 3 * 1024, f"{per_child} bytes per child"
