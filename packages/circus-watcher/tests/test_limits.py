"""Ceilings on every count and duration: refused before anything changes (README "Ceilings")."""

from __future__ import annotations

import math
import os
from typing import Any

import pytest
from circus.watcher import (
    LIMITS,
    MAX_PROCESSES,
    MAX_SECONDS,
    CeilingError,
    OptionError,
    Watcher,
)

YEAR = 31_536_000

# (option, value, what the error must name): each one is accepted by the code before ceilings.
BEYOND: list[tuple[str, Any, str]] = [
    ("numprocesses", 10**30, "100000"),
    ("numprocesses", MAX_PROCESSES + 1, "100000"),
    ("numprocesses", 1e300, "100000"),
    ("max_retry", 2**70, "1000000"),
    ("graceful_timeout", 1e308, str(YEAR)),
    ("graceful_timeout", math.inf, str(YEAR)),
    ("warmup_delay", "1e400", str(YEAR)),
    ("max_age", 1e308, str(YEAR)),
    ("max_age_variance", YEAR + 1, str(YEAR)),
    ("retry_in", 10**20, str(YEAR)),
    ("backoff_initial", math.inf, str(YEAR)),
    ("backoff_max", 1e308, str(YEAR)),
    ("backoff_reset", 1e308, str(YEAR)),
    ("backoff_factor", math.inf, "1000"),
    ("hook_timeout", 1e308, str(YEAR)),
    ("flapping.attempts", 2**70, "1000000"),
    ("flapping.window", 1e308, str(YEAR)),
    ("flapping.retry_in", "inf", str(YEAR)),
    ("flapping.max_retry", 2**70, "1000000"),
    ("priority", 2**70, "2147483647"),
]

# Values that make no sense at all (NaN, negative, below the floor).
SENSELESS: list[tuple[str, Any]] = [
    ("graceful_timeout", math.nan),
    ("warmup_delay", "nan"),
    ("max_age", -1),
    ("retry_in", -0.5),
    ("backoff_initial", -math.inf),
    ("hook_timeout", math.nan),
    ("flapping.window", math.nan),
    ("flapping.attempts", 0),
    ("max_retry", -2),
    ("numprocesses", -1),
    ("uid", 2**40),
    ("gid", 2**32 - 1),
]


@pytest.mark.parametrize(("option", "value", "ceiling"), BEYOND)
def test_constructor_refuses_a_value_above_its_ceiling(option: str, value: Any, ceiling: str):
    with pytest.raises(CeilingError) as info:
        Watcher("w", "sleep 300", **{option: value})
    message = str(info.value)
    assert f"'{option}'" in message and "ceiling" in message and ceiling in message, message
    assert info.value.option == option
    assert len(message) < 300


@pytest.mark.parametrize(("option", "value"), SENSELESS)
def test_constructor_refuses_senseless_values(option: str, value: Any) -> None:
    with pytest.raises(OptionError, match=f"'{option}'"):
        Watcher("w", "sleep 300", **{option: value})


@pytest.mark.parametrize(
    "options",
    [
        {"rlimits": {"nofile": 2**64}},
        {"rlimit_core": 2**63},
        {"stdout_stream": {"class": "FileStream", "filename": "x.log", "backup_count": 10**30}},
        {"stderr_stream.class": "FileStream", "stderr_stream.filename": "x.log",
         "stderr_stream.rotate_interval": "99999999999"},
    ],
)  # fmt: skip
def test_rlimits_and_stream_counts_have_ceilings(options: dict[str, Any]) -> None:
    with pytest.raises(OptionError, match="ceiling"):
        Watcher("w", "sleep 300", **options)


