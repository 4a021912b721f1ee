"""What a Process object holds: nothing per child that an empty option does not need.

A daemon keeps thousands of these (bench/README.md, "Daemon RSS, session 4").
"""

from __future__ import annotations

import pytest
from circus.process import Process


def test_processes_without_rlimits_or_sockets_share_one_empty_mapping() -> None:
    a = Process("w", 1, "true", spawn=False)
    b = Process("w", 2, "true", spawn=False)
    assert not a.rlimits and not a.sockets
    assert a.rlimits is b.rlimits and a.sockets is b.sockets  # no dict per child
    with pytest.raises(TypeError):
        a.sockets["x"] = 3  # type: ignore[index]  # read-only: nothing leaks to the others
    given = {"nofile": 10}
    c = Process("w", 3, "true", rlimits=given, sockets={"web": 5}, spawn=False)
    assert c.rlimits == given and c.rlimits is not given  # still the caller's copy
    assert dict(c.sockets) == {"web": 5}


def test_close_hooks_are_kept_and_dropped() -> None:
    proc = Process("w", 1, "true", spawn=False)
    seen: list[str] = []

    def first(p: Process) -> None:
        seen.append("first")

    def second(p: Process) -> None:
        seen.append("second")

    proc._add_close_hook(first)
    proc._add_close_hook(second)
    proc._remove_close_hook(first)
    proc._remove_close_hook(first)  # twice: a no-op
    proc.close()
    proc.close()  # hooks run once
    assert seen == ["second"]
