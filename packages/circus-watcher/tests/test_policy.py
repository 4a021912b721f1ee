"""Restart policy, flapping verdicts and worker ids: pure logic."""

from __future__ import annotations

from circus.watcher._flapping import FlappingDetector, Verdict
from circus.watcher._policy import RestartPolicy
from circus.watcher._wids import WidPool
from hypothesis import given
from hypothesis import strategies as st


def test_respawn_modes_and_success_codes() -> None:
    policy = RestartPolicy(respawn="on-failure", success_exit_codes=frozenset({0, 3}))
    assert not policy.wants_respawn(0)
    assert not policy.wants_respawn(3)
    assert policy.wants_respawn(1)
    assert policy.wants_respawn(-9)
    assert RestartPolicy(respawn="always").wants_respawn(0)
    assert not RestartPolicy(respawn="never").wants_respawn(1)


def test_backoff_grows_and_caps() -> None:
    policy = RestartPolicy(backoff_initial=0.5, backoff_factor=2.0, backoff_max=3.0)
    delays = [policy.record_exit(1, lifetime=0.01) for _ in range(6)]
    assert delays == [0.0, 0.5, 1.0, 2.0, 3.0, 3.0]


def test_backoff_resets_on_success_and_long_life() -> None:
    policy = RestartPolicy(backoff_initial=1.0, backoff_reset=10.0)
    policy.record_exit(1, 0.0)
    assert policy.record_exit(1, 0.0) == 1.0
    assert policy.record_exit(0, 0.0) == 0.0
    assert policy.streak == 0
    policy.record_exit(1, 0.0)
    policy.record_exit(1, 0.0)
    assert policy.record_exit(1, lifetime=60.0) == 0.0  # lived long: a new streak starts


def test_backoff_disabled_and_huge_streak() -> None:
    assert RestartPolicy(backoff_initial=0).delay_for(50) == 0.0
    assert RestartPolicy(backoff_max=30).delay_for(100000) == 30


def test_flapping_inactive_never_triggers() -> None:
    detector = FlappingDetector(active=False)
    assert all(detector.record(0.0) is Verdict.OK for _ in range(10))


def test_flapping_window_retries_then_gives_up() -> None:
    detector = FlappingDetector(active=True, attempts=3, window=1.0, max_retry=2)
    assert detector.record(0.0) is Verdict.OK
    assert detector.record(0.1) is Verdict.OK
    assert detector.record(0.2) is Verdict.RETRY_LATER
    assert [detector.record(t) for t in (5.0, 5.1, 5.2)][-1] is Verdict.RETRY_LATER
    assert detector.tries == 2
    assert [detector.record(t) for t in (9.0, 9.1, 9.2)][-1] is Verdict.GIVE_UP
    assert detector.tries == 0


def test_flapping_slow_deaths_are_fine_and_reset_tries() -> None:
    detector = FlappingDetector(active=True, attempts=2, window=1.0)
    assert detector.record(0.0) is Verdict.OK
    assert detector.record(0.5) is Verdict.RETRY_LATER
    assert detector.tries == 1
    assert detector.record(10.0) is Verdict.OK
    assert detector.record(20.0) is Verdict.OK  # 10 s apart: not flapping
    assert detector.tries == 0


def test_flapping_forever() -> None:
    detector = FlappingDetector(active=True, attempts=1, window=1.0, max_retry=-1)
    assert all(detector.record(float(i)) is Verdict.RETRY_LATER for i in range(20))


def test_wids_smallest_unused_and_reused() -> None:
    pool = WidPool()
    assert [pool.acquire() for _ in range(4)] == [1, 2, 3, 4]
    pool.release(2)
    pool.release(1)
    assert pool.acquire() == 1
    assert pool.acquire() == 2
    pool.release(4)
    assert pool.acquire() == 4
    pool.release(3)
    pool.release(4)
    assert pool.acquire() == 3


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 50)), max_size=200))
def test_wids_are_always_the_smallest_unused(steps: list[tuple[bool, int]]) -> None:
    pool = WidPool()
    used: set[int] = set()
    for acquire, pick in steps:
        if acquire or not used:
            wid = pool.acquire()
            expected = min(set(range(1, len(used) + 2)) - used)
            assert wid == expected
            used.add(wid)
        else:
            victim = sorted(used)[pick % len(used)]
            used.remove(victim)
            pool.release(victim)


def test_give_up_after_counts_the_failure_streak() -> None:
    policy = RestartPolicy(give_up_after=3, backoff_reset=5.0)
    policy.record_exit(1, 0.1)
    policy.record_exit(1, 0.1)
    assert not policy.exhausted()
    policy.record_exit(1, 6.0)  # up long enough: a fresh streak of one
    policy.record_exit(1, 0.1)
    assert not policy.exhausted()
    policy.record_exit(-9, 0.1)
    assert policy.exhausted()
    assert not RestartPolicy(give_up_after=0, streak=100).exhausted()
