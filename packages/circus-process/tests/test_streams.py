"""Stream classes: files with size/time rotation, reopen, prefixes, console, queue, loading."""

from __future__ import annotations

import os
import re
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from circus.process import StreamError
from circus.process.streams import (
    FancyStdoutStream,
    FileStream,
    LineFramer,
    QueueStream,
    StdoutStream,
    Stream,
    TimedRotatingFileStream,
    WatchedFileStream,
    load_stream,
)

PREFIX = re.compile(rb"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[(\d+)\] \| (.*)$")


def chunk(data: bytes, pid: int = 42, name: str = "stdout") -> dict:
    return {"data": data, "pid": pid, "name": name}


def test_file_stream_appends_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    path.write_bytes(b"existing\n")
    stream = FileStream(str(path))
    stream(chunk(b"a\xffb"))
    stream(chunk(b"c\n"))
    stream.close()
    assert path.read_bytes() == b"existing\na\xffbc\n"


def test_file_stream_without_filename_uses_a_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    stream = FileStream()
    assert Path(stream.filename).parent == tmp_path
    try:
        stream(chunk(b"x"))
        stream.close()
        assert Path(stream.filename).read_bytes() == b"x"
    finally:
        os.unlink(stream.filename)


def test_file_stream_size_rotation_with_backups(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    stream = FileStream(str(path), max_bytes="10", backup_count="2")
    for i in range(5):
        stream(chunk(f"line-{i}\n".encode()))  # 7 bytes each: one per file
    stream.close()
    assert path.read_bytes() == b"line-4\n"
    assert (tmp_path / "out.log.1").read_bytes() == b"line-3\n"
    assert (tmp_path / "out.log.2").read_bytes() == b"line-2\n"
    assert not (tmp_path / "out.log.3").exists()


def test_file_stream_rotation_without_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    stream = FileStream(str(path), max_bytes=10)
    stream(chunk(b"123456\n"))
    stream(chunk(b"abcdef\n"))
    stream.close()
    assert path.read_bytes() == b"abcdef\n"
    assert not (tmp_path / "out.log.1").exists()


def test_time_format_prefixes_each_line_and_joins_split_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    stream = FileStream(str(path), time_format="%Y-%m-%d %H:%M:%S")
    stream(chunk(b"first half of a li"))
    stream(chunk(b"ne\nsecond\nthi", pid=7, name="stderr"))
    stream(chunk(b"ne\nsecond\nthi"))
    stream(chunk(b"rd\n", pid=7, name="stderr"))
    stream.end(42, "stdout")  # EOF: the partial "thi" is written as a line
    stream.close()
    lines = [PREFIX.match(line).groups() for line in path.read_bytes().splitlines()]
    assert lines == [
        (b"7", b"ne"),
        (b"7", b"second"),
        (b"42", b"first half of a line"),
        (b"42", b"second"),
        (b"7", b"third"),
        (b"42", b"thi"),
    ]


def test_watched_file_stream_reopens_after_move_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    stream = WatchedFileStream(str(path))
    stream(chunk(b"one\n"))
    os.rename(path, tmp_path / "out.log.old")
    stream(chunk(b"two\n"))
    os.unlink(path)
    stream(chunk(b"three\n"))
    stream.close()
    assert (tmp_path / "out.log.old").read_bytes() == b"one\n"
    assert path.read_bytes() == b"three\n"


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_timed_rotation_lowercase_when_and_real_bool_utc(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    clock = FakeClock(1_700_000_000.0)
    stream = TimedRotatingFileStream(
        str(path), rotate_when="s", rotate_interval="2", utc="False", backup_count="2", clock=clock
    )
    assert stream.utc is False and stream.rotate_when == "S"
    for i in range(4):
        stream(chunk(f"{i}\n".encode()))
        clock.now += 2
    stream.close()
    rotated = sorted(p.name for p in tmp_path.iterdir() if p.name != "out.log")
    assert len(rotated) == 2  # backup_count
    assert all(re.fullmatch(r"out\.log\.\d{14}", name) for name in rotated)
    assert path.read_bytes() == b"3\n"
    assert (tmp_path / rotated[-1]).read_bytes() == b"2\n"


def test_timed_rotation_midnight_and_weekday(tmp_path: Path) -> None:
    base = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC, a Tuesday
    clock = FakeClock(base)
    mid = TimedRotatingFileStream(
        str(tmp_path / "m.log"), rotate_when="midnight", utc="yes", clock=clock
    )
    assert mid.utc is True and mid.rollover_at == 1_700_006_400.0
    week = TimedRotatingFileStream(str(tmp_path / "w.log"), rotate_when="W0", utc=True, clock=clock)
    # As logging does: at the midnight that ends the next Monday.
    assert week.rollover_at == 1_700_006_400.0 + 6 * 86400
    clock.now = mid.rollover_at + 1
    mid(chunk(b"after midnight\n"))
    mid.close()
    week.close()
    assert (tmp_path / "m.log.20231114").exists()


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"rotate_when": "fortnightly"}, "rotate_when"),
        ({}, "rotate_when"),
        ({"rotate_when": "H", "utc": "maybe"}, "utc"),
        ({"rotate_when": "H", "rotate_interval": "0"}, "rotate_interval"),
    ],
)
def test_timed_rotation_bad_options(tmp_path: Path, options: dict, option: str) -> None:
    with pytest.raises(StreamError) as info:
        TimedRotatingFileStream(str(tmp_path / "x.log"), **options)
    assert info.value.option == option


