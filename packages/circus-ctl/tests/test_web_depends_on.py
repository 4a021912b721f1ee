"""The dashboard shows each watcher's ``depends_on``: asked once per watcher (``get``), asked
again after a ``set`` (its ``updated`` event), empty for a daemon without it (Circus 0.19)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("tornado", reason="the dashboard needs the web extra")

from circus.ctl.testing import FakeDaemon, Publisher  # noqa: E402
from circus.ctl.web._link import DaemonLink  # noqa: E402
from circus.process.testing import async_wait_until  # noqa: E402

INFO = {"cpu": 1.5, "mem": 0.1, "mem_info1": "4.00M", "age": 2.0, "cmdline": "sleep"}


def _replies(pubsub: str, deps: dict[str, list[str]] | None) -> dict[str, Any]:
    replies: dict[str, Any] = {
        "status": {"statuses": {"web": "active", "db": "active"}},
        "stats": {"infos": {"web": {}, "db": {}}},
        "dstats": {"info": {**INFO, "pid": 999}},
        "globaloptions": {"options": {"pubsub_endpoint": pubsub, "endpoint": "x"}},
        "logs": {"logs": []},
    }
    if deps is not None:

        def get(request: dict[str, Any]) -> dict[str, Any]:
            name = request["properties"]["name"]
            return {"options": {"depends_on": list(deps.get(name, []))}}

        replies["get"] = get
    return replies


def _run(tmp_path: Path, deps: dict[str, list[str]] | None, scenario: Any) -> None:
    async def main() -> None:
        endpoint, pubsub = f"ipc://{tmp_path}/ctrl.sock", f"ipc://{tmp_path}/pub.sock"
        snaps: list[dict[str, Any]] = []

        def publish(message: dict[str, Any]) -> None:
            if message["type"] == "snapshot" and message["connected"]:
                snaps.append({w["name"]: w for w in message["watchers"]})

        with Publisher(pubsub) as pub, FakeDaemon(endpoint, _replies(pubsub, deps)) as fake:
            link = DaemonLink(0, endpoint, publish, interval=0.05, timeout=5.0)
            task = asyncio.get_running_loop().create_task(link.run())
            try:
                await asyncio.wait_for(scenario(fake, pub, snaps), 60)
            finally:
                link.close()
                await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())


def test_depends_on_asked_once_then_again_after_a_set(tmp_path: Path) -> None:
    deps = {"web": ["db"]}

    async def scenario(fake: FakeDaemon, pub: Publisher, snaps: list[Any]) -> None:
        await async_wait_until(lambda: len(snaps) >= 5, 30, "5 snapshots")
        assert snaps[0]["web"]["depends_on"] == ["db"]
        assert snaps[0]["db"]["depends_on"] == []
        assert fake.commands().count("get") == 2, fake.commands()
        deps["web"] = ["db", "cache"]  # a `set web depends_on db,cache`

        async def shown() -> bool:
            # published until seen: the link's SUB may not be connected yet
            pub.publish("watcher.web.updated", {"time": time.time()})
            await asyncio.sleep(0.05)
            return snaps[-1]["web"]["depends_on"] == ["db", "cache"]

        await async_wait_until(shown, 30, "the new depends_on on the page")
        asked = [r["properties"]["name"] for r in fake.requests if r["command"] == "get"]
        assert set(asked[2:]) == {"web"}, asked  # db's was not asked again

    _run(tmp_path, deps, scenario)


def test_a_daemon_without_depends_on_shows_none(tmp_path: Path) -> None:
    async def scenario(fake: FakeDaemon, pub: Publisher, snaps: list[Any]) -> None:
        await async_wait_until(lambda: len(snaps) >= 5, 30, "5 snapshots")
        assert all(s["web"]["depends_on"] == [] for s in snaps)
        assert fake.commands().count("get") == 2, fake.commands()  # once each, not each poll

    _run(tmp_path, None, scenario)


def test_the_page_shows_depends_on() -> None:
    from importlib import resources

    script = (resources.files("circus.ctl.web") / "static" / "app.js").read_text()
    assert "watcher.depends_on" in script and '"requires "' in script
