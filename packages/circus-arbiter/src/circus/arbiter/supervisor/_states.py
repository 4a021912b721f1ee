"""Supervisor's process and daemon states and its XML-RPC fault codes, as numbers and names.

Only constants: the wire values ``supervisorctl`` and event listeners compare against.
"""

from __future__ import annotations

import enum

__all__ = ["Fault", "ProcState", "RPC_API_VERSION", "SUPERVISOR_VERSION"]

RPC_API_VERSION = "3.0"
"""What ``supervisor.getAPIVersion`` answers (``supervisorctl`` refuses another one)."""

SUPERVISOR_VERSION = "4.3.0"
"""The Supervisor release whose interface is served (``getSupervisorVersion``)."""


class ProcState(enum.IntEnum):
    """A process's state as Supervisor numbers it (``state``/``statename`` of process info)."""

    STOPPED = 0
    STARTING = 10
    RUNNING = 20
    BACKOFF = 30
    STOPPING = 40
    EXITED = 100
    FATAL = 200
    UNKNOWN = 1000


#: States in which a process has no pid worth showing.
STOPPED_STATES = frozenset(
    {ProcState.STOPPED, ProcState.EXITED, ProcState.FATAL, ProcState.UNKNOWN}
)
RUNNING_STATES = frozenset({ProcState.RUNNING, ProcState.BACKOFF, ProcState.STARTING})


class Fault(enum.IntEnum):
    """Supervisor's XML-RPC fault codes; a fault string is ``NAME: detail``."""

    UNKNOWN_METHOD = 1
    INCORRECT_PARAMETERS = 2
    BAD_ARGUMENTS = 3
    SIGNATURE_UNSUPPORTED = 4
    SHUTDOWN_STATE = 6
    BAD_NAME = 10
    BAD_SIGNAL = 11
    NO_FILE = 20
    NOT_EXECUTABLE = 21
    FAILED = 30
    ABNORMAL_TERMINATION = 40
    SPAWN_ERROR = 50
    ALREADY_STARTED = 60
    NOT_RUNNING = 70
    SUCCESS = 80
    ALREADY_ADDED = 90
    STILL_RUNNING = 91
    CANT_REREAD = 92
