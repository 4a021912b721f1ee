"""The watcher's state machine: one setter, a transition table, the events it publishes."""

from __future__ import annotations

from typing import Any

import pytest
from circus.watcher import Watcher, WatcherState
from circus.watcher._lifecycle import TRANSITIONS, Halt, Lifecycle

S = WatcherState


def test_status_strings_are_the_protocols() -> None:
    assert [state.value for state in S] == ["stopped", "starting", "active", "stopping"]
    w = Watcher("w", "sleep 1")
    assert w.state is S.STOPPED and w.status() == "stopped" and w.is_stopped()


def test_only_the_table_s_transitions_happen_and_each_says_its_event() -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    life = Lifecycle(lambda event, payload: events.append((event, payload)))
    for new, event in [(S.STARTING, None), (S.ACTIVE, "start"), (S.STOPPING, None),
                       (S.STOPPED, "stop"), (S.STARTING, None), (S.STOPPED, None)]:  # fmt: skip
        before = len(events)
        life.change(new)
        assert life.state is new
        assert [e for e, _ in events[before:]] == ([event] if event else [])
    assert all(set(payload) == {"time"} for _, payload in events)
    for state in S:
        for new in S:
            if (state, new) in TRANSITIONS:
                continue
            machine = Lifecycle(lambda event, payload: None)
            machine._state = state
            with pytest.raises(RuntimeError, match=f"from {state.value} to {new.value}"):
                machine.change(new)
            assert machine.state is state


def test_a_start_or_a_stop_supersedes_a_halt_and_the_generation_moves_on() -> None:
    life = Lifecycle(lambda event, payload: None)
    life.change(S.STARTING)
    life.change(S.ACTIVE)
    life.halt = Halt.FLAPPING
    assert life.running and life.halt is Halt.FLAPPING
    life.change(S.STOPPING)
    assert life.halt is None and not life.running
    first = life.generation
    assert life.bump() == first + 1 == life.generation


def test_listeners_see_the_state_the_event_announces(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        w = make("sleep 300", numprocesses=2)
        seen: list[tuple[str, WatcherState]] = []
        w.add_listener(lambda event, payload: seen.append((event, w.state)))
        await w.start()
        await w.stop()
        by_event = [(event, state) for event, state in seen if event in ("start", "stop")]
        assert by_event == [("start", S.ACTIVE), ("stop", S.STOPPED)]
        spawns = [state for event, state in seen if event == "spawn"]
        assert spawns == [S.STARTING, S.STARTING]
        kills = {state for event, state in seen if event in ("kill", "reap")}
        assert kills == {S.STOPPING}

    run_async(main)


def test_a_refused_start_never_reports_a_stop(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        async def refuse(**kwargs: Any) -> bool:
            return False

        w = make("sleep 300", hooks={"before_start": refuse})
        assert await w.start() == {"started": [], "kept": []}
        assert w.state is S.STOPPED
        assert "start" not in recorder.names() and "stop" not in recorder.names()

    run_async(main)
