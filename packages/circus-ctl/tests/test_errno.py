"""The protocol's error numbers come from one table, ``circus.ctl.protocol.Errno``."""

from __future__ import annotations

import pytest
from circus.ctl import CallError, ProtocolError, protocol
from circus.ctl.protocol import Errno

BAD_REQUESTS = [
    (b"not json", Errno.INVALID_JSON),
    (b"[1]", Errno.MESSAGE_ERROR),
    (b'{"id": 1}', Errno.MESSAGE_ERROR),
    (b'{"command": 3}', Errno.MESSAGE_ERROR),
    (b'{"command": "nosuch"}', Errno.UNKNOWN_COMMAND),
    (b'{"command": "list", "properties": [1]}', Errno.MESSAGE_ERROR),
    (b'{"command": "incr", "properties": {}}', Errno.MESSAGE_ERROR),
    (b'{"command": "incr", "properties": {"name": "w", "nb": "x"}}', Errno.MESSAGE_ERROR),
    (b'{"command": "listen"}', Errno.MESSAGE_ERROR),
    (b'{"command": ["list"]}', Errno.MESSAGE_ERROR),
]


def test_the_numbers_are_circus_0_19s() -> None:
    assert {e.name: int(e) for e in Errno} == {
        "NOT_SPECIFIED": 0,
        "INVALID_JSON": 1,
        "UNKNOWN_COMMAND": 2,
        "MESSAGE_ERROR": 3,
        "OS_ERROR": 4,
        "COMMAND_ERROR": 5,
        "BAD_MSG_DATA_ERROR": 6,
    }


@pytest.mark.parametrize(("payload", "errno"), BAD_REQUESTS)
def test_every_refusal_names_a_member_of_the_table(payload: bytes, errno: Errno) -> None:
    with pytest.raises(ProtocolError) as info:
        protocol.decode_request(payload)
    assert type(info.value.errno) is Errno
    assert info.value.errno is errno


def test_defaults_are_members_of_the_table() -> None:
    assert ProtocolError("bad").errno is Errno.MESSAGE_ERROR
    assert CallError({"status": "error", "reason": "r"}).errno is Errno.NOT_SPECIFIED
    assert CallError({"status": "error", "errno": "x"}).errno is Errno.NOT_SPECIFIED
