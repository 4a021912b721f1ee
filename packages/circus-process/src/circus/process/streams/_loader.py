"""``load_stream``: build a stream from a class name or dotted path plus string options."""

from __future__ import annotations

import importlib
from typing import Any

from .._errors import StreamError
from ._console import FancyStdoutStream, StdoutStream
from ._file import FileStream, WatchedFileStream
from ._journal import JournalStream
from ._queue import QueueStream
from ._timed import TimedRotatingFileStream

__all__ = ["load_stream", "BUILTIN_STREAMS", "resolve_stream_class"]

BUILTIN_STREAMS: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        FileStream,
        WatchedFileStream,
        TimedRotatingFileStream,
        StdoutStream,
        FancyStdoutStream,
        QueueStream,
        JournalStream,
    )
}
_LOWER = {k.lower(): v for k, v in BUILTIN_STREAMS.items()}
# Upstream's own module paths for the built-ins, so old configs naming them still load.
_UPSTREAM_PREFIXES = ("circus.stream.", "circus.stream.file_stream.", "circus.streams.")


def resolve_stream_class(class_name: str | type) -> Any:
    """Return the class for a built-in name, ``pkg.mod.Class`` or ``pkg.mod:Class``."""
    if not isinstance(class_name, str):
        return class_name
    name = class_name.strip()
    if name.lower() in _LOWER:
        return _LOWER[name.lower()]
    for prefix in _UPSTREAM_PREFIXES:
        if name.startswith(prefix) and name[len(prefix) :].lower() in _LOWER:
            return _LOWER[name[len(prefix) :].lower()]
    if ":" in name:
        module_name, _, attr = name.partition(":")
    elif "." in name:
        module_name, _, attr = name.rpartition(".")
    else:
        known = ", ".join(sorted(BUILTIN_STREAMS))
        raise StreamError("class", class_name, f"unknown stream class (built-ins: {known})")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise StreamError("class", class_name, f"cannot import {module_name}: {exc}") from None
    try:
        target = module
        for part in attr.split("."):
            target = getattr(target, part)
    except AttributeError:
        raise StreamError("class", class_name, f"{module_name} has no {attr}") from None
    if not callable(target):
        raise StreamError("class", class_name, "not callable")
    return target


def load_stream(class_name: str | type = "FileStream", /, **options: Any) -> Any:
    """Build a stream: ``load_stream('FileStream', filename='x.log', max_bytes='1000')``.

    ``class_name`` is a built-in name (case-insensitive), a dotted path ``pkg.mod.Class`` or
    ``pkg.mod:Class``, or a class. Options may be strings (INI values); the legacy
    ``refresh_time`` is dropped. Raises StreamError naming the option at fault.
    """
    options.pop("refresh_time", None)
    options.pop("class", None)
    cls = resolve_stream_class(class_name)
    try:
        return cls(**options)
    except StreamError:
        raise
    except TypeError as exc:
        raise StreamError("class", class_name, f"bad options {sorted(options)}: {exc}") from None
