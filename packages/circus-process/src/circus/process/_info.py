"""psutil-backed process information in upstream's ``stats``/``info`` shape (spec/protocol.md §1.6).

psutil is imported lazily: spawning never pays for it.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._process_fields import ProcessFields

__all__ = ["process_info", "children_pids", "get_info", "bytes2human", "format_cpu_time"]

NA = "N/A"
GONE = "No such process (stopped?)"
INFO_KEYS = (
    "mem_info1",
    "mem_info2",
    "cpu",
    "mem",
    "ctime",
    "pid",
    "username",
    "nice",
    "create_time",
    "age",
    "started",
    "cmdline",
    "children",
    "wid",
)

_SYMBOLS = ("K", "M", "G", "T", "P", "E", "Z", "Y")


def bytes2human(n: int) -> str:
    """Format a byte count as upstream does: ``'512B'``, ``'1.39M'``."""
    if n < 1024:
        return f"{n}B"
    value = float(n)
    for symbol in _SYMBOLS:
        value /= 1024.0
        if value < 1024.0 or symbol == _SYMBOLS[-1]:
            return f"{value:.2f}{symbol}"
    raise AssertionError("unreachable")


def format_cpu_time(seconds: float) -> str:
    """Format CPU time as upstream's ``M:SS.cc`` (observed ``0:00.0``)."""
    minutes, secs = divmod(seconds, 60)
    hundredths = int((secs - int(secs)) * 100)
    return f"{int(minutes)}:{int(secs):02d}.{hundredths}"


def _field(fn: Any) -> Any:
    import psutil

    try:
        return fn()
    except psutil.AccessDenied:
        return NA


def get_info(proc: Any, *, with_children: bool = True) -> dict[str, Any]:
    """The info dict of one ``psutil.Process`` (without ``age/started/wid``).

    Raises psutil.NoSuchProcess if it vanished; a field that cannot be read is ``"N/A"``.
    """
    import psutil

    with proc.oneshot():
        mem = _field(proc.memory_info)
        times = _field(proc.cpu_times)
        cmdline = _field(proc.cmdline)
        if cmdline == NA or not cmdline:
            try:
                cmdline = proc.name()
            except psutil.Error:
                cmdline = NA
        else:
            cmdline = os.path.basename(cmdline[0])
        info: dict[str, Any] = {
            "mem_info1": NA if mem == NA else bytes2human(mem.rss),
            "mem_info2": NA if mem == NA else bytes2human(mem.vms),
            "cpu": _field(lambda: proc.cpu_percent(interval=None)),
            "mem": _field(lambda: round(proc.memory_percent(), 3)),
            "ctime": NA if times == NA else format_cpu_time(times.user + times.system),
            "pid": proc.pid,
            "username": _field(proc.username),
            "nice": _field(proc.nice),
            "create_time": _field(proc.create_time),
            "cmdline": cmdline,
        }
    if with_children:
        kids = []
        for child in _children(proc):
            try:
                kids.append(get_info(_cached(psutil.Process(child)), with_children=False))
            except psutil.NoSuchProcess:
                continue
        info["children"] = kids
    return info


#: How old (s) the shared /proc index behind ``children`` may be where the kernel does not
#: list children itself: stats are samples, and a fresh scan per call is what froze the daemon.
CHILDREN_MAX_AGE = 1.0


def _children(proc: Any) -> list[int]:
    import psutil

    from ._children import children_of

    kids = children_of(proc.pid, max_age=CHILDREN_MAX_AGE)
    if kids is not None:
        return kids
    try:  # no /proc to read: psutil's own (whole-host) lookup
        return [child.pid for child in proc.children()]
    except psutil.Error:
        return []


_cache: dict[int, Any] = {}


def _cached(proc: Any) -> Any:
    # cpu_percent(interval=None) measures since the previous call on the *same* object.
    import psutil

    key = proc.pid
    known = _cache.get(key)
    if known is not None:
        try:
            if known.create_time() == proc.create_time():
                return known
        except psutil.Error:
            pass
    if len(_cache) > 4096:
        _cache.clear()
    _cache[key] = proc
    return proc


def _psutil_of(process: ProcessFields) -> Any:
    import psutil

    if process._psutil is None:
        process._psutil = psutil.Process(process.pid)
    return process._psutil


def process_info(process: ProcessFields) -> dict[str, Any]:
    """Upstream's per-process ``stats`` dict.

    Keys: mem_info1, mem_info2, cpu, mem, ctime, pid, username, nice, create_time, age,
    started, cmdline, children, wid.

    Raises:
        ProcessGoneError: the process is gone; its message is upstream's answer for that case.
    """
    import psutil

    from ._errors import ProcessGoneError

    if process.pid is None or process.returncode is not None:
        raise ProcessGoneError(GONE)
    try:
        info = get_info(_psutil_of(process))
    except psutil.NoSuchProcess:
        raise ProcessGoneError(GONE) from None
    info["age"] = time.time() - (process.started or time.time())
    info["started"] = process.started
    info["wid"] = process.wid
    return info


def children_pids(process: ProcessFields) -> list[int]:
    """Direct children of a live process, else ``[]`` (as fresh as a /proc scan)."""
    from ._children import children_of

    if process.pid is None or process.returncode is not None:
        return []
    kids = children_of(process.pid)
    if kids is not None:
        return kids
    import psutil  # no /proc to read: psutil's own (whole-host) lookup

    try:
        return [c.pid for c in _psutil_of(process).children()]
    except psutil.Error:
        return []
