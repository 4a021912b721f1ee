"""Canned answers shaped like Circus 0.19's (spec/protocol.md §6), for FakeDaemon.

Values come from a live 0.19 daemon; callables build the answer from the request, as the
real daemon's answer depends on the properties (e.g. ``list`` with or without ``name``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["CANNED_REPLIES", "PID_INFO", "SH_INFO"]

PID_INFO = {
    "mem_info1": "1.52M",
    "mem_info2": "2.44M",
    "cpu": 0.0,
    "mem": 0.006,
    "ctime": "0:00.0",
    "pid": 7692,
    "username": "root",
    "nice": 0,
    "create_time": 1795660568.21,
    "age": 9.4,
    "cmdline": "sleep",
    "children": [],
    "started": 1795660568.7,
    "wid": 1,
}
SH_INFO = {
    **PID_INFO,
    "pid": 7690,
    "cmdline": "sh",
    "mem_info1": "1.65M",
    "mem_info2": "2.53M",
    "mem": 0.007,
    "children": [{**PID_INFO, "pid": 7750, "mem_info1": "1.50M", "children": []}],
}

CANNED_REPLIES: dict[str, Any] = {
    "list": lambda r: (
        {"pids": [7692, 7693]}
        if r["properties"].get("name")
        else {"watchers": ["circusd-stats", "echoer", "sleeper"]}
    ),
    "status": lambda r: (
        {"status": "active"}
        if r["properties"].get("name")
        else {"statuses": {"sleeper": "active", "echoer": "stopped", "circusd-stats": "active"}}
    ),
    "numwatchers": {"numwatchers": 3},
    "numprocesses": {"numprocesses": 4},
    "globaloptions": {
        "options": {
            "endpoint": "ipc:///x/ctrl.sock",
            "stats_endpoint": "ipc:///x/stats.sock",
            "pubsub_endpoint": "ipc:///x/pub.sock",
            "check_delay": 1.0,
            "multicast_endpoint": "",
        }
    },
    "options": {
        "options": {
            "numprocesses": 2,
            "cmd": "sleep 1000",
            "env": {"B": "2", "A": "1"},
            "uid": None,
            "shell": False,
            "stdout_stream_conf": {},
            "__name__": "watcher:sleeper",
        }
    },
    "get": {"options": {"numprocesses": 2, "cmd": "sleep 1000"}},
    "listsockets": {
        "sockets": [
            {"fd": 6, "name": "web", "backlog": 2048, "host": "127.0.0.1", "port": 44179},
            {"fd": 7, "name": "unix", "backlog": 2048, "path": "/tmp/x.sock"},
        ]
    },
    "dstats": {"info": {**PID_INFO, "pid": 7686, "cmdline": "python", "mem_info1": "33.61M"}},
    "stats": lambda r: (
        {"process": r["properties"]["process"], "info": SH_INFO}
        if "process" in r["properties"]
        else {"name": r["properties"]["name"], "info": {"7692": PID_INFO}}
        if "name" in r["properties"]
        else {"infos": {"echoer": {"7690": SH_INFO}, "sleeper": {"7692": PID_INFO}}}
    ),
    "incr": lambda r: {"numprocesses": 5} if r["properties"].get("waiting") else {},
    "decr": lambda r: {"numprocesses": 3} if r["properties"].get("waiting") else {},
    **{
        name: {}
        for name in (
            *("start", "stop", "restart", "reload", "reloadconfig", "quit"),
            *("add", "rm", "set", "signal", "kill"),
        )
    },
}
"""Replies for FakeDaemon covering every read command and the mutating ones (bare ok)."""
