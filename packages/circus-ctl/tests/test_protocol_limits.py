"""Error reasons quote what the client sent, but never megabytes of it."""

from __future__ import annotations

import json

import pytest
from circus.ctl import protocol
from circus.ctl.errors import ProtocolError


def test_huge_unknown_command_is_quoted_short() -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.decode_request(json.dumps({"command": "x" * 10**6}).encode())
    assert info.value.errno == protocol.Errno.UNKNOWN_COMMAND
    assert len(info.value.reason) < 400
    assert "1000002 characters" in info.value.reason


def test_huge_wrongly_typed_value_is_quoted_short() -> None:
    message = {"command": "incr", "properties": {"name": "w", "nb": "9" * 10**6}}
    with pytest.raises(ProtocolError) as info:
        protocol.decode_request(json.dumps(message).encode())
    assert len(info.value.reason) < 400


def test_short_values_are_quoted_whole() -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.decode_request(b'{"command": "nosuch"}')
    assert info.value.reason == "unknown command: 'nosuch'"


def test_cast_to_nobody_times_out_instead_of_blocking(tmp_path) -> None:
    """A DEALER with no peer cannot queue: the send used to block forever."""
    import asyncio
    import time

    from circus.ctl import AsyncCircusClient, CircusClient
    from circus.ctl.errors import DaemonUnreachable
    from circus.ctl.testing import Publisher

    with Publisher(f"ipc://{tmp_path / 'pub.sock'}") as publisher:
        began = time.monotonic()
        with CircusClient(publisher.endpoint, timeout=1.0) as client:
            for _ in range(3):  # the first may be queued before the handshake is refused
                try:
                    client.cast("list")
                except DaemonUnreachable:
                    break
        assert time.monotonic() - began < 10

        async def main() -> None:
            async with AsyncCircusClient(publisher.endpoint, timeout=1.0) as client:
                for _ in range(3):
                    try:
                        await client.cast("list")
                    except DaemonUnreachable:
                        break

        asyncio.run(main())
        assert time.monotonic() - began < 20


def test_deeply_nested_json_is_an_invalid_json_error() -> None:
    frame = b'{"command": "list", "properties": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ProtocolError) as info:
        protocol.decode_request(frame)
    assert info.value.errno == protocol.Errno.INVALID_JSON


def test_nesting_beyond_the_limit_is_refused_and_within_it_accepted() -> None:
    def nested(depth: int) -> bytes:
        inner = "[" * depth + "]" * depth
        return f'{{"command": "list", "properties": {{"x": {inner}}}, "id": 7}}'.encode()

    with pytest.raises(ProtocolError) as info:
        protocol.decode_request(nested(protocol.MAX_DEPTH))
    assert info.value.errno == protocol.Errno.MESSAGE_ERROR
    assert info.value.request_id == 7  # type: ignore[attr-defined]
    assert "nested deeper" in info.value.reason
    assert protocol.decode_request(nested(protocol.MAX_DEPTH - 3)).command == "list"


@pytest.mark.parametrize(
    "frame",
    [
        b'{"command": "add", "properties": {"name": "\\ud800x", "cmd": "true"}}',
        b'{"command": "add", "properties": {"name": "w", "cmd": "true\\udfff"}}',
        b'{"command": "set", "properties": {"name": "w", "options": {"\\ud83d": 1}}}',
    ],
)
def test_lone_surrogates_are_refused(frame: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.decode_request(frame)
    assert info.value.errno == protocol.Errno.MESSAGE_ERROR
    assert "surrogate" in info.value.reason


def test_a_paired_surrogate_escape_is_ordinary_text() -> None:
    request = protocol.decode_request(
        b'{"command": "status", "properties": {"name": "\\ud83d\\ude00"}}'
    )
    assert request.properties["name"] == "\U0001f600"


def test_error_answers_never_carry_unbounded_text() -> None:
    answer = protocol.error_answer(1, "x" * 10**7, tb="y" * 10**7)
    assert len(answer["reason"]) <= protocol.MAX_REASON + 40
    assert answer["reason"].endswith("(10000000 characters)")
    assert len(answer["tb"]) <= protocol.MAX_TRACEBACK + 40
    assert protocol.error_answer(1, "short")["reason"] == "short"
