"""Hostile requests to a real arbiter: an error answer, nothing changed, the daemon serving."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import zmq
import zmq.asyncio
from circus.arbiter import Arbiter


async def _ask(sock: zmq.asyncio.Socket, payload: bytes) -> dict[str, Any]:
    await sock.send(payload)
    return json.loads(await sock.recv())


def _run(run_arbiter: Any, make_sleeper: Any, body: Any) -> Any:
    async def wrapped(arbiter: Arbiter, client: Any) -> Any:
        ctx = zmq.asyncio.Context()  # not the global instance: its descriptors would stay open
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.rcvtimeo = 30_000
        sock.connect(arbiter.endpoint)
        try:
            return await body(arbiter, sock)
        finally:
            sock.close()
            ctx.term()

    return run_arbiter([make_sleeper("w")], wrapped)


def test_a_lone_surrogate_name_creates_nothing(run_arbiter: Any, make_sleeper: Any) -> None:
    async def body(arbiter: Arbiter, sock: zmq.asyncio.Socket) -> None:
        answer = await _ask(
            sock, b'{"command": "add", "properties": {"name": "\\ud800x", "cmd": "true"}, "id": 1}'
        )
        assert answer["status"] == "error" and answer["errno"] == 3
        listed = await _ask(sock, b'{"command": "list", "properties": {}, "id": 2}')
        assert listed["watchers"] == ["w"]

    _run(run_arbiter, make_sleeper, body)


def test_huge_names_are_neither_echoed_nor_matched(run_arbiter: Any, make_sleeper: Any) -> None:
    async def body(arbiter: Arbiter, sock: zmq.asyncio.Socket) -> None:
        for command in ("stop", "status", "add"):
            props = {"name": "x" * 10**6, "cmd": "true"}
            raw = json.dumps({"command": command, "properties": props, "id": 3}).encode()
            began = time.monotonic()
            answer = await _ask(sock, raw)
            assert answer["status"] == "error", (command, answer)
            assert len(json.dumps(answer)) < 2000
            assert time.monotonic() - began < 10
        listed = await _ask(sock, b'{"command": "list", "properties": {}, "id": 4}')
        assert listed["watchers"] == ["w"]

    _run(run_arbiter, make_sleeper, body)


@pytest.mark.parametrize("pattern", ["(w+)+x", "(w|ww)*x", "(w*)*x", ".*w.*w.*w.*x"])
def test_backtracking_regexes_are_refused_at_once(
    run_arbiter: Any, make_sleeper: Any, pattern: str
) -> None:
    """Each of these takes minutes against a 40-character name; refused without matching."""

    async def body(arbiter: Arbiter, sock: zmq.asyncio.Socket) -> None:
        await arbiter.add_watcher("w" * 40, "sleep 60")
        props = {"name": pattern, "match": "regex"}
        raw = json.dumps({"command": "stop", "properties": props, "id": 5}).encode()
        answer = await _ask(sock, raw)
        assert answer["status"] == "error" and answer["errno"] == 3, answer
        assert await _ask(sock, b'{"command": "list", "properties": {}, "id": 6}')

    _run(run_arbiter, make_sleeper, body)


def test_plain_regexes_still_match(run_arbiter: Any, make_sleeper: Any) -> None:
    async def body(arbiter: Arbiter, sock: zmq.asyncio.Socket) -> None:
        props = {"name": "^w$|^nothing", "match": "regex", "waiting": True}
        raw = json.dumps({"command": "stop", "properties": props, "id": 7}).encode()
        assert (await _ask(sock, raw))["status"] == "ok"
        assert arbiter.get_watcher("w").status() == "stopped"

    _run(run_arbiter, make_sleeper, body)


def test_deep_nesting_is_answered(run_arbiter: Any, make_sleeper: Any) -> None:
    async def body(arbiter: Arbiter, sock: zmq.asyncio.Socket) -> None:
        frame = b'{"command": "list", "properties": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        answer = await _ask(sock, frame)
        assert answer["status"] == "error" and answer["errno"] == 1
        assert (await _ask(sock, b'{"command": "list", "id": 8}'))["watchers"] == ["w"]

    _run(run_arbiter, make_sleeper, body)
