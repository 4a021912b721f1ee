"""The ``logs`` ring keeps blocks of lines and splits them only when asked."""

from __future__ import annotations

from circus.arbiter._output import MAX_RING_BYTES, RING_COUNT_WINDOW, OutputHub


def _hub(keep: int = 1000) -> OutputHub:
    return OutputHub(lambda topic, payload: None, keep=keep, wanted=lambda topic: False)


def test_lines_cross_block_boundaries_in_order() -> None:
    hub = _hub(keep=4)
    hub.feed("w", 1, "stdout", b"a\nb\n")
    hub.feed("w", 2, "stderr", b"c\n")
    hub.feed("w", 1, "stdout", b"d\ne\nf")  # "f" waits for its newline
    hub.flush_pid("w", 1)
    got = [(e["pid"], e["data"]) for e in hub.lines(["w"], 10)]
    assert got == [(2, "c\n"), (1, "d\n"), (1, "e\n"), (1, "f")]
    assert [e["data"] for e in hub.lines(["w"], 2)] == ["e\n", "f"]


def test_a_huge_block_keeps_its_tail_from_a_line_start() -> None:
    hub = _hub(keep=10)
    line = b"y" * 99 + b"\n"
    block = b"first\n" + line * (MAX_RING_BYTES // len(line) + 100)
    hub.feed("w", 1, "stdout", block)
    lines = hub.lines(["w"], 10)
    assert [e["data"] for e in lines] == [line.decode()] * 10
    assert hub._ring_bytes["w"] <= MAX_RING_BYTES


def test_bytes_stay_bounded_over_many_chunks() -> None:
    hub = _hub()
    chunk = (b"z" * 999 + b"\n") * 100
    for _ in range(100):  # 10 MB in all
        hub.feed("w", 1, "stdout", chunk)
    assert hub._ring_bytes["w"] <= MAX_RING_BYTES
    assert len(hub.lines(["w"], 5000)) == 1000  # never more than ``keep``


class _Scanned(bytes):
    """Bytes that add up how many bytes ``count`` looked at."""

    scanned = 0

    def count(self, sub, start=None, end=None):  # type: ignore[no-untyped-def,override]
        _Scanned.scanned += len(self[start:end])
        return super().count(sub, start, end)


def test_a_big_block_is_counted_in_its_tail_only() -> None:
    # a fast writer's 256 KiB reads: the ring looks at a bounded tail of each, not all of it
    hub = _hub()
    line = b"q" * 99 + b"\n"
    _Scanned.scanned = 0
    for _ in range(8):
        hub.feed("w", 1, "stdout", _Scanned(line * 2621))
    assert _Scanned.scanned <= 8 * RING_COUNT_WINDOW


def test_the_last_lines_survive_big_blocks_in_order() -> None:
    hub = _hub(keep=1000)
    numbered = [b"%07d\n" % i for i in range(60_000)]
    for start in range(0, len(numbered), 12_000):  # 96 KB blocks, newlines counted in tails
        hub.feed("w", 1, "stdout", b"".join(numbered[start : start + 12_000]))
    got = [e["data"].encode() for e in hub.lines(["w"], 1000)]
    assert got == numbered[-1000:]
    assert hub._ring_bytes["w"] <= MAX_RING_BYTES


def test_a_chunk_after_a_held_piece_is_copied_once() -> None:
    import tracemalloc

    hub = _hub(keep=20_000)
    line = b"r" * 99 + b"\n"
    chunk = line * 15_000 + b"tail without newline"  # 1.5 MB, ends mid-line
    hub.feed("w", 1, "stdout", b"held piece ")
    tracemalloc.start()
    try:
        hub.feed("w", 1, "stdout", chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * len(chunk)  # its complete lines, not held piece + chunk and them too
    got = [e["data"] for e in hub.lines(["w"], 20_000)]
    assert got == ["held piece " + line.decode()] + [line.decode()] * 14_999
    assert hub.partial("w", 1, "stdout") == b"tail without newline"
