"""Answers whose shape Circus 0.19's own tools read: ``add`` with ``start``, ``globaloptions``,
``options`` and ``get`` (the values upstream answers, observed from its circusd)."""

from __future__ import annotations

import os
from typing import Any

from circus.arbiter import Arbiter
from circus.watcher import UPSTREAM_OPTION_KEYS


def test_add_with_start_and_waiting_answers_started_and_kept(run_arbiter, make_sleeper) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        answer = await c.call(
            "add", name="late", cmd=make_sleeper()["cmd"], start=True, waiting=True
        )
        assert answer["status"] == "ok"
        # 0.19 answers the watcher's start result at the top level, not under "info"
        assert answer["kept"] == []
        assert answer["started"] == arbiter.get_watcher("late").pids
        assert len(answer["started"]) == 1
        plain = await c.call("add", name="idle", cmd=make_sleeper()["cmd"], waiting=True)
        assert set(plain) == {"status", "time", "id"}

    run_arbiter([make_sleeper()], body)


def test_globaloptions_gives_upstream_default_stats_endpoint(run_arbiter, make_sleeper) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        options = (await c.call("globaloptions"))["options"]
        # no stats channel: upstream still answers its default address, a string
        assert options["stats_endpoint"] == "tcp://127.0.0.1:5557"
        assert isinstance(options["check_delay"], float)
        one = await c.call("globaloptions", option="stats_endpoint")
        assert one["options"] == {"stats_endpoint": "tcp://127.0.0.1:5557"}

    run_arbiter([make_sleeper()], body)


def test_options_lists_upstream_keys_with_upstream_types(run_arbiter, make_sleeper) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        options = (await c.call("options", name="sleeper"))["options"]
        assert set(options) == set(UPSTREAM_OPTION_KEYS)
        assert list(options) == sorted(options)
        assert options["args"] == ""
        assert options["respawn"] is True
        assert options["stdout_stream_conf"] == {} and options["stderr_stream_conf"] == {}
        assert options["working_dir"] == os.getcwd()  # where the processes run
        assert options["env"] == {}
        assert isinstance(options["graceful_timeout"], float)
        assert isinstance(options["max_age"], int) and isinstance(options["max_retry"], int)
        assert not any(key.startswith("flapping.") for key in options)
        got = await c.call("get", name="sleeper", keys=["args", "respawn", "working_dir"])
        assert got["options"] == {"args": "", "respawn": True, "working_dir": os.getcwd()}
        never = await c.call("options", name="oneshot")
        assert never["options"]["respawn"] is False

    run_arbiter([make_sleeper(), make_sleeper("oneshot", respawn=False)], body)


def test_our_options_are_listed_only_when_set(run_arbiter, make_sleeper) -> None:
    extras = {
        "flapping.active": True,
        "flapping.attempts": 4,
        "backoff_max": 5.0,
        "respawn": "on-failure",
        "rlimits": {"nofile": 256},
        "custom_options": {"team": "a"},
    }

    async def body(arbiter: Arbiter, c: Any) -> None:
        options = (await c.call("options", name="sleeper"))["options"]
        added = set(options) - set(UPSTREAM_OPTION_KEYS)
        assert added == {
            "flapping.active",
            "flapping.attempts",
            "backoff_max",
            "respawn_mode",
            "rlimit_nofile",
            "team",
        }
        assert options["flapping.attempts"] == 4 and options["flapping.active"] is True
        assert options["respawn"] is True and options["respawn_mode"] == "on-failure"
        got = await c.call("get", name="sleeper", keys=["flapping.attempts", "flapping.window"])
        assert got["options"] == {"flapping.attempts": 4, "flapping.window": 1.0}

    run_arbiter([make_sleeper(**extras)], body)
