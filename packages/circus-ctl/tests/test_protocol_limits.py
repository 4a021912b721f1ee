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
