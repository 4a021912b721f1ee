"""The Stream protocol, option coercion (INI values arrive as strings) and line framing."""

from __future__ import annotations

from typing import Any, Protocol, TypedDict, runtime_checkable

from .._errors import StreamError

__all__ = ["Stream", "Chunk", "LineFramer", "to_int", "to_bool", "to_str_or_none", "prefix_line"]


class Chunk(TypedDict):
    """What a stream is called with: one chunk of a child's output."""

    data: bytes
    pid: int
    name: str  # 'stdout' or 'stderr'


@runtime_checkable
class Stream(Protocol):
    """What a stream class must provide to receive a process's output.

    Required: ``__call__(chunk)`` with ``{'data': bytes, 'pid': int, 'name': 'stdout'|'stderr'}``;
    chunks are *not* line-aligned. The constructor takes keyword options, which arrive as
    strings when they come from an INI file.

    Optional, used when present:
      * ``open()`` / ``close()``: called when the owner starts / stops using the stream.
      * ``attach(pid, name)``: the pipe ``name`` of ``pid`` starts feeding the stream (paired
        with ``end``), so a stream shared by several processes knows it is shared.
      * ``end(pid, name)``: the pipe of ``pid`` reached EOF (flush any partial line).
      * ``partial(pid, name) -> bytes``: the unterminated line held back for that pipe (not
        written yet), so that a new circusd image can be given it (``daemon-reexec``).
      * ``can_splice`` (bool) and ``splice_from(fd) -> int``: the stream can take bytes
        straight from a pipe fd with ``os.splice`` (no formatting); returns the bytes moved,
        0 at EOF, raises BlockingIOError when the pipe is empty.
    """

    def __call__(self, data: Chunk) -> None: ...


def to_int(option: str, value: Any, *, minimum: int = 0) -> int:
    """Coerce an int option (possibly a string); raise StreamError naming the option."""
    if isinstance(value, bool):
        raise StreamError(option, value, "expected an integer")
    try:
        out = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise StreamError(option, value, "expected an integer") from None
    if out < minimum:
        raise StreamError(option, value, f"must be >= {minimum}")
    return out


_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


def to_bool(option: str, value: Any) -> bool:
    """Coerce a boolean option; the string ``"False"`` is false (upstream's ``bool()`` bug)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value != 0
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise StreamError(option, value, "expected a boolean (true/false)")


def to_str_or_none(value: Any) -> str | None:
    """Empty strings and None mean "not set"."""
    if value is None:
        return None
    text = str(value)
    return text if text else None


def prefix_line(time_format: str, pid: int, line: bytes) -> str:
    """``<time> [<pid>] | <line>``, the line decoded as UTF-8 with replacement."""
    # datetime (not time.strftime: upstream's formats may use %f) is loaded by the streams
    # that stamp lines, not by every process that imports this module.
    from datetime import datetime

    stamp = datetime.now().strftime(time_format)
    return f"{stamp} [{pid}] | {line.decode('utf-8', 'replace')}"


class LineFramer:
    """Re-assembles lines split across chunks, per (pid, stream name).

    Upstream prefixes each *chunk*, so a line cut by a read becomes two prefixed lines; this
    keeps the tail of a chunk until its newline arrives (or EOF, or ``max_pending`` bytes).
    """

    def __init__(self, max_pending: int = 65536) -> None:
        self.max_pending = max_pending
        self._pending: dict[tuple[int, str], bytes] = {}

    def feed(self, pid: int, name: str, data: bytes) -> list[bytes]:
        """Return the complete lines (with their ``\\n``) that ``data`` finishes."""
        key = (pid, name)
        buf = self._pending.pop(key, b"") + data
        cut = buf.rfind(b"\n")
        if cut < 0:
            if len(buf) >= self.max_pending:
                return [buf + b"\n"]
            if buf:
                self._pending[key] = buf
            return []
        rest = buf[cut + 1 :]
        if rest:
            if len(rest) >= self.max_pending:
                return [*buf[: cut + 1].splitlines(keepends=True), rest + b"\n"]
            self._pending[key] = rest
        return buf[: cut + 1].splitlines(keepends=True)

    def flush(self, pid: int, name: str) -> list[bytes]:
        """The pending partial line of ``(pid, name)``, newline-terminated, if any."""
        rest = self._pending.pop((pid, name), b"")
        return [rest + b"\n"] if rest else []

    def partial(self, pid: int, name: str) -> bytes:
        """The bytes held back for ``(pid, name)`` (no newline added; kept)."""
        return self._pending.get((pid, name), b"")

    def flush_all(self) -> list[tuple[int, bytes]]:
        """Every pending partial line as ``(pid, line)``, and forget them."""
        out = [(pid, rest + b"\n") for (pid, _name), rest in self._pending.items()]
        self._pending.clear()
        return out