def test_stdout_stream(capsys) -> None:
    stream = StdoutStream()
    stream.open()
    stream(chunk(b"hello \xff"))
    stream.close()
    assert capsys.readouterr().out == "hello \ufffd"


def test_fancy_stdout_stream(capsys) -> None:
    stream = FancyStdoutStream(color="green", time_format="%H:%M")
    stream(chunk(b"one\ntw"))
    stream(chunk(b"o\n"))
    stream(chunk(b"tail"))
    stream.close()
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 3
    for line, text in zip(out, ["one", "two", "tail"], strict=True):
        assert re.fullmatch(rf"\x1b\[0;32m\d\d:\d\d \[42\] \| {text}\x1b\[0m", line)
    assert FancyStdoutStream(color="nope").color in {
        "red",
        "green",
        "yellow",
        "blue",
        "magenta",
        "cyan",
        "white",
    }


def test_queue_stream() -> None:
    stream = QueueStream()
    stream(chunk(b"x"))
    assert stream.get_nowait() == chunk(b"x")
    assert stream.empty()


def test_load_stream_builtin_names_and_string_options(tmp_path: Path) -> None:
    path = tmp_path / "f.log"
    stream = load_stream(
        "filestream", filename=str(path), max_bytes="100", backup_count="3", refresh_time="0.3"
    )
    assert isinstance(stream, FileStream)
    assert (stream.max_bytes, stream.backup_count) == (100, 3)
    assert isinstance(load_stream("circus.stream.QueueStream"), QueueStream)
    assert isinstance(load_stream("StdoutStream"), StdoutStream)


