"""``Arbiter(spawn_thread=...)`` / ``[circus] spawn_thread``: checked when made, applied to the
process at start (what it does to children: tests/reexec/test_reexec_pdeathsig.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from circus.arbiter import Arbiter, ArbiterError
from circus.process import DEFAULT_SPAWN_THREAD_FROM, set_spawn_thread, spawn_thread


@pytest.fixture(autouse=True)
def threshold_restored() -> Iterator[None]:
    yield
    set_spawn_thread(DEFAULT_SPAWN_THREAD_FROM)


@pytest.mark.parametrize("bad", [-1, True, "off", 1.5])
def test_a_bad_spawn_thread_is_refused(bad: Any) -> None:
    with pytest.raises(ArbiterError, match="spawn_thread"):
        Arbiter([], spawn_thread=bad)


@pytest.mark.parametrize("value", [None, 0, DEFAULT_SPAWN_THREAD_FROM])
def test_spawn_thread_is_applied_at_start(run_arbiter: Any, value: int | None) -> None:
    set_spawn_thread(123)  # whatever the process had: the arbiter's setting wins

    async def body(arbiter: Any, client: Any) -> int | None:
        return spawn_thread()

    assert run_arbiter([], body, spawn_thread=value) == value
