"""``unshare(CLONE_FS)`` for the calling thread, bound through CPython's private ``_ctypes``.

Python 3.12 has ``os.unshare``; before it, the call is made the way
``circus.process._prctl`` makes ``prctl`` (the ``ctypes`` package would add resident memory
the import-footprint test forbids). Imported on first use only.
"""

from __future__ import annotations

import _ctypes
import os
from typing import TYPE_CHECKING

__all__ = ["CLONE_FS", "unshare_fs"]

CLONE_FS = 0x00000200  # <linux/sched.h>

if TYPE_CHECKING:
    _IntBase = _ctypes._SimpleCData[int]
else:
    _IntBase = _ctypes._SimpleCData  # not subscriptable at run time


class _CInt(_IntBase):
    """What ``ctypes.c_int`` is."""

    _type_ = "i"


class _Unshare(_ctypes.CFuncPtr):
    """``int unshare(int)``, keeping errno for ``get_errno``."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = _CInt


def unshare_fs() -> None:
    """Give the calling thread its own root directory, working directory and umask (its
    ``chdir``/``chroot``/``umask`` no longer touch the rest of the process, and the rest of
    the process no longer touches its own).

    Raises:
        OSError: the kernel refused.
    """
    native = getattr(os, "unshare", None)
    if native is not None:  # pragma: no cover - Python 3.12+
        native(CLONE_FS)
        return
    # dlopen(NULL) is the running program (libc included); typeshed only allows a path.
    call = _Unshare(_ctypes.dlsym(_ctypes.dlopen(None, os.RTLD_NOW), "unshare"))  # type: ignore[arg-type]
    if call(CLONE_FS) != 0:
        err = _ctypes.get_errno()
        raise OSError(err, os.strerror(err))
