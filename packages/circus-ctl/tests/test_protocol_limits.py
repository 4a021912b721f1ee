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
