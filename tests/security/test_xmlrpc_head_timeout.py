"""Slowloris on Supervisor's control API: a client that sends its request head a byte at a
time (or nothing at all) holds one of the few connection slots. The head must be whole
within ``HEAD_TIMEOUT`` (30 s) of the connection, whatever trickles in meanwhile; only a
kept-alive connection between two requests may stay idle longer (``IDLE_TIMEOUT``).

The server runs in the test's process, with ``HEAD_TIMEOUT`` lowered so that the test does
not last 30 s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from circus.arbiter.supervisor import _http
from circus.arbiter.supervisor._http import HttpServerSpec, RpcHttpServer

SHORT = 0.5
BOUND = 20.0  # what the old code would have allowed, at least, is 120 s
REQUEST = b"POST /RPC2 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"


def test_the_limit_is_30_seconds() -> None:
    assert _http.HEAD_TIMEOUT == 30.0


async def _answer(body: bytes, peer: Any) -> bytes:
    return b"<ok/>"


def _with_server(
    monkeypatch: pytest.MonkeyPatch,
    scenario: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[Any]],
) -> Any:
    monkeypatch.setattr(_http, "HEAD_TIMEOUT", SHORT)

    async def main() -> Any:
        server = RpcHttpServer(HttpServerSpec(kind="inet", host="127.0.0.1", port=0), _answer)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            try:
                return await scenario(reader, writer)
            finally:
                writer.close()
        finally:
            await server.close()

    return asyncio.run(main())


async def _closed_by_server(reader: asyncio.StreamReader, writer: Any, trickle: bool) -> bool:
    """Whether the server ends the connection within BOUND s while we trickle a head."""
    if trickle:
        writer.write(b"POST /RPC2 HTTP/1.1\r\nX-Slow: ")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    while loop.time() < deadline:
        try:
            if trickle:
                writer.write(b"a")
                await writer.drain()
            if await asyncio.wait_for(reader.read(1), 0.05) == b"":
                return True
        except TimeoutError:
            continue
        except ConnectionError:
            return True
    return False


def test_a_trickled_head_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = _with_server(monkeypatch, lambda r, w: _closed_by_server(r, w, trickle=True))
    assert closed, f"a head trickled for {BOUND} s still held its connection"


def test_a_silent_connection_is_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    closed = _with_server(monkeypatch, lambda r, w: _closed_by_server(r, w, trickle=False))
    assert closed, f"a connection silent for {BOUND} s was kept"


def test_a_kept_alive_connection_may_idle_longer_than_a_head(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def twice(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> list[bytes]:
        answers = []
        for turn in range(2):
            if turn:
                await asyncio.sleep(2 * SHORT)  # idle between requests, not a head in progress
            writer.write(REQUEST)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), BOUND)
            answers.append(head.split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(len(b"<ok/>")), BOUND)
        return answers

    assert _with_server(monkeypatch, twice) == [b"HTTP/1.1 200 OK"] * 2
