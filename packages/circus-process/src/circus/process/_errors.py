"""Exceptions raised by circus.process."""

from __future__ import annotations

from typing import Any

__all__ = ["ProcessError", "SpawnError", "StreamError"]


class ProcessError(Exception):
    """Base class of every error circus.process raises on purpose."""


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
