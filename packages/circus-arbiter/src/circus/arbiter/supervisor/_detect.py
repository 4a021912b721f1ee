"""Tell a supervisord.conf from a Circus INI file by its section headers."""

from __future__ import annotations

import os
import re

__all__ = ["detect_format", "FORMATS"]

FORMATS = ("auto", "circus", "supervisor")
_HEADER = re.compile(r"^[ \t]*\[([^\]\n]+)\]", re.MULTILINE)
_SUPERVISOR = ("supervisord", "supervisorctl", "unix_http_server", "inet_http_server", "include")
_SUPERVISOR_KINDS = ("program", "group", "fcgi-program", "eventlistener", "rpcinterface")
_CIRCUS = ("env",)
_CIRCUS_KINDS = ("watcher", "socket", "plugin", "env")


def detect_format(path: str | os.PathLike[str]) -> str:
    """``"supervisor"`` when the file's sections are Supervisor's (``[supervisord]``,
    ``[program:x]``, ``[group:x]``...) and none is Circus's (``[watcher:x]``, ``[socket:x]``,
    ``[plugin:x]``, ``[env]``), else ``"circus"`` (also for an unreadable file: the Circus
    loader then reports the problem). A ``[circus]`` section may appear in either: in a
    supervisord.conf it sets circusd's own options (Supervisor ignores it)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            text = stream.read(1 << 20)
    except OSError:
        return "circus"
    supervisor = circus = False
    for match in _HEADER.finditer(text):
        name = match.group(1).strip()
        kind, colon, _ = name.partition(":")
        if name in _CIRCUS or (colon and kind in _CIRCUS_KINDS):
            circus = True
        elif name.lower() in _SUPERVISOR or (colon and kind in _SUPERVISOR_KINDS):
            supervisor = True
    return "supervisor" if supervisor and not circus else "circus"
