"""Output of a watcher's processes: stream objects and observers.

Provisional: pumps pipes with loop.add_reader until circus.process.OutputRedirector lands.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._procs import ProcessLike
    from ._watcher import Watcher

logger = logging.getLogger("circus.watcher")


class OutputPump:
    """Owns the watcher's stream objects and pumps its processes' pipes into them."""

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher
        self._streams: dict[str, Any] = {}
        self._fds: dict[int, tuple[int, str]] = {}

    def pipes(self) -> tuple[bool, bool]:
        """Whether new processes need a stdout / stderr pipe."""
        observed = bool(self._watcher._events.observers)
        return (
            observed or self._watcher._opts["stdout_stream"] is not None,
            observed or self._watcher._opts["stderr_stream"] is not None,
        )

    def open(self) -> None:
        """Create and open the configured streams."""
        self.close()
        for name in ("stdout", "stderr"):
            conf = self._watcher._opts[f"{name}_stream"]
            if conf is None:
                continue
            stream = _load(conf)
            opener = getattr(stream, "open", None)
            if callable(opener):
                opener()
            self._streams[name] = stream

    def attach(self, proc: ProcessLike) -> None:
        """Start pumping ``proc``'s pipes."""
        loop = asyncio.get_running_loop()
        for name in ("stdout", "stderr"):
            fd = getattr(proc, name, None)
            if fd is None:
                continue
            if not isinstance(fd, int):
                fd = fd.fileno()
            os.set_blocking(fd, False)
            self._fds[fd] = (proc.pid, name)
            loop.add_reader(fd, self._readable, fd)

    def _readable(self, fd: int) -> None:
        pid, name = self._fds[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            asyncio.get_running_loop().remove_reader(fd)
            del self._fds[fd]
            return
        stream = self._streams.get(name)
        if stream is not None:
            try:
                stream({"data": data, "pid": pid, "name": name})
            except Exception:
                logger.exception("stream %r failed", stream)
        self._watcher._events.output(pid, name, data)

    def detach(self, fd: int) -> None:
        if self._fds.pop(fd, None) is not None:
            asyncio.get_running_loop().remove_reader(fd)

    def close(self) -> None:
        """Stop pumping and close the streams."""
        if self._fds:
            loop = asyncio.get_running_loop()
            for fd in self._fds:
                loop.remove_reader(fd)
            self._fds.clear()
        for stream in self._streams.values():
            closer = getattr(stream, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception:
                    logger.exception("closing stream %r failed", stream)
        self._streams.clear()


def _load(conf: Any) -> Any:
    if not isinstance(conf, Mapping):
        return conf
    from circus.process.streams import load_stream

    options = dict(conf)
    cls = options.pop("class", "FileStream")
    return load_stream(cls, **options)
