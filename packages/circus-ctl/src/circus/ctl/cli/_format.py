"""Plain-text rendering of answers, matching what Circus 0.19's circusctl prints.

The layouts of ``status``, ``list``, ``stats``, ``dstats`` and ``options`` are byte-for-byte
those of 0.19 (checked against a real 0.19 circusctl in tests/interop); the others follow the
same style. Colour is applied by the caller's :class:`~circus.ctl.cli._color.Palette`, which
is a no-op when output is not a terminal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._color import Palette

__all__ = [
    "format_dstats",
    "format_key_values",
    "format_list",
    "format_option_value",
    "format_options",
    "format_process_line",
    "format_sockets",
    "format_stats",
    "format_status",
]


def format_option_value(key: str, value: Any) -> str:
    """Render one option value: None as empty, ``env`` as sorted ``K=V,K2=V2``, else str()."""
    if value is None:
        return ""
    if key == "env" and isinstance(value, Mapping):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


def format_key_values(options: Mapping[str, Any], *, sort: bool = False) -> str:
    """Render ``key: value`` lines, in the answer's order or sorted by key."""
    keys = sorted(options) if sort else list(options)
    return "\n".join(f"{k}: {format_option_value(k, options[k])}" for k in keys)


def format_options(options: Mapping[str, Any]) -> str:
    """Render the ``options`` command's answer: ``key: value`` lines in the answer's order.

    0.19's circusctl does not sort them; its daemon sends the keys sorted, so a compatible
    daemon should too.
    """
    return format_key_values(options)


def format_status(answer: Mapping[str, Any], palette: Palette) -> str:
    """Render ``status``: sorted ``name: state`` lines, or the bare state of one watcher."""
    statuses = answer.get("statuses")
    if isinstance(statuses, Mapping):
        return "\n".join(
            f"{name}: {palette.state(str(state))}" for name, state in sorted(statuses.items())
        )
    return palette.state(str(answer.get("status")))


def format_list(answer: Mapping[str, Any]) -> str:
    """Render ``list``: comma-joined watcher names, or comma-joined pids."""
    items = answer.get("watchers")
    if items is None:
        items = answer.get("pids", [])
    return ",".join(str(item) for item in items)


def format_process_line(info: Any) -> str:
    """Render one process's stats: ``pid  cmdline user nice rss vms cpu mem ctime``."""
    if not isinstance(info, Mapping):
        return str(info)  # e.g. "No such process (stopped?)"
    fields = ("cmdline", "username", "nice", "mem_info1", "mem_info2", "cpu", "mem", "ctime")
    return f"{info.get('pid')}  " + " ".join(str(info.get(f, "N/A")) for f in fields)


def _process_block(pid: str, info: Any) -> list[str]:
    lines = [f"{pid}: {format_process_line(info)}"]
    if isinstance(info, Mapping):
        for child in info.get("children") or ():
            lines.append(f"   {format_process_line(child)}")
    return lines


def format_stats(answer: Mapping[str, Any]) -> str:
    """Render ``stats`` in its three shapes (all watchers, one watcher, one process)."""
    lines: list[str] = []
    if "infos" in answer:
        for watcher, processes in answer["infos"].items():
            lines.append(f"{watcher}:")
            for pid, info in processes.items():
                lines.extend(_process_block(pid, info))
    elif "process" in answer:
        lines.extend(_process_block(str(answer["process"]), answer.get("info")))
        lines.append("")  # 0.19 ends this shape with an empty line
    else:
        lines.append(f"{answer.get('name')}:")
        for pid, info in (answer.get("info") or {}).items():
            lines.extend(_process_block(pid, info))
    return "\n".join(lines)


def format_dstats(answer: Mapping[str, Any]) -> str:
    """Render ``dstats``: a ``Main Process:`` header and circusd's own stats line."""
    info = answer.get("info") or {}
    lines = ["Main Process:", f"    {format_process_line(info)}"]
    if isinstance(info, Mapping):
        for child in info.get("children") or ():
            lines.append(f"    {format_process_line(child)}")
    return "\n".join(lines)


def format_sockets(answer: Mapping[str, Any]) -> str:
    """Render ``listsockets``: ``fd:socket 'name' at host:port`` (or at the unix path)."""
    lines = []
    for sock in answer.get("sockets", []):
        where = sock.get("path") or f"{sock.get('host')}:{sock.get('port')}"
        lines.append(f"{sock.get('fd')}:socket '{sock.get('name')}' at {where}")
    return "\n".join(lines)
