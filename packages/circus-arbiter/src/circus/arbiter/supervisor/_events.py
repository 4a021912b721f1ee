"""Supervisor's event types: their names, which type each one is a kind of (``events=``
subscribes to a type and every kind of it), and the payloads listeners read.

Payloads are ``key:value`` pairs separated by spaces, as Supervisor writes them; a log event
adds a newline and the output data after its pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._states import ProcState

__all__ = ["EVENT_TYPES", "Event", "is_kind_of", "log_payload", "state_payload", "tick_payload"]

#: Every event type served and the type it is a kind of ("EVENT" is the root).
EVENT_TYPES: dict[str, str | None] = {
    "EVENT": None,
    "PROCESS_STATE": "EVENT",
    **{f"PROCESS_STATE_{s.name}": "PROCESS_STATE" for s in ProcState if s is not ProcState.UNKNOWN},
    "PROCESS_STATE_UNKNOWN": "PROCESS_STATE",
    "TICK": "EVENT",
    "TICK_5": "TICK",
    "TICK_60": "TICK",
    "TICK_3600": "TICK",
    "PROCESS_LOG": "EVENT",
    "PROCESS_LOG_STDOUT": "PROCESS_LOG",
    "PROCESS_LOG_STDERR": "PROCESS_LOG",
    "PROCESS_COMMUNICATION": "EVENT",
    "PROCESS_COMMUNICATION_STDOUT": "PROCESS_COMMUNICATION",
    "PROCESS_COMMUNICATION_STDERR": "PROCESS_COMMUNICATION",
    "SUPERVISOR_STATE_CHANGE": "EVENT",
    "SUPERVISOR_STATE_CHANGE_RUNNING": "SUPERVISOR_STATE_CHANGE",
    "SUPERVISOR_STATE_CHANGE_STOPPING": "SUPERVISOR_STATE_CHANGE",
    "REMOTE_COMMUNICATION": "EVENT",
    "PROCESS_GROUP": "EVENT",
    "PROCESS_GROUP_ADDED": "PROCESS_GROUP",
    "PROCESS_GROUP_REMOVED": "PROCESS_GROUP",
    "EVENT_LISTENER_STATE": "EVENT",
}

#: Seconds of each tick event.
TICKS = {"TICK_5": 5, "TICK_60": 60, "TICK_3600": 3600}


@dataclass(frozen=True)
class Event:
    """One event: its global ``serial`` (1, 2, ... across every type), name and payload."""

    serial: int
    name: str
    payload: bytes


def is_kind_of(name: str, subscribed: frozenset[str]) -> bool:
    """Whether event ``name`` is one of the ``subscribed`` types or a kind of one."""
    current: str | None = name
    while current is not None:
        if current in subscribed:
            return True
        current = EVENT_TYPES.get(current)
    return False


def state_payload(
    processname: str,
    groupname: str,
    old: ProcState,
    new: ProcState,
    *,
    pid: int,
    tries: int,
    expected: bool,
) -> bytes:
    """``PROCESS_STATE_*``: name, group, ``from_state``, then what that state carries:
    ``tries`` (STARTING, BACKOFF), ``pid`` (RUNNING, STOPPING, STOPPED), ``expected`` and
    ``pid`` (EXITED)."""
    pairs = [("processname", processname), ("groupname", groupname), ("from_state", old.name)]
    if new in (ProcState.STARTING, ProcState.BACKOFF):
        pairs.append(("tries", str(tries)))
    elif new in (ProcState.RUNNING, ProcState.STOPPING, ProcState.STOPPED):
        pairs.append(("pid", str(pid)))
    elif new is ProcState.EXITED:
        pairs += [("expected", "1" if expected else "0"), ("pid", str(pid))]
    return " ".join(f"{k}:{v}" for k, v in pairs).encode()


def tick_payload(when: int) -> bytes:
    """``TICK_*``: ``when:`` the epoch second the period began."""
    return f"when:{when}".encode()


def log_payload(processname: str, groupname: str, pid: int, channel: str, data: bytes) -> bytes:
    """``PROCESS_LOG_*``: name, group, pid, channel, a newline, then the data."""
    head = f"processname:{processname} groupname:{groupname} pid:{pid} channel:{channel}\n"
    return head.encode() + data
