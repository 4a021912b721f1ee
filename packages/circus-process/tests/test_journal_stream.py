"""JournalStream against real datagram sockets standing in for journald and syslog."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from circus.process import StreamError
from circus.process.streams import JournalStream, load_stream


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "journal.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(10)
    try:
        yield sock, path
    finally:
        sock.close()


def parse_journal(record: bytes) -> dict[str, bytes]:
    """The fields of one native-protocol datagram (both the text and the binary form)."""
    fields: dict[str, bytes] = {}
    pos = 0
    while pos < len(record):
        end = record.index(b"\n", pos)
        line = record[pos:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            pos = end + 1
        else:
            key = line
            (size,) = struct.unpack("<Q", record[end + 1 : end + 9])
            value = record[end + 9 : end + 9 + size]
            assert record[end + 9 + size : end + 10 + size] == b"\n"
            pos = end + 10 + size
        fields[key.decode()] = value
    return fields


def test_each_line_is_one_journal_record_with_its_fields(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    stream = load_stream(
        "JournalStream", target="journal", journal_socket=path, identifier="web",
        priority="notice",
    )  # fmt: skip
    stream.open()
    try:
        stream({"data": b"first line\nsecond ", "pid": 4242, "name": "stdout"})
        stream({"data": b"half\n", "pid": 4242, "name": "stdout"})
        stream({"data": b"oops\n", "pid": 4243, "name": "stderr"})
        records = [parse_journal(sock.recv(65536)) for _ in range(3)]
    finally:
        stream.close()
    assert [r["MESSAGE"] for r in records] == [b"first line", b"second half", b"oops"]
    assert records[0]["PRIORITY"] == b"5" and records[2]["PRIORITY"] == b"3"
    assert records[0]["SYSLOG_IDENTIFIER"] == b"web" and records[0]["SYSLOG_PID"] == b"4242"
    assert records[2]["CIRCUS_STREAM"] == b"stderr" and records[2]["SYSLOG_FACILITY"] == b"3"


def test_a_message_with_odd_bytes_uses_the_binary_field_form(
    receiver: tuple[socket.socket, str],
) -> None:
    sock, path = receiver
    stream = JournalStream(target="journal", journal_socket=path)
    stream.open()
    try:
        stream({"data": b"tab\t and nul \x00 and \xff\n", "pid": 1, "name": "stdout"})
        stream.end(1, "stdout")
        stream({"data": b"no newline at exit", "pid": 2, "name": "stdout"})
        stream.end(2, "stdout")
        first, second = (parse_journal(sock.recv(65536)) for _ in range(2))
    finally:
        stream.close()
    assert first["MESSAGE"] == b"tab\t and nul \x00 and \xff"
    assert second["MESSAGE"] == b"no newline at exit"


def test_syslog_form_when_there_is_no_journal(
    receiver: tuple[socket.socket, str], tmp_path: Path
) -> None:
    sock, path = receiver
    stream = JournalStream(
        journal_socket=str(tmp_path / "absent"), syslog_socket=path, identifier="app",
        facility="local3",
    )  # fmt: skip
    stream.open()
    try:
        stream({"data": b"hello\n", "pid": 77, "name": "stderr"})
        message = sock.recv(65536)
    finally:
        stream.close()
    # <PRI> = local3 (19) * 8 + err (3) = 155
    assert message.startswith(b"<155>") and message.endswith(b" app[77]: hello")


def test_a_slow_receiver_never_blocks_the_writer_lines_are_counted(
    receiver: tuple[socket.socket, str],
) -> None:
    _, path = receiver  # never read: its buffer fills up
    stream = JournalStream(target="journal", journal_socket=path)
    stream.open()
    try:
        line = b"x" * 1000 + b"\n"
        began = time.monotonic()
        for _ in range(5000):  # ~5 MB, far more than a datagram socket's buffer
            stream({"data": line, "pid": 9, "name": "stdout"})
        spent = time.monotonic() - began
        assert stream.lines_dropped > 0
    finally:
        stream.close()
    assert spent < 30  # no send waited on the receiver (a blocking one would hang forever)


def test_a_receiver_that_goes_away_drops_lines_and_one_that_comes_back_gets_them(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "journal.sock")
    first = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    first.bind(path)
    stream = JournalStream(target="journal", journal_socket=path)
    stream.open()
    try:
        first.close()
        Path(path).unlink()
        stream({"data": b"lost\n", "pid": 1, "name": "stdout"})
        assert stream.lines_dropped == 1
        again = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        again.bind(path)
        again.settimeout(10)
        try:
            stream({"data": b"kept\n", "pid": 1, "name": "stdout"})
            assert parse_journal(again.recv(65536))["MESSAGE"] == b"kept"
        finally:
            again.close()
    finally:
        stream.close()


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"target": "kafka"}, "auto, journal or syslog"),
        ({"priority": "loud"}, "integer"),
        ({"priority": 9}, "syslog level"),
        ({"facility": "nowhere"}, "integer"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict[str, object], words: str) -> None:
    with pytest.raises(StreamError, match=words):
        JournalStream(**options)


def test_a_missing_receiver_is_an_error_at_open(tmp_path: Path) -> None:
    stream = JournalStream(target="syslog", syslog_socket=str(tmp_path / "none"))
    with pytest.raises(StreamError, match="syslog is not listening"):
        stream.open()
