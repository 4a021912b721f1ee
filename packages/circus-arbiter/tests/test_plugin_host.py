"""Plugin classes are found by dotted path, upstream alias or entry point; ``Arbiter(plugins=)``
runs each as a watcher of its own."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter import Arbiter, ArbiterError
from circus.arbiter.plugins import CircusPlugin, load_plugin_class
from circus.arbiter.plugins.flapping import Flapping


def test_dotted_paths_and_upstream_aliases() -> None:
    assert load_plugin_class("circus.arbiter.plugins.flapping.Flapping") is Flapping
    assert load_plugin_class("circus.plugins.flapping.Flapping") is Flapping
    assert load_plugin_class("circus.plugins.flapping:Flapping") is Flapping
    statsd = load_plugin_class("circus.plugins._statsd.StatsdEmitter")
    assert statsd is load_plugin_class("circus.plugins.statsd.StatsdEmitter")
    from circus.plugins import CircusPlugin as upstream_base

    assert upstream_base is CircusPlugin
    with pytest.raises(ArbiterError, match="cannot be loaded"):
        load_plugin_class("circus.plugins.nope.Nope")
    with pytest.raises(ArbiterError):
        load_plugin_class("nodots")


def test_entry_point_group(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = tmp_path / "thirdparty_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[circus.plugins]\nmy_flapping = circus.arbiter.plugins.flapping:Flapping\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_plugin_class("my_flapping") is Flapping


RECORDER = textwrap.dedent(
    """
    import os
    from circus.plugins import CircusPlugin

    class Recorder(CircusPlugin):
        name = "recorder"

        def handle_recv(self, data):
            watcher, event, msg = self.split_data(data)
            if event == "spawn":
                watchers = self.call("list")["watchers"]
                with open(self.config["out"], "a") as f:
                    f.write(f"{os.getpid()} {self.config['greeting']} {','.join(watchers)}\\n")
    """
)


def test_python_plugins_run_as_watchers(
    run_arbiter: Any, make_sleeper: Any, waiter: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """``Arbiter(plugins=[...])``: each plugin is a singleton watcher named ``name``, whose
    process gets its options and talks to the daemon; ``active = false`` makes none."""
    (tmp_path / "recorder_plugin.py").write_text(RECORDER)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    out = tmp_path / "out.txt"

    async def body(arbiter: Arbiter, c: Any) -> Any:
        assert (await c.call("list"))["watchers"] == ["rec", "sleeper"]
        rec = arbiter.get_watcher("rec")
        assert rec.singleton and rec.priority == 1
        await waiter(lambda: rec.pids)

        def recorded() -> bool:
            return out.exists() and bool(out.read_text())

        for _ in range(40):  # the plugin's SUB socket joins asynchronously: repeat the trigger
            await c.call("incr", name="sleeper", waiting=True)
            try:
                await waiter(recorded, 0.5)
                break
            except AssertionError:
                continue
        pid, greeting, watchers = out.read_text().splitlines()[0].split()
        assert int(pid) in rec.pids and greeting == "hi" and watchers == "rec,sleeper"

    run_arbiter(
        [make_sleeper()],
        body,
        plugins=[
            {"name": "rec", "use": "recorder_plugin.Recorder", "greeting": "hi", "out": str(out)},
            {"name": "off", "use": "recorder_plugin.Recorder", "active": "false"},
        ],
    )
