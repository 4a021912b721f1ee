"""The stats channel's tick grid: a round's cost never pushes the next tick back."""

from __future__ import annotations

import pytest
from circus.arbiter._stats import next_due


def test_next_tick_is_one_interval_after_the_previous_deadline() -> None:
    # The round that was due at 10.0 ended at 10.4: the next is due at 11.0, not 11.4.
    assert next_due(10.0, 1.0, now=10.4) == 11.0


def test_a_tick_late_by_less_than_an_interval_is_due_now() -> None:
    assert next_due(10.0, 1.0, now=11.3) == 11.0  # in the past: fires at once


def test_ticks_missed_by_more_than_an_interval_are_dropped_not_bunched() -> None:
    due = next_due(10.0, 1.0, now=13.5)
    assert due == pytest.approx(13.0)
    assert next_due(due, 1.0, now=13.5) == pytest.approx(14.0)  # then back on the grid


def test_a_run_of_slow_rounds_keeps_the_mean_rate() -> None:
    due, now, ticks = 0.0, 0.0, []
    for _ in range(100):
        due = next_due(due, 1.0, now)
        now = max(now, due) + 0.9  # every round costs 0.9 of an interval
        ticks.append(max(due, now - 0.9))
    assert (ticks[-1] - ticks[0]) / (len(ticks) - 1) == pytest.approx(1.0)
