"""``options``, ``get``, ``globaloptions`` and ``add`` answered by upstream Circus 0.19's circusd
and by ours for the same config: the same keys with the same JSON types.

The differences kept on purpose: 0.19 lists ``__name__`` (its INI parser's ``"watcher:NAME"``,
which its own ``get`` refuses), our options appear only when set (``rlimit_*`` here), and
``globaloptions`` adds our ``tree_tracking``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from circus.ctl import CircusClient
from circus.ctl.testing.upstream import UpstreamDaemon
from circus.watcher import UPSTREAM_OPTION_KEYS

pytestmark = [pytest.mark.interop, pytest.mark.slow]


def _watchers(tmp_path: Path) -> dict[str, dict[str, Any]]:
    return {
        "plain": {"cmd": "sleep 1000", "graceful_timeout": 2},
        "full": {
            "cmd": "sleep",
            "args": "1000",
            "working_dir": str(tmp_path),
            "respawn": "false",
            "numprocesses": 2,
            "max_age": 100,
            "stop_signal": "QUIT",
            "stdout_stream.class": "FileStream",
            "stdout_stream.filename": str(tmp_path / "out.log"),
            "rlimit_nofile": 100,
            "team": "a",
            "graceful_timeout": 2,
        },
    }


def _answers(endpoint: str) -> dict[str, Any]:
    with CircusClient(endpoint, timeout=10) as client:
        answers = {
            f"options {name}": client.call("options", {"name": name})["options"]
            for name in ("plain", "full")
        }
        keys = ["args", "respawn", "working_dir", "stdout_stream_conf", "env", "max_age"]
        answers["get"] = client.call("get", {"name": "plain", "keys": keys})["options"]
        answers["globaloptions"] = client.call("globaloptions", {})["options"]
        added = client.call(
            "add", {"name": "late", "cmd": "sleep 1000", "start": True, "waiting": True}
        )
        answers["add"] = {k: v for k, v in added.items() if k not in ("time", "id")}
    return answers


def _types(answer: dict[str, Any]) -> dict[str, str]:
    return {key: type(value).__name__ for key, value in answer.items()}


def test_same_keys_and_types_as_upstream(
    upstream_circus: Any, circusd: Any, tmp_path: Path
) -> None:
    watchers = _watchers(tmp_path)
    with UpstreamDaemon(upstream_circus, tmp_path / "upstream", watchers) as upstream:
        theirs = _answers(upstream.endpoint)
    body = "".join(
        f"\n[watcher:{name}]\n" + "".join(f"{k} = {v}\n" for k, v in options.items())
        for name, options in watchers.items()
    )
    ours = _answers(circusd(body).endpoint)

    plain_theirs = dict(theirs["options plain"])
    assert plain_theirs.pop("__name__") == "watcher:plain"
    assert set(plain_theirs) == set(UPSTREAM_OPTION_KEYS)  # the table is 0.19's list
    assert _types(ours["options plain"]) == _types(plain_theirs)
    full_theirs = dict(theirs["options full"])
    full_theirs.pop("__name__")
    full_ours = dict(ours["options full"])
    assert full_ours.pop("rlimit_nofile") == 100
    assert _types(full_ours) == _types(full_theirs)
    for key in ("args", "respawn", "numprocesses", "max_age", "stop_signal", "team", "cmd"):
        assert full_ours[key] == full_theirs[key], key
    assert full_ours["working_dir"] == full_theirs["working_dir"] == str(tmp_path)
    assert full_ours["stdout_stream_conf"] == full_theirs["stdout_stream_conf"]
    assert _types(ours["get"]) == _types(theirs["get"])
    assert {k: v for k, v in ours["get"].items() if k != "working_dir"} == {
        k: v for k, v in theirs["get"].items() if k != "working_dir"
    }
    glob_ours = dict(ours["globaloptions"])
    assert glob_ours.pop("tree_tracking")
    assert _types(glob_ours) == _types(theirs["globaloptions"])
    assert glob_ours["stats_endpoint"] == theirs["globaloptions"]["stats_endpoint"]
    assert set(ours["add"]) == set(theirs["add"]) == {"status", "started", "kept"}
    assert len(ours["add"]["started"]) == len(theirs["add"]["started"]) == 1
