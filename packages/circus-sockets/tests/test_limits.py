"""Socket numbers have ceilings (``circus.sockets._options.CEILINGS``): refused with a short
message before any fd is opened."""

from __future__ import annotations

import os

import pytest
from circus.sockets import CircusSocket, SocketError


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"backlog": 2**40}, "backlog must be between 0 and 1000000 (its ceiling)"),
        ({"backlog": "1000001"}, "backlog must be between 0 and 1000000 (its ceiling)"),
        ({"proto": 2**70}, "proto must be between 0 and 65535 (its ceiling)"),
        ({"proto": "99999999999"}, "proto must be between 0 and 65535 (its ceiling)"),
        ({"port": 10**30}, "port must be between 0 and 65535 (its ceiling)"),
    ],
)
def test_numbers_above_their_ceiling_are_refused(options: dict[str, object], words: str) -> None:
    before = _open_fds()
    with pytest.raises(SocketError) as info:
        CircusSocket("big", host="127.0.0.1", **{"port": 0, **options})  # type: ignore[arg-type]
    assert words in str(info.value)
    assert _open_fds() == before


def test_echoed_value_is_cut_short() -> None:
    with pytest.raises(SocketError) as info:
        CircusSocket("big", host="127.0.0.1", port=0, backlog="9" * 100_000)
    assert len(str(info.value)) < 300
    with pytest.raises(SocketError) as info:
        CircusSocket("big", host="127.0.0.1", port=0, backlog=10**5000)
    assert len(str(info.value)) < 300


def test_values_at_the_ceiling_are_accepted() -> None:
    sock = CircusSocket("ok", host="127.0.0.1", port=0, backlog=1_000_000)
    try:
        sock.bind_and_listen()
        assert sock.port > 0 and sock.backlog == 1_000_000
    finally:
        sock.close()
