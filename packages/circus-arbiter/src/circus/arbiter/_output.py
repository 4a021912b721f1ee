"""Process output as complete lines: published as ``output.<watcher>.<stream>`` and kept in a
per-watcher in-memory ring buffer answered by the ``logs`` command (``circusctl logs -f``).

One message carries the complete lines one read delivered (one process, one stream; a read
of more than MAX_PARTIAL bytes goes in several messages, cut at line ends), with
``seq``, the count of lines published on the topic before it, so a subscriber that fell
behind (ZeroMQ drops messages for it) knows how many it missed: a message per line cost
~110 ms of circusd's CPU per MB and overflowed a follower's queue at 50 MB/s.

Chunks arrive as the pipes deliver them; a line split across two chunks is buffered per
(pid, stream) until its newline arrives, or flushed as is when the process is reaped. Lines
are kept raw (bytes) and turned into payload dicts only when somebody subscribed to their
topic or asks ``logs``, so a chatty worker nobody watches costs little more than the split.

Lines of a stream that has no configured stream class (``stdout_stream``/``stderr_stream``)
are also forwarded, unchanged and without prefix, to circusd's own stdout/stderr through the
:class:`~._forward.OutputForwarder` set as :attr:`OutputHub.forwarder`, where upstream's
children would have written them directly: see :meth:`OutputHub.route`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from circus.ctl.protocol import output_payload, output_topic

if TYPE_CHECKING:
    from ._forward import FdWriter, OutputForwarder

__all__ = ["OutputHub"]

# A line longer than this is published in pieces rather than buffered without bound.
MAX_PARTIAL = 64 * 1024
# The ring is bounded in bytes as well as in lines: a flood of binary output or of huge lines
# would otherwise keep ``keep`` chunks of up to a megabyte each (found by tests/reliability).
MAX_RING_BYTES = 2 * 1024 * 1024
# The ring counts a block's newlines in its last RING_COUNT_WINDOW bytes only. CPython's
# one-byte count is a plain loop (~0.5 ns a byte): counting whole 64 KiB reads was a third of
# circusd's CPU relaying one fast writer to a file. The tail's count is a lower bound (exact
# for smaller blocks): the ring trims later and may hold more than ``keep`` lines, still
# within MAX_RING_BYTES, and ``lines()`` splits only the blocks it returns.
RING_COUNT_WINDOW = 8 * 1024

# time, pid, stream, block, line count: a block is one or more complete lines (each ending
# in a newline) or one unterminated piece (count 1). Blocks are split into lines only when
# ``logs`` asks: a chatty worker costs a count and an append per chunk, not per line.
_Entry = tuple[float, int, str, bytes, int]


class OutputHub:
    """Splits output chunks into lines, publishes them and keeps the last ``keep`` per watcher.

    Args:
        publish: ``publish(topic, payload)``.
        keep: lines kept per watcher.
        wanted: ``wanted(topic)``: does anybody subscribe to it (default: always).
    """

    def __init__(
        self,
        publish: Callable[[str, dict[str, Any]], None],
        keep: int = 1000,
        wanted: Callable[[str], bool] | None = None,
    ) -> None:
        self._publish = publish
        self._wanted = wanted or (lambda topic: True)
        self.keep = keep
        self._rings: dict[str, deque[_Entry]] = {}
        self._ring_bytes: dict[str, int] = {}
        self._ring_lines: dict[str, int] = {}
        self._partial: dict[tuple[str, int, str], bytes] = {}
        self._seq: dict[str, int] = {}  # topic: lines published on it so far
        self._topics: dict[tuple[str, str], str] = {}  # (watcher, stream): its topic
        self._forwarder: OutputForwarder | None = None
        self._routes: dict[str, tuple[bool, bool]] = {}  # watcher: forward stdout, stderr
        self._targets: dict[tuple[str, str], FdWriter] = {}  # (watcher, stream): writer

    @property
    def forwarder(self) -> OutputForwarder | None:
        """Where lines of streams without a stream class go (None: nowhere)."""
        return self._forwarder

    @forwarder.setter
    def forwarder(self, forwarder: OutputForwarder | None) -> None:
        self._forwarder = forwarder
        self._targets = {}
        for watcher in self._routes:
            self._retarget(watcher)

    def route(self, watcher: str, stdout: bool, stderr: bool) -> None:
        """Whether ``watcher``'s stdout / stderr lines are forwarded (no stream class)."""
        self._routes[watcher] = (stdout, stderr)
        self._retarget(watcher)

    def _retarget(self, watcher: str) -> None:
        flags = self._routes.get(watcher, (False, False))
        for stream, on in zip(("stdout", "stderr"), flags, strict=True):
            writer = self._forwarder.writer(stream) if on and self._forwarder else None
            if writer is not None:
                self._targets[(watcher, stream)] = writer
            else:
                self._targets.pop((watcher, stream), None)

    def observer(self, watcher: str) -> Callable[[int, str, bytes], None]:
        """The callback to attach to a watcher with ``add_output_observer``."""

        def observe(pid: int, stream: str, data: bytes) -> None:
            self.feed(watcher, pid, stream, data)

        return observe

    def feed(self, watcher: str, pid: int, stream: str, data: bytes) -> None:
        """Take one chunk; emit every line it completes."""
        key = (watcher, pid, stream)
        pending = self._partial.pop(key, None)
        # A chunk is copied once at most: reads of a busy (grown) pipe seldom end on a line
        # boundary, and copying each twice (held piece + chunk, then its complete lines) cost
        # a sixth of circusd's CPU relaying a fast writer to a file, and fresh pages.
        end = data.rfind(b"\n") + 1
        target = self._targets.get((watcher, stream)) if self._targets else None
        if end:
            if pending:
                block = b"".join((pending, memoryview(data)[:end]))
            else:
                block = data if end == len(data) else data[:end]
            if target is not None:
                target.put(block)
            self._emit(watcher, pid, stream, block, complete=True)
            rest = data[end:]
        else:
            rest = pending + data if pending else data
        if len(rest) > MAX_PARTIAL:
            if target is not None:
                target.put(rest)
            for i in range(0, len(rest), MAX_PARTIAL):
                self._emit(watcher, pid, stream, rest[i : i + MAX_PARTIAL], complete=False)
        elif rest:
            self._partial[key] = rest

    def partial(self, watcher: str, pid: int, stream: str) -> bytes:
        """The unterminated line held back for one process's stream (kept)."""
        return self._partial.get((watcher, pid, stream), b"")

    def flush_pid(self, watcher: str, pid: int) -> None:
        """Emit the unterminated last line of a finished process, if any."""
        for stream in ("stdout", "stderr"):
            rest = self._partial.pop((watcher, pid, stream), None)
            if rest:
                target = self._targets.get((watcher, stream))
                if target is not None:
                    target.put(rest)
                self._emit(watcher, pid, stream, rest, complete=False)

    def forget(self, watcher: str) -> None:
        """Drop a removed watcher's buffer."""
        self._rings.pop(watcher, None)
        self._ring_bytes.pop(watcher, None)
        self._ring_lines.pop(watcher, None)
        if self._routes.pop(watcher, None) is not None:
            self._retarget(watcher)
        for key in [k for k in self._partial if k[0] == watcher]:
            del self._partial[key]
        for stream in ("stdout", "stderr"):
            self._seq.pop(output_topic(watcher, stream), None)
            self._topics.pop((watcher, stream), None)

    def lines(self, watchers: Iterable[str], count: int) -> list[dict[str, Any]]:
        """The last ``count`` (at most ``keep``) lines of each given watcher, oldest first."""
        count = min(count, self.keep)
        merged: list[tuple[float, int, str, bytes, str]] = []
        for name in watchers:
            ring = self._rings.get(name)
            if not ring or count <= 0:
                continue
            newest_first: list[tuple[float, int, str, bytes, str]] = []
            for when, pid, stream, block, _n in reversed(ring):
                for line in reversed(_split(block)):
                    newest_first.append((when, pid, stream, line, name))
                    if len(newest_first) == count:
                        break
                if len(newest_first) == count:
                    break
            merged.extend(reversed(newest_first))
        merged.sort(key=lambda item: item[0])  # stable: each watcher's order is kept
        return [
            output_payload(name, pid, stream, line, when)
            for when, pid, stream, line, name in merged
        ]

    def _emit(self, watcher: str, pid: int, stream: str, block: bytes, complete: bool) -> None:
        now = time.time()
        topic = self._topics.get((watcher, stream))
        if topic is None:
            topic = self._topics[(watcher, stream)] = output_topic(watcher, stream)
        if self._wanted(topic):
            # One message per block (a read's complete lines, or one piece), numbered so a
            # subscriber that lost messages can tell how many lines: counted only when sent.
            seq = self._seq.get(topic, 0)
            if len(block) <= MAX_PARTIAL:
                self._seq[topic] = seq + (block.count(b"\n") if complete else 1)
                self._publish(topic, output_payload(watcher, pid, stream, block, now, seq))
            else:
                # XPUB queues ZMQ_SNDHWM messages for a subscriber that does not read,
                # whatever their size: a message stays within MAX_PARTIAL bytes so that
                # what a stuck subscriber makes us hold stays within a bound.
                for piece in _pieces(block):
                    self._publish(topic, output_payload(watcher, pid, stream, piece, now, seq))
                    seq += piece.count(b"\n") + (0 if piece.endswith(b"\n") else 1)
                self._seq[topic] = seq
        if len(block) > MAX_RING_BYTES:  # keep the tail, cut at a line start
            cut = block.find(b"\n", len(block) - MAX_RING_BYTES) + 1
            block = block[cut:] if cut else block[-MAX_RING_BYTES:]
        ring = self._rings.get(watcher)
        if ring is None:
            ring = self._rings[watcher] = deque()
        count = block.count(b"\n", max(0, len(block) - RING_COUNT_WINDOW)) if complete else 1
        if not count:
            return
        ring.append((now, pid, stream, block, count))
        size = self._ring_bytes.get(watcher, 0) + len(block)
        lines = self._ring_lines.get(watcher, 0) + count
        # Drop whole blocks while what stays still holds ``keep`` lines, and always while
        # over the byte bound (a block alone is within it, see above).
        while len(ring) > 1 and (lines - ring[0][4] >= self.keep or size > MAX_RING_BYTES):
            _, _, _, old, old_count = ring.popleft()
            size -= len(old)
            lines -= old_count
        self._ring_bytes[watcher] = size
        self._ring_lines[watcher] = lines


def _pieces(block: bytes) -> Iterable[bytes]:
    """``block`` in pieces of at most MAX_PARTIAL bytes, cut after a newline; a line longer
    than that is cut too, before a UTF-8 character's first byte (a piece without a newline
    counts as one line, as readers count it)."""
    start, size = 0, len(block)
    while size - start > MAX_PARTIAL:
        stop = start + MAX_PARTIAL
        cut = block.rfind(b"\n", start, stop) + 1
        if cut <= start:
            cut = stop
            while cut > stop - 3 and block[cut] & 0xC0 == 0x80:
                cut -= 1
        yield block[start:cut]
        start = cut
    if start < size:
        yield block[start:]


def _split(block: bytes) -> list[bytes]:
    """The lines of a block of complete lines, each with its newline."""
    return [line + b"\n" for line in block[:-1].split(b"\n")] if block.endswith(b"\n") else [block]