def test_values_at_the_ceiling_and_upstream_values_are_accepted() -> None:
    at_ceiling = {
        "numprocesses": MAX_PROCESSES,
        "graceful_timeout": MAX_SECONDS,
        "max_age": MAX_SECONDS,
        "max_retry": 1_000_000,
        "flapping.max_retry": -1,
        "flapping.attempts": 1_000_000,
        "backoff_factor": 1000,
        "rlimits": {"nofile": 2**63 - 1, "core": -1, "nproc": None, "as": "unlimited"},
        "stdout_stream": {"class": "FileStream", "filename": "x.log", "backup_count": 10_000},
        "uid": 2**32 - 2,
    }
    w = Watcher("w", "sleep 300", **at_ceiling)  # constructing starts nothing
    assert w.numprocesses == MAX_PROCESSES
    assert w.get_opt("rlimits") == {"nofile": 2**63 - 1, "core": None, "nproc": None, "as": None}
    # What a Circus 0.19 user writes.
    typical = {"numprocesses": 64, "graceful_timeout": "30", "max_age": 86400, "max_retry": -1,
               "warmup_delay": "0.5", "priority": -10, "flapping.window": "10.5"}  # fmt: skip
    assert Watcher("w", "sleep 300", **typical).get_opt("max_age") == 86400


def test_echoed_values_are_cut_short() -> None:
    for value in (10**5000, 10**400, "9" * 100_000):
        with pytest.raises(OptionError) as info:
            Watcher("w", "sleep 300", numprocesses=value)
        assert len(str(info.value)) < 300, str(info.value)[:400]
    with pytest.raises(OptionError) as info:
        Watcher("w", "sleep 300", max_age="x" * 1_000_000)
    assert len(str(info.value)) < 300


def test_the_table_is_the_single_source_of_the_words() -> None:
    from circus.watcher import OPTIONS

    for name, spec in OPTIONS.items():
        if name in LIMITS:
            assert spec.ceiling is LIMITS[name], name
            assert f"{int(LIMITS[name].high)}" in spec.expected, name


class SpawnGuard:
    """A process factory that spawns real processes but refuses past ``most``, so code
    without ceilings fails the test instead of forking thousands of children."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.spawned = 0

    def __call__(self, watcher: Any, wid: int) -> Any:
        from circus.watcher._procs import make_process

        self.spawned += 1
        if self.spawned > self.most:
            raise RuntimeError(f"spawn guard: more than {self.most} processes")
        watcher._factory = None
        try:
            return make_process(watcher, wid)
        finally:
            watcher._factory = self


def test_refused_resize_changes_nothing_on_a_running_watcher(make: Any, run_async: Any) -> None:
    async def main() -> None:
        guard = SpawnGuard(most=6)
        w = make("sleep 300", numprocesses=2, max_retry=1, process_factory=guard)
        await w.start()
        pids = sorted(w.pids)
        assert len(pids) == 2
        with pytest.raises(CeilingError, match="'nb'.*ceiling of 100000"):
            await w.incr(2**70)
        with pytest.raises(CeilingError, match="'nb'"):
            await w.decr(10**30)
        with pytest.raises(CeilingError, match="'numprocesses'"):
            await w.set_numprocesses(MAX_PROCESSES + 1)
        with pytest.raises(CeilingError, match="'numprocesses'"):
            await w.set_opt("numprocesses", 10**30)
        # an nb within its own ceiling that would take the watcher past numprocesses' ceiling
        with pytest.raises(CeilingError, match="'numprocesses'"):
            await w.incr(MAX_PROCESSES)
        assert w.numprocesses == 2 and sorted(w.pids) == pids
        assert guard.spawned == 2
        assert all(_alive(pid) for pid in pids)

    run_async(main)


def test_refused_set_and_kill_change_nothing(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300", numprocesses=1, max_retry=1, process_factory=SpawnGuard(most=3))
        await w.start()
        (pid,) = w.pids
        for option, value in [
            ("graceful_timeout", 1e308),
            ("graceful_timeout", math.nan),
            ("max_retry", 2**70),
            ("flapping.max_retry", 2**70),
            ("warmup_delay", math.inf),
            ("max_age", 1e308),
            ("rlimit_nofile", 2**64),
            ("stdout_stream.backup_count", 10**30),
        ]:
            before = w.get_opt(option)
            with pytest.raises(OptionError):
                await w.set_opt(option, value)
            assert w.get_opt(option) == before, option
        with pytest.raises(CeilingError, match="'graceful_timeout'"):
            await w.kill_process(pid, graceful_timeout=1e308)
        with pytest.raises(OptionError, match="'graceful_timeout'"):
            await w.kill_process(pid, graceful_timeout=math.nan)
        assert w.pids == [pid] and _alive(pid)

    run_async(main)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
