"""Arbiter-level behaviour: whole restart, discovery, endpoint owner, start failures."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from circus.arbiter import Arbiter, ArbiterError, get_arbiter


def test_restart_without_name_restarts_every_watcher(run_arbiter, make_sleeper) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        before = set(arbiter.get_watcher("a").pids) | set(arbiter.get_watcher("b").pids)
        assert (await c.call("restart", waiting=True))["status"] == "ok"
        after = set(arbiter.get_watcher("a").pids) | set(arbiter.get_watcher("b").pids)
        assert len(after) == 2 and not before & after
        # without a config file there is nothing to reload
        answer = await c.call("reloadconfig", waiting=True)
        assert answer["status"] == "error" and "config file" in answer["reason"]

    run_arbiter([make_sleeper("a"), make_sleeper("b")], body)


def test_multicast_discovery_answers_with_the_control_endpoint(run_arbiter, endpoints) -> None:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()

    async def body(arbiter: Arbiter, c: Any) -> None:
        assert (await c.call("globaloptions"))["options"]["multicast_endpoint"].endswith(str(port))
        if arbiter.channels.discovery is None:
            pytest.skip("multicast unavailable here")
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        client.setblocking(False)
        try:
            client.sendto(b"circus?", ("127.0.0.1", port))
            loop = asyncio.get_running_loop()
            data = await asyncio.wait_for(loop.sock_recv(client, 1024), 5)
        finally:
            client.close()
        assert json.loads(data) == {"endpoint": endpoints["endpoint"]}

    run_arbiter([], body, multicast_endpoint=f"udp://239.255.10.10:{port}")


def test_discovery_is_off_by_default(run_arbiter) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        assert arbiter.channels.discovery is None
        assert (await c.call("globaloptions"))["options"]["multicast_endpoint"] == ""

    run_arbiter([], body)


def test_endpoint_owner_does_not_restrict_circusds_own_user(run_arbiter, make_sleeper) -> None:
    # circusd's user is admin whoever owns the endpoint: what the owner may do is in
    # test_authz.py and tests/security/test_authorization.py
    import os
    import pwd

    me = pwd.getpwuid(os.getuid()).pw_name

    async def body(arbiter: Arbiter, c: Any) -> None:
        spec = make_sleeper("x")
        ok = await c.call("add", name="x", cmd=spec["cmd"])
        assert ok["status"] == "ok", ok

    run_arbiter([], body, endpoint_owner=me)


def test_a_busy_endpoint_fails_start_cleanly(endpoints) -> None:
    async def main() -> None:
        first = Arbiter([], **endpoints)
        await first.start_async()
        try:
            second = Arbiter([], endpoint="not-an-endpoint", pubsub_endpoint="inproc://x")
            with pytest.raises(ArbiterError, match="cannot bind"):
                await second.start_async()
        finally:
            await first.stop()

    asyncio.run(main())


def test_get_arbiter_threaded(endpoints, make_sleeper) -> None:
    from circus.ctl import CircusClient

    arbiter = get_arbiter(
        [make_sleeper()],
        controller=endpoints["endpoint"],
        pubsub_endpoint=endpoints["pubsub_endpoint"],
        background=True,
    )
    arbiter.start()
    try:
        with CircusClient(endpoints["endpoint"], timeout=10) as client:
            assert client.call("status")["statuses"] == {"sleeper": "active"}
            assert client.call("numprocesses")["numprocesses"] == 1
    finally:
        arbiter.stop()
    assert arbiter.get_watcher("sleeper").pids == []


def test_python_api_for_embedding(run_arbiter, make_sleeper) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        spec = make_sleeper("extra")
        watcher = await arbiter.add_watcher("extra", spec["cmd"], start=True, graceful_timeout=5)
        assert arbiter.numwatchers() == 2 and len(watcher.pids) == 1
        assert [w.name for w in arbiter.iter_watchers()] == ["extra", "sleeper"]
        assert arbiter.statuses() == {"extra": "active", "sleeper": "active"}
        before = set(watcher.pids)
        await arbiter.reload()
        assert not before & set(watcher.pids)
        await arbiter.rm_watcher("extra")
        assert arbiter.numwatchers() == 1 and watcher.pids == []
        with pytest.raises(ArbiterError, match="program extra not found"):
            arbiter.get_watcher("extra")

    run_arbiter([make_sleeper()], body)
