"""Exceptions raised by circus.process.

Every one derives from :class:`ProcessError`; each subclass says what kind of failure it is:
a child that could not be started (:class:`SpawnError`, with the OS error behind it), a bad
stream option (:class:`StreamError`), a call the process's state does not allow
(:class:`ProcessStateError`), a process that is no longer running (:class:`ProcessGoneError`).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ProcessError", "ProcessGoneError", "ProcessStateError", "SpawnError", "StreamError"]


class ProcessError(Exception):
    """Base class of every error circus.process raises on purpose."""


class ProcessStateError(ProcessError):
    """The call does not fit the process's state: spawned twice, asked about before its
    spawn, or watched from a second event loop."""


class ProcessGoneError(ProcessStateError):
    """The process has exited (or was never spawned), so there is nothing to read about it.

    The message is upstream's answer for that case: ``No such process (stopped?)``.
    """


class SpawnError(ProcessError):
    """A child could not be started; nothing was left behind (no child, no fd).

    Attributes:
        option: the Process option at fault (``"cmd"``, ``"uid"``, ``"working_dir"``...).
        value: the offending value, as given.
        errno: the OS error behind it, if any: ``EMFILE``, ``ENFILE``, ``EAGAIN`` or
            ``ENOMEM`` mean the host ran short of something, and trying later may work.
    """

    def __init__(self, option: str, value: Any, reason: str, errno: int | None = None) -> None:
        self.option = option
        self.value = value
        self.reason = reason
        self.errno = errno
        super().__init__(f"cannot spawn: {option}={value!r}: {reason}")


class StreamError(ProcessError):
    """A stream class could not be loaded or was given a bad option.

    Attributes:
        option: the stream option at fault (``"class"``, ``"max_bytes"``...).
        value: the offending value, as given.
    """

    def __init__(self, option: str, value: Any, reason: str) -> None:
        self.option = option
        self.value = value
        self.reason = reason
        super().__init__(f"bad stream option {option}={value!r}: {reason}")