def test_load_stream_user_class_by_dotted_path(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "my_streams.py").write_text(
        textwrap.dedent(
            """
            class Upper:
                def __init__(self, prefix=""):
                    self.prefix = prefix
                    self.seen = []

                def __call__(self, data):
                    self.seen.append(self.prefix + data["data"].decode().upper())
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    for path in ("my_streams.Upper", "my_streams:Upper"):
        stream = load_stream(path, prefix="> ")
        stream(chunk(b"hi"))
        assert stream.seen == ["> HI"]
        assert isinstance(stream, Stream)
    sys.modules.pop("my_streams", None)


@pytest.mark.parametrize(
    ("name", "options", "option"),
    [
        ("NoSuchStream", {}, "class"),
        ("no_such_module_xyz.Stream", {}, "class"),
        ("os.no_such_attr", {}, "class"),
        ("FileStream", {"max_bytes": "lots"}, "max_bytes"),
        ("FileStream", {"backup_count": "-1"}, "backup_count"),
        ("circus.process.streams.LineFramer", {"bogus": 1}, "class"),
    ],
)
def test_load_stream_errors(
    name: str, options: dict, option: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where a nameless FileStream goes
    with pytest.raises(StreamError) as info:
        load_stream(name, **options)
    assert info.value.option == option
    assert list(tmp_path.iterdir()) == []  # a refused stream leaves no temp file behind


def test_line_framer_bounds_its_buffer() -> None:
    framer = LineFramer(max_pending=8)
    assert framer.feed(1, "stdout", b"abc") == []
    assert framer.feed(1, "stdout", b"defghij") == [b"abcdefghij\n"]
    assert framer.flush(1, "stdout") == []


def pipe_with(data: bytes) -> tuple[int, int]:
    r, w = os.pipe()
    os.write(w, data)
    os.set_blocking(r, False)
    return r, w


def test_watched_stream_splice_reopens(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    stream = WatchedFileStream(str(path))
    assert stream.can_splice
    r, w = pipe_with(b"one\n")
    try:
        assert stream.splice_from(r) == 4
        os.rename(path, tmp_path / "old.log")
        os.write(w, b"two\n")
        assert stream.splice_from(r) == 4
        with pytest.raises(BlockingIOError):
            stream.splice_from(r)
        os.close(w)
        w = -1
        assert stream.splice_from(r) == 0  # EOF
    finally:
        os.close(r)
        if w >= 0:
            os.close(w)
        stream.close()
    assert (tmp_path / "old.log").read_bytes() == b"one\n"
    assert path.read_bytes() == b"two\n"


def test_timed_stream_splice_rotates(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    clock = FakeClock(1_700_000_000.0)
    stream = TimedRotatingFileStream(str(path), rotate_when="M", clock=clock)
    r, w = pipe_with(b"first\n")
    try:
        stream.splice_from(r)
        clock.now += 61
        os.write(w, b"second\n")
        stream.splice_from(r)
    finally:
        os.close(r)
        os.close(w)
        stream.close()
    rotated = [p for p in tmp_path.iterdir() if p.name != "out.log"]
    assert [p.read_bytes() for p in rotated] == [b"first\n"]
    assert path.read_bytes() == b"second\n"


def test_formatting_streams_do_not_splice(tmp_path: Path) -> None:
    assert not FileStream(str(tmp_path / "a"), time_format="%H").can_splice
    assert not hasattr(StdoutStream(), "splice_from")


def test_two_streams_on_one_file_append_and_rotate_together(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    out = FileStream(str(path), max_bytes=20, backup_count=3)
    err = FileStream(str(path), max_bytes=20, backup_count=3)
    r, w = pipe_with(b"spliced\n")
    try:
        out(chunk(b"out-1\n"))
        err(chunk(b"err-1\n", name="stderr"))
        out.splice_from(r)  # 6 + 6 + 8 = 20 bytes: still one file
        err(chunk(b"err-2\n", name="stderr"))  # would pass 20: rotates, for both streams
        out(chunk(b"out-2\n"))
    finally:
        os.close(r)
        os.close(w)
        out.close()
        err.close()
    assert (tmp_path / "out.log.1").read_bytes() == b"out-1\nerr-1\nspliced\n"
    assert path.read_bytes() == b"err-2\nout-2\n"
    assert not (tmp_path / "out.log.2").exists()


def test_two_timed_streams_on_one_file_rotate_once(tmp_path: Path) -> None:
    path = tmp_path / "out.log"
    clock = FakeClock(1_700_000_000.0)
    a = TimedRotatingFileStream(str(path), rotate_when="H", clock=clock)
    b = TimedRotatingFileStream(str(path), rotate_when="H", clock=clock)
    a(chunk(b"a1\n"))
    b(chunk(b"b1\n"))
    clock.now += 3600
    a(chunk(b"a2\n"))
    b(chunk(b"b2\n"))
    a.close()
    b.close()
    rotated = [p for p in tmp_path.iterdir() if p.name != "out.log"]
    assert [p.read_bytes() for p in rotated] == [b"a1\nb1\n"]
    assert path.read_bytes() == b"a2\nb2\n"
