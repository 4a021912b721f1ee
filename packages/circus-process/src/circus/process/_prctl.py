"""``prctl(2)`` for the subreaper calls, bound through CPython's private ``_ctypes``.

Why not ``ctypes``: circusd makes itself a child subreaper at every start, and the ``ctypes``
package on top of the ``_ctypes`` extension would add about 0.13 MiB to every daemon's
resident memory for these few lines (the import-footprint test forbids it). ``_ctypes`` is
what ``ctypes.c_int`` and ``ctypes.CDLL(None).prctl`` are made of, so the two classes below are
those, spelled directly. This module is imported on first use only: a program that never asks
for the subreaper does not load ``_ctypes`` at all.
"""

from __future__ import annotations

import _ctypes
import os
from typing import TYPE_CHECKING

__all__ = ["prctl", "prctl_read_int"]

if TYPE_CHECKING:
    _IntBase = _ctypes._SimpleCData[int]
else:
    _IntBase = _ctypes._SimpleCData  # not subscriptable at run time


class _CInt(_IntBase):
    """What ``ctypes.c_int`` is."""

    _type_ = "i"


class _Prctl(_ctypes.CFuncPtr):
    """``int prctl(int, ...)``, keeping errno for ``get_errno``."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _CInt


# dlopen(NULL) is the running program (libc included); typeshed only allows a path.
_call = _Prctl(_ctypes.dlsym(_ctypes.dlopen(None, os.RTLD_NOW), "prctl"))  # type: ignore[arg-type]


def prctl(option: int, arg: int = 0) -> None:
    """``prctl(option, arg, 0, 0, 0)``; OSError on failure."""
    _checked(_call(option, arg, 0, 0, 0))


def prctl_read_int(option: int) -> int:
    """``prctl(option, &value, 0, 0, 0)`` for the options that write an int; the value."""
    value = _CInt(0)
    _checked(_call(option, _ctypes.byref(value), 0, 0, 0))
    return value.value


def _checked(result: int) -> None:
    if result != 0:
        err = _ctypes.get_errno()
        raise OSError(err, os.strerror(err))
