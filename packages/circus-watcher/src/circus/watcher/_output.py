"""Output of a watcher's processes: its stream objects, and observers of every chunk.

The pumping itself is ``circus.process.OutputRedirector`` (non-blocking reads, or splice
straight into a file stream, and a drain at exit so nothing is lost). The observer hook is
attached to the redirector only while someone observes, because any observer turns
splicing off.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._procs import ProcessLike
    from ._watcher import Watcher

logger = logging.getLogger("circus.watcher")


class OutputPump:
    """Owns the watcher's stream objects and its redirector."""

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher
        self._streams: dict[str, Any] = {}
        self._opened_with: dict[str, Any] = {}  # the option value each stream was made from
        self._superseded: list[Any] = []  # streams still fed by processes being replaced
        self._redirector: Any = None
        self._observing = False
        self._unobserved_warned = False

    def pipes(self, count: int = 1) -> tuple[bool, bool]:
        """Whether the ``count`` processes about to be spawned need a stdout / stderr pipe.

        A stream with a configured class always gets its pipe. A stream piped only for
        observers (circusd's ``logs`` ring and ``output.*`` events) gets none once pipes
        would take the descriptor table past half full (see :func:`_room_for_pipes`): the
        process then writes straight to the supervisor's own stdout / stderr, and its
        output is not observed. That keeps the other half for what each process needs
        anyway (its exit descriptor), so thousands more processes fit under one limit.
        """
        settings = self._watcher.settings
        to_out = settings.stdout_stream is not None
        to_err = settings.stderr_stream is not None
        if self._watcher._events.observers and not (to_out and to_err):
            if _room_for_pipes(count):
                return True, True
            if not self._unobserved_warned:
                self._unobserved_warned = True
                logger.warning(
                    "watcher %s: the descriptor table is half full; new processes write to "
                    "circusd's own stdout/stderr unobserved (no logs, no output events) "
                    "unless a stream class is configured",
                    self._watcher.name,
                )
        return to_out, to_err

    def open(self) -> None:
        """Create and open the configured streams (at watcher start).

        Raises:
            circus.process.StreamError: a stream class or option is bad.
        """
        self.close()
        for name in ("stdout", "stderr"):
            conf = self._watcher.settings.get(f"{name}_stream")
            self._opened_with[name] = conf
            if conf is not None:
                self._streams[name] = _open(conf)

    def refresh(self) -> None:
        """Open the streams whose option changed since they were opened (``set`` while
        running, before the reload's new processes spawn). Processes spawned earlier keep
        the stream they were attached to until :meth:`close_superseded`.

        Raises:
            circus.process.StreamError: a stream class or option is bad (nothing changed).
        """
        changed = {
            name: self._watcher.settings.get(f"{name}_stream")
            for name in ("stdout", "stderr")
            if self._watcher.settings.get(f"{name}_stream") != self._opened_with.get(name)
        }
        opened: dict[str, Any] = {}
        try:
            for name, conf in changed.items():
                if conf is not None:
                    opened[name] = _open(conf)
        except BaseException:
            for stream in opened.values():  # stdout's opened, stderr's refused: none kept
                _close(stream)
            raise
        for name, conf in changed.items():
            old = self._streams.pop(name, None)
            if old is not None:
                self._superseded.append(old)
            if name in opened:
                self._streams[name] = opened[name]
            self._opened_with[name] = conf

    def close_superseded(self) -> None:
        """Close the streams :meth:`refresh` replaced (their processes are gone)."""
        streams, self._superseded = self._superseded, []
        for stream in streams:
            _close(stream)

    def observers_changed(self) -> None:
        """Attach or detach the observer hook after ``add/remove_output_observer``."""
        wanted = bool(self._watcher._events.observers)
        if self._redirector is None or wanted == self._observing:
            return
        if wanted:
            self._redirector.add_observer(self._watcher._events.output)
        else:
            self._redirector.remove_observer(self._watcher._events.output)
        self._observing = wanted

    def attach(self, proc: ProcessLike) -> None:
        """Start pumping ``proc``'s pipes, if it has any."""
        if proc.stdout is None and proc.stderr is None:
            return
        if self._redirector is None:
            from circus.process import OutputRedirector

            self._redirector = OutputRedirector()
            self._observing = False
            self.observers_changed()
        self._redirector.add(proc, self._streams.get("stdout"), self._streams.get("stderr"))

    def close(self) -> None:
        """Drain and stop pumping, then close the streams (at watcher stop)."""
        if self._redirector is not None:
            self._redirector.close()
            self._redirector = None
            self._observing = False
        for stream in [*self._streams.values(), *self._superseded]:
            _close(stream)
        self._streams.clear()
        self._superseded.clear()
        self._opened_with.clear()


def _room_for_pipes(count: int = 1) -> bool:
    """True while at least half the descriptor limit is free, or no spawn reserve is set,
    with room above it for the pipes of ``count`` processes spawned together.

    Only a supervisor that set a descriptor reserve (``circus.process.set_fd_reserve``, as
    circusd does) budgets its table; a watcher embedded elsewhere always pipes.
    """
    global _room
    from circus.process import fd_reserve, free_fds

    if fd_reserve() <= 0:
        return True
    now = time.monotonic()
    extra = 3 * (max(1, count) - 1)  # the batch's others: none of their pipes is open yet
    if _room is not None and now - _room[1] < _ROOM_RECHECK_S:
        # each spawn since the count took up to three descriptors of the margin
        left = _room[0] - 3 - extra
        _room = (left, _room[1])
        if left > 0 or _room[0] < -3 - extra:
            return left > 0
    # counting may mean listing every open descriptor: done at most once a second, or
    # when the margin counted last is spent
    half = resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 2
    left = free_fds(half) - half - extra
    _room = (left if left > 0 else -1000, now)
    return left > 0


_ROOM_RECHECK_S = 1.0
_room: tuple[int, float] | None = None  # descriptors left above half, when counted


def _open(conf: Any) -> Any:
    stream = _load(conf)
    opener = getattr(stream, "open", None)
    if callable(opener):
        opener()
    return stream


def _close(stream: Any) -> None:
    closer = getattr(stream, "close", None)
    if callable(closer):
        try:
            closer()
        except Exception:
            logger.exception("closing stream %r failed", stream)


def _load(conf: Any) -> Any:
    if not isinstance(conf, Mapping):
        return conf
    from circus.process.streams import load_stream

    options = dict(conf)
    cls = options.pop("class", "FileStream")
    return load_stream(cls, **options)
