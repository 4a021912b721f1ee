"""Output messages holding several lines: splitting them, and counting the lines missed."""

from __future__ import annotations

from circus.ctl import protocol


def test_split_output_one_payload_per_line() -> None:
    payload = protocol.output_payload("w", 3, "stdout", "a\nb\r\n\nc", 5.0, 9)
    lines = protocol.split_output(payload)
    assert [p["data"] for p in lines] == ["a\n", "b\r\n", "\n", "c"]
    assert all(p["pid"] == 3 and p["time"] == 5.0 and p["watcher"] == "w" for p in lines)
    assert protocol.split_output({"data": "one\n"}) == [{"data": "one\n"}]
    assert protocol.split_output({"data": ""}) == [{"data": ""}]
    assert [protocol.output_line_count(t) for t in ("", "a", "a\n", "a\nb", "\n\n")] == [
        0,
        1,
        1,
        2,
        2,
    ]


def test_gaps_counted_per_topic_from_seq() -> None:
    gaps = protocol.OutputGaps()
    out, err = "output.w.stdout", "output.w.stderr"
    assert gaps.feed(out, {"seq": 10, "data": "a\nb\n"}) == 0  # the first one: a baseline
    assert gaps.feed(err, {"seq": 0, "data": "x\n"}) == 0
    assert gaps.feed(out, {"seq": 12, "data": "c\n"}) == 0
    assert gaps.feed(out, {"seq": 20, "data": "d\n"}) == 7  # lines 13..19 never came
    assert gaps.feed(err, {"seq": 1, "data": "piece"}) == 0
    assert gaps.feed(err, {"seq": 4, "data": "y\n"}) == 2
    assert gaps.missed == 9
    # circusd restarted (or the watcher was added again): counting starts afresh, silently
    assert gaps.feed(out, {"seq": 0, "data": "e\n"}) == 0
    assert gaps.feed(out, {"seq": 1, "data": "f\n"}) == 0
    # a message without seq (or with garbage in it) is taken as is
    for odd in ({"data": "g\n"}, {"seq": "3", "data": "g\n"}, {"seq": -1}, {"seq": True}):
        assert gaps.feed(out, odd) == 0
    assert gaps.feed(out, {"seq": 2, "data": "h\n"}) == 0
    assert gaps.missed == 9


def test_split_output_cuts_at_newlines_only() -> None:
    # A line is what circusd cut at b"\n" (the ``logs`` answer, the seq count): a carriage
    # return (progress bars), form feed, NUL, NEL or U+2028 inside a line does not make two.
    odd = "50%\r100%\n", "page\x0cbreak\n", "nul\x00byte\n", "nel\x85sep\n", "ls\u2028ps\x1cfs\n"
    payload = protocol.output_payload("w", 3, "stdout", "".join(odd) + "tail\rpiece", 5.0, 0)
    lines = [p["data"] for p in protocol.split_output(payload)]
    assert lines == [*odd, "tail\rpiece"]
    assert len(lines) == protocol.output_line_count(payload["data"])
