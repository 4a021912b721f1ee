"""diff_configs: what reloadconfig has to do."""

from __future__ import annotations

import textwrap
from pathlib import Path

from circus.arbiter.config import Changes, CircusConfig, diff_configs, load_config


def load(tmp_path: Path, text: str, name: str) -> CircusConfig:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return load_config(path, environ={})


OLD = """
[circus]
check_delay = 5

[watcher:keep]
cmd = keep

[watcher:Resize]
cmd = resize
numprocesses = 2

[watcher:change]
cmd = change --old

[watcher:gone]
cmd = gone

[watcher:web]
cmd = serve $(circus.sockets.web)
use_sockets = true

[watcher:other_web]
cmd = serve $(circus.sockets.other)
use_sockets = true

[socket:web]
port = 8000

[socket:other]
port = 8001

[socket:old]
port = 8002

[plugin:same]
use = a.Same

[plugin:changed]
use = a.Changed
x = 1

[plugin:removed]
use = a.Removed
"""


def test_identical_configs(tmp_path: Path) -> None:
    diff = diff_configs(load(tmp_path, OLD, "a.ini"), load(tmp_path, OLD, "b.ini"))
    assert not diff
    assert diff.circus_changed is False
    assert diff.watchers == Changes(
        unchanged=("Resize", "change", "gone", "keep", "other_web", "web")
    )
    assert diff.sockets.unchanged == ("old", "other", "web")
    assert diff.plugins.unchanged == ("changed", "removed", "same")
    assert diff.resized == ()


def test_every_kind_of_change(tmp_path: Path) -> None:
    new = (
        OLD.replace("numprocesses = 2", "numprocesses = 4")
        .replace("change --old", "change --new")
        .replace("[watcher:gone]\ncmd = gone\n", "[watcher:added]\ncmd = added\n")
        .replace("port = 8000", "port = 9000")
        .replace("[socket:old]\nport = 8002\n", "[socket:new]\nport = 8003\n")
        .replace("x = 1", "x = 2")
        .replace("[plugin:removed]\nuse = a.Removed\n", "[plugin:added]\nuse = a.Added\n")
    )
    diff = diff_configs(load(tmp_path, OLD, "a.ini"), load(tmp_path, new, "b.ini"))
    assert diff
    assert diff.circus_changed is False
    assert diff.watchers == Changes(
        added=("added",),
        removed=("gone",),
        changed=("Resize", "change", "web"),  # web: its socket changed
        unchanged=("keep", "other_web"),
    )
    assert diff.resized == ("Resize",)
    assert diff.sockets == Changes(
        added=("new",), removed=("old",), changed=("web",), unchanged=("other",)
    )
    assert diff.plugins == Changes(
        added=("added",), removed=("removed",), changed=("changed",), unchanged=("same",)
    )


def test_circus_section_and_env_changes(tmp_path: Path) -> None:
    new = OLD.replace("check_delay = 5", "check_delay = 1") + "\n[env:keep]\nA = 1\n"
    diff = diff_configs(load(tmp_path, OLD, "a.ini"), load(tmp_path, new, "b.ini"))
    assert diff.circus_changed is True
    assert diff.watchers.changed == ("keep",)
    assert diff.resized == ()


def test_renamed_case_is_the_same_watcher(tmp_path: Path) -> None:
    new = OLD.replace("[watcher:keep]", "[watcher:KEEP]")
    diff = diff_configs(load(tmp_path, OLD, "a.ini"), load(tmp_path, new, "b.ini"))
    assert diff.watchers.added == ()
    assert diff.watchers.removed == ()
    assert "KEEP" in diff.watchers.changed  # the name option differs


def test_numprocesses_and_socket_change_is_not_a_resize(tmp_path: Path) -> None:
    new = OLD.replace("port = 8000", "port = 9000").replace(
        "use_sockets = true\n\n[watcher:other_web]",
        "use_sockets = true\nnumprocesses = 3\n\n[watcher:other_web]",
    )
    diff = diff_configs(load(tmp_path, OLD, "a.ini"), load(tmp_path, new, "b.ini"))
    assert "web" in diff.watchers.changed
    assert diff.resized == ()


def _one(tmp_path: Path, name: str, body: str) -> CircusConfig:
    return load(tmp_path, "[watcher:app]\ncmd = app\n" + body, name)


def test_what_a_rolling_reload_can_apply_is_rollable(tmp_path: Path) -> None:
    ready = "readiness = notify\n"
    old = _one(tmp_path, "old.ini", ready + "args = --v1\nnumprocesses = 2\n")
    rollable = {
        "cmd/args/env": "args = --v2\nnumprocesses = 3\n[env:app]\nA = 1\n",
        "probe changed": "args = --v1\nnumprocesses = 2\nreadiness = tcp://127.0.0.1:1\n",
    }
    for index, body in enumerate(rollable.values()):
        new = _one(tmp_path, f"r{index}.ini", body if "readiness" in body else ready + body)
        diff = diff_configs(old, new)
        assert diff.rollable == ("app",) and diff.watchers.changed == ("app",), body
    kept_stop_start = [
        "args = --v2\nnumprocesses = 2\n",  # readiness dropped
        ready + "args = --v2\npriority = 3\n",  # priority: not something set applies
        ready + "args = --v2\nstdout_stream.class = StdoutStream\n",  # streams
        ready + "args = --v2\nsomething = free-form\n",  # a free-form option
    ]
    for index, body in enumerate(kept_stop_start):
        diff = diff_configs(old, _one(tmp_path, f"s{index}.ini", body))
        assert diff.rollable == () and diff.watchers.changed == ("app",), body
    # without readiness before, a new cmd is a stop/start as ever
    plain = _one(tmp_path, "plain.ini", "args = --v1\n")
    assert diff_configs(plain, _one(tmp_path, "plain2.ini", "args = --v2\n")).rollable == ()
