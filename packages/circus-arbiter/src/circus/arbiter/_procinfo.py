"""psutil facts about a pid in upstream's ``stats``/``dstats`` shape (spec/protocol.md §1.6)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psutil

__all__ = ["process_info", "watcher_processes"]

NA = "N/A"


def _human(size: float) -> str:
    for unit in ("", "K", "M", "G", "T"):
        if abs(size) < 1024 or unit == "T":
            return f"{size:.2f}{unit}" if unit else f"{int(size)}"
        size /= 1024
    return str(size)  # pragma: no cover


def _ctime(proc: psutil.Process) -> str:
    t = proc.cpu_times()
    total = t.user + t.system
    return f"{int(total // 60)}:{total % 60:05.2f}"


def process_info(pid: int, started: float | None = None, children: bool = True) -> Any:
    """The info dict of one pid, or upstream's ``"No such process (stopped?)"`` string."""
    try:
        proc = _cached(pid)
        with proc.oneshot():
            info: dict[str, Any] = {}
            for key, getter in _FIELDS:
                try:
                    info[key] = getter(proc)
                except psutil.AccessDenied:
                    info[key] = NA
            info["pid"] = pid
            info["age"] = time.time() - (started or info.get("create_time") or time.time())
            if started is not None:
                info["started"] = started
            if children:
                kids = []
                for child in _children(proc):
                    child_info = process_info(child, children=False)
                    if isinstance(child_info, dict):
                        child_info.pop("age", None)
                        kids.append(child_info)
                info["children"] = kids
            return info
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return "No such process (stopped?)"


def _children(proc: psutil.Process) -> list[int]:
    # Not proc.children(): psutil reads the stat file of every process on the host per call.
    from circus.process import children_of

    kids = children_of(proc.pid, max_age=1.0)  # one /proc scan per stats round at most
    return [c.pid for c in proc.children()] if kids is None else kids


# psutil measures cpu% between two calls on the same Process object, so objects are kept
# (bounded, pruned of dead pids) to give stats a meaningful cpu value from the second call on.
_CACHE: dict[int, psutil.Process] = {}


_CACHE_LOCK = threading.Lock()  # stats rounds and dstats may sample from several threads


def _cached(pid: int) -> psutil.Process:
    with _CACHE_LOCK:
        proc = _CACHE.get(pid)
        if proc is None or not proc.is_running():
            if len(_CACHE) > 4096:
                for old in [p for p, obj in _CACHE.items() if not obj.is_running()]:
                    del _CACHE[old]
            proc = _CACHE[pid] = psutil.Process(pid)
        return proc


_FIELDS = (
    ("mem_info1", lambda p: _human(p.memory_info().rss)),
    ("mem_info2", lambda p: _human(p.memory_info().vms)),
    ("cpu", lambda p: p.cpu_percent(interval=None)),
    ("mem", lambda p: round(p.memory_percent(), 3)),
    ("ctime", _ctime),
    ("username", lambda p: p.username()),
    ("nice", lambda p: p.nice()),
    ("create_time", lambda p: p.create_time()),
    ("cmdline", lambda p: os.path.basename((p.cmdline() or [p.name()])[0])),
)


def watcher_processes(watcher: Any) -> list[Any]:
    """The watcher's live Process objects, whatever container the watcher keeps them in."""
    procs = getattr(watcher, "processes", None)
    if procs is None:
        return []
    if isinstance(procs, dict):
        return list(procs.values())
    return list(procs)
