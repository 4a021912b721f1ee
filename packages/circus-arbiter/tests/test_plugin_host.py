"""Plugin classes are found by dotted path, upstream alias or entry point, and run in-process."""

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
    from circus.plugins import CircusPlugin

    class Recorder(CircusPlugin):
        name = "recorder"
        instances = []

        def __init__(self, *args, **config):
            super().__init__(*args, **config)
            self.events = []
            self.watchers = None
            self.stopped = False
            Recorder.instances.append(self)

        def handle_init(self):
            self.inited = True

        def handle_recv(self, data):
            watcher, event, msg = self.split_data(data)
            self.events.append((watcher, event, self.load_message(msg)))
            if event == "spawn" and self.watchers is None:
                # a blocking call from the plugin's own thread: the daemon still answers
                self.watchers = self.call("list")["watchers"]

        def handle_stop(self):
            self.stopped = True
    """
)


def test_custom_plugin_runs_in_process(
    run_arbiter: Any, make_sleeper: Any, waiter: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    (tmp_path / "recorder_plugin.py").write_text(RECORDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    import recorder_plugin

    async def body(arbiter: Arbiter, c: Any) -> Any:
        await waiter(lambda: recorder_plugin.Recorder.instances)
        plugin = recorder_plugin.Recorder.instances[0]
        await waiter(lambda: plugin.running)
        assert plugin.config == {"greeting": "hi"}
        # events published after the plugin's SUB socket joined reach it
        # (the SUB socket joins asynchronously: retry the trigger a few times)
        for _ in range(20):
            await c.call("incr", name="sleeper", waiting=True)
            try:
                await waiter(lambda: plugin.watchers is not None, 0.5)
                break
            except AssertionError:
                continue
        assert plugin.watchers == ["sleeper"]
        assert ("sleeper", "spawn") in [(w, e) for w, e, _ in plugin.events]
        return plugin

    plugin = run_arbiter(
        [make_sleeper()],
        body,
        plugins=[{"name": "rec", "use": "recorder_plugin.Recorder", "greeting": "hi"}],
    )
    assert plugin.inited and plugin.stopped and not plugin.running
