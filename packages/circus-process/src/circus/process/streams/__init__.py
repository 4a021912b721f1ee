"""Output streams: where a child's stdout/stderr go (spec/config.md §6).

Each stream is called with ``{'data': bytes, 'pid': int, 'name': 'stdout'|'stderr'}`` and may
have ``open()``/``close()``; see :class:`Stream` for the full protocol.
"""

from __future__ import annotations

from ._base import Chunk, LineFramer, Stream, to_bool, to_int
from ._console import FancyStdoutStream, StdoutStream
from ._file import FileStream, WatchedFileStream
from ._journal import JournalStream
from ._loader import BUILTIN_STREAMS, load_stream, resolve_stream_class
from ._queue import QueueStream
from ._timed import TimedRotatingFileStream

__all__ = [
    "BUILTIN_STREAMS",
    "Chunk",
    "FancyStdoutStream",
    "FileStream",
    "JournalStream",
    "LineFramer",
    "QueueStream",
    "StdoutStream",
    "Stream",
    "TimedRotatingFileStream",
    "WatchedFileStream",
    "load_stream",
    "resolve_stream_class",
    "to_bool",
    "to_int",
]
