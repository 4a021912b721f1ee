"""The control channel answers every message, malformed or not, and never dies."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import zmq
import zmq.asyncio
from circus.arbiter import Arbiter


async def _raw(endpoint: str, frames: list[bytes], expect_answer: bool = True) -> Any:
    ctx = zmq.asyncio.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.linger = 0
    try:
        sock.connect(endpoint)
        await sock.send_multipart(frames)
        if not expect_answer:
            return await sock.poll(300)
        return await asyncio.wait_for(sock.recv_multipart(), 5)
    finally:
        sock.close()
        ctx.term()


MALFORMED = [
    ([b"not json"], 1, "json invalid"),
    ([b"\xff\xfe"], 1, "json invalid"),
    ([b"[1, 2, 3]"], 3, "not a JSON object"),
    ([b'{"id": "x"}'], 3, "'command' is missing"),
    ([b'{"command": 12, "id": "x"}'], 3, "not a string"),
    ([b'{"command": "nosuch", "id": "x"}'], 2, "unknown command"),
    ([b'{"command": "list", "properties": [1], "id": "x"}'], 3, "properties"),
    ([b'{"command": "incr", "properties": {}, "id": "x"}'], 3, "'name' is missing"),
    ([b'{"command": "incr", "properties": {"name": "s", "nb": "a"}, "id": "x"}'], 3, "nb"),
    ([b'{"command": "get", "properties": {"name": "s", "keys": "k"}, "id": "x"}'], 3, "keys"),
    ([b"a", b"b"], 3, "expected one JSON frame"),
    ([b"a", b"b", b"c"], 3, "expected one JSON frame"),
    ([b""], 1, "json invalid"),
    ([b'{"command": "listen", "id": "x"}'], 3, "pub/sub"),
]


def test_malformed_messages_are_answered_and_daemon_survives(run_arbiter, endpoints) -> None:
    async def body(arbiter: Arbiter, client: Any) -> None:
        for frames, errno, reason in MALFORMED:
            answer = json.loads((await _raw(endpoints["endpoint"], frames))[-1])
            assert answer["status"] == "error", frames
            assert answer["errno"] == errno, (frames, answer)
            assert reason in answer["reason"], (frames, answer)
            assert "time" in answer and "tb" in answer
        # still serving, immediately
        assert (await client.call("numwatchers"))["numwatchers"] == 0

    run_arbiter([], body)


def test_id_is_echoed_verbatim_and_command_is_case_insensitive(run_arbiter, endpoints) -> None:
    async def body(arbiter: Arbiter, client: Any) -> None:
        for msg_id in (42, None, "abc", [1, "x"], {"k": 1}):
            payload = json.dumps({"command": "LIST", "id": msg_id}).encode()
            answer = json.loads((await _raw(endpoints["endpoint"], [payload]))[0])
            assert answer["status"] == "ok"
            assert answer["id"] == msg_id
            assert answer["watchers"] == []

    run_arbiter([], body)


def test_req_envelope_is_answered_with_the_envelope(run_arbiter, endpoints) -> None:
    async def body(arbiter: Arbiter, client: Any) -> None:
        payload = json.dumps({"command": "numwatchers", "id": 1}).encode()
        frames = await _raw(endpoints["endpoint"], [b"", payload])
        assert frames[0] == b""
        assert json.loads(frames[1])["numwatchers"] == 0

    run_arbiter([], body)


def test_cast_runs_without_answer(run_arbiter, endpoints, make_sleeper, waiter) -> None:
    async def body(arbiter: Arbiter, client: Any) -> None:
        watcher = arbiter.get_watcher("sleeper")
        payload = json.dumps(
            {"command": "incr", "properties": {"name": "sleeper"}, "msg_type": "cast"}
        ).encode()
        assert await _raw(endpoints["endpoint"], [payload], expect_answer=False) == 0
        await waiter(lambda: len(watcher.pids) == 2)
        # a failing cast is not answered either, and breaks nothing
        bad = json.dumps({"command": "nosuch", "msg_type": "cast"}).encode()
        assert await _raw(endpoints["endpoint"], [bad], expect_answer=False) == 0
        assert (await client.call("numprocesses"))["numprocesses"] == 2

    run_arbiter([make_sleeper()], body)


def test_control_ipc_socket_is_owner_only(run_arbiter, endpoints) -> None:
    import os
    import stat

    async def body(arbiter: Arbiter, client: Any) -> None:
        for key in ("endpoint", "pubsub_endpoint"):
            mode = os.stat(endpoints[key][len("ipc://") :]).st_mode
            assert stat.S_IMODE(mode) == 0o600, oct(mode)

    run_arbiter([], body)
