"""``[program:x]`` (and ``[fcgi-program:x]``, ``[eventlistener:x]``) → one Circus watcher per
Supervisor process.

Each process of a program becomes a watcher named by its supervisorctl namespec, with
``numprocesses = 1``: Supervisor starts, stops, retries and gives up on each process on its
own, and so does a watcher. The watcher's options are produced as Circus INI text (the
``circusctl convert`` output is exactly these lines) carrying the Supervisor file and line they
come from, then validated by the Circus loader like any ``[watcher:x]`` section.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from circus.watcher import MAX_TOTAL_PROCESSES

from . import _values as v
from ._model import SupProcess, SupSection, namespec
from ._reader import SupValue

__all__ = ["PROGRAM_OPTIONS", "ProcessPlan", "ProgramContext", "plan_processes"]

T = TypeVar("T")

#: Every option of a program section we read (fcgi-program and eventlistener add theirs).
PROGRAM_OPTIONS = (
    "command", "process_name", "numprocs", "numprocs_start", "priority", "autostart",
    "autorestart", "startsecs", "startretries", "exitcodes", "stopsignal", "stopwaitsecs",
    "stopasgroup", "killasgroup", "user", "redirect_stderr", "environment", "directory",
    "umask", "serverurl",
    *(f"{s}_{o}" for s in ("stdout", "stderr") for o in (
        "logfile", "logfile_maxbytes", "logfile_backups", "capture_maxbytes",
        "events_enabled", "syslog")),
)  # fmt: skip
FCGI_OPTIONS = ("socket", "socket_backlog", "socket_owner", "socket_mode")
LISTENER_OPTIONS = ("buffer_size", "events", "result_handler")
_DOLLAR = re.compile(r"\$[A-Z]")
_SH_REDIRECT = 'exec "$@" 2>&1'
_DEFAULT_MAXBYTES = 50 * 1024 * 1024
_SUCCESS: tuple[int, ...] = (0,)
_STD_FILES = {
    f"{prefix}{suffix}": fd
    for fd, names in ((1, ("stdout", "1")), (2, ("stderr", "2")))
    for prefix, suffix in (
        ("/dev/", names[0]),
        ("/dev/fd/", names[1]),
        ("/proc/self/fd/", names[1]),
    )
}
# The backoff Circus applies between failed starts (Supervisor waits 1, 2, 3... s).
BACKOFF_INITIAL = 1.0
BACKOFF_FACTOR = 2.0
BACKOFF_MAX = 30.0


@dataclass
class ProgramContext:
    """What every program section shares: expansion names, ``[supervisord]`` defaults."""

    names: Mapping[str, Any]
    environment: Mapping[str, str] = field(default_factory=dict)
    user: str | None = None
    directory: str | None = None
    childlogdir: str | None = None
    cwd: str = field(default_factory=os.getcwd)


@dataclass
class ProcessPlan:
    """One process: its :class:`SupProcess`, the Circus watcher options as INI text (with
    where each comes from), and the child's environment additions."""

    process: SupProcess
    options: dict[str, SupValue]
    env: dict[str, str]


def _typed(section: SupSection, key: str, text: str | None, convert: Callable[[str], T],
           default: T, expected: str) -> T:  # fmt: skip
    if text is None:
        return default
    try:
        return convert(text)
    except ValueError:
        raise section.error(key, expected) from None


def check_name(section: SupSection, key: str | None, name: str) -> str:
    """A process or group name: no space, colon or slash (Supervisor's rule)."""
    name = name.strip()
    if not name or any(char in name for char in " :/"):
        raise section.error(key, f"expected a name without spaces, ':' or '/' (got {name!r})")
    return name


def plan_processes(
    section: SupSection,
    group: str,
    ctx: ProgramContext,
    kind: str = "program",
    room: int | None = None,
) -> list[ProcessPlan]:
    """The processes of one program section, in ``process_num`` order.

    ``room``: how many more processes the daemon's ceiling allows (checked before any is
    planned).

    Raises:
        ConfigError: a missing command, an invalid value, ``numprocs > 1`` without
            ``%(process_num)`` in ``process_name``, ``stopasgroup`` without ``killasgroup``,
            ``numprocs`` above ``room``.
    """
    program = check_name(section, None, section.name.partition(":")[2])
    base = {**ctx.names, "program_name": program, "group_name": group}

    def text(key: str, names: Mapping[str, Any] = base) -> str | None:
        return v.expand(section, key, names)

    numprocs = _typed(section, "numprocs", text("numprocs"), lambda t: v.to_int(t, 1, 100_000),
                      1, "expected an integer >= 1")  # fmt: skip
    start = _typed(section, "numprocs_start", text("numprocs_start"),
                   lambda t: v.to_int(t, 0), 0, "expected an integer >= 0")  # fmt: skip
    if room is not None and numprocs > room:
        raise section.error(
            "numprocs" if "numprocs" in section.options else None,
            f"expected at most {room} more processes: the daemon's ceiling is "
            f"{MAX_TOTAL_PROCESSES} processes in all",
        )
    raw_name = section.get("process_name", "%(program_name)s") or ""
    if numprocs > 1 and "%(process_num)" not in raw_name:
        raise section.error(
            "process_name" if "process_name" in section.options else "numprocs",
            "expected %(process_num) in process_name when numprocs > 1 "
            "(e.g. process_name = %(program_name)s_%(process_num)02d)",
        )
    common = _common_options(section, text, kind)
    plans = []
    for num in range(start, start + numprocs):
        names = {**base, "process_num": num, "numprocs": numprocs}
        env_text = text("environment", names) or ""
        env: dict[str, str] = _typed(section, "environment", env_text, v.to_env, {},
                     'expected KEY=value pairs separated by commas (quote values holding '
                     'commas: KEY="a,b")')  # fmt: skip
        names.update(v.env_expansions(env))
        name_text = v.expand_text(
            section, "process_name", raw_name, v.names_for(section, "process_name", names)
        )
        name = check_name(section, "process_name", name_text)
        plans.append(_plan_one(section, group, program, kind, num, name, names, env, ctx, common))
    return plans


def _common_options(
    section: SupSection, text: Callable[..., str | None], kind: str
) -> dict[str, Any]:
    """The typed, process-independent options of a program section."""
    s = section

    def get(key: str, convert: Callable[[str], T], default: T, expected: str) -> T:
        return _typed(s, key, text(key), convert, default, expected)

    out: dict[str, Any] = {
        "priority": get("priority", lambda t: v.to_int(t, -(2**31), 2**31 - 1),
                        -1 if kind == "eventlistener" else 999, "expected an integer"),
        "autostart": get("autostart", v.to_bool, True, "expected true or false"),
        "autorestart": get("autorestart", v.to_autorestart, "on-failure",
                           "expected true, false or unexpected"),
        "startsecs": get("startsecs", lambda t: v.to_int(t, 0, 31_536_000), 1,
                         "expected an integer number of seconds >= 0"),
        "startretries": get("startretries", lambda t: v.to_int(t, 0, 1_000_000), 3,
                            "expected an integer >= 0"),
        "exitcodes": get("exitcodes", v.to_exitcodes, _SUCCESS,
                         "expected a comma-separated list of exit codes 0..255"),
        "stopsignal": get("stopsignal", v.to_signal, int(signal.SIGTERM),
                          "expected a signal name (TERM, HUP, INT, QUIT, KILL, USR1, USR2) "
                          "or number"),
        "stopwaitsecs": get("stopwaitsecs", lambda t: v.to_int(t, 0, 31_536_000), 10,
                            "expected an integer number of seconds >= 0"),
        "stopasgroup": get("stopasgroup", v.to_bool, False, "expected true or false"),
        "redirect_stderr": get("redirect_stderr", v.to_bool, False, "expected true or false"),
        "umask": get("umask", v.to_octal, None, "expected an octal mask such as 022"),
    }  # fmt: skip
    out["killasgroup"] = get("killasgroup", v.to_bool, out["stopasgroup"], "expected true or false")
    if out["stopasgroup"] and not out["killasgroup"]:
        raise s.error("killasgroup", "expected true when stopasgroup is true")
    if kind == "eventlistener" and out["redirect_stderr"]:
        raise s.error("redirect_stderr", "must be false for an event listener (its stdout "
                      "speaks the event-listener protocol)")  # fmt: skip
    for stream in ("stdout", "stderr"):
        out[f"{stream}_logfile_maxbytes"] = get(
            f"{stream}_logfile_maxbytes", v.to_bytes, _DEFAULT_MAXBYTES,
            "expected a size in bytes, optionally with a KB, MB or GB suffix")  # fmt: skip
        out[f"{stream}_logfile_backups"] = get(f"{stream}_logfile_backups",
                                               lambda t: v.to_int(t, 0, 10_000), 10,
                                               "expected an integer >= 0")  # fmt: skip
        for flag in ("events_enabled", "syslog"):
            out[f"{stream}_{flag}"] = get(f"{stream}_{flag}", v.to_bool, False,
                                          "expected true or false")  # fmt: skip
        out[f"{stream}_capture_maxbytes"] = get(f"{stream}_capture_maxbytes", v.to_bytes, 0,
                                                "expected a size in bytes")  # fmt: skip
    user = text("user")
    if user is not None:
        entry = _typed(s, "user", user, v.to_user, None, "expected an existing user name or uid")
        assert entry is not None
        out["user"] = entry
    _warn_unhonoured(s, out, kind)
    return out


def _warn_unhonoured(s: SupSection, out: dict[str, Any], kind: str) -> None:
    known = set(PROGRAM_OPTIONS)
    if kind == "fcgi-program":
        known.update(FCGI_OPTIONS)
    if kind == "eventlistener":
        known.update(LISTENER_OPTIONS)
    for key in s.options:
        if key not in known:
            s.warn(key, "unknown option (Supervisor ignores it); ignored")
    if out["killasgroup"] and not out["stopasgroup"] and "killasgroup" in s.options:
        s.warn("killasgroup", "without stopasgroup: mapped to stop_children = true, so the "
               "stop signal also goes to the process's children (Supervisor sends only "
               "the final SIGKILL to the group)")  # fmt: skip
    for stream in ("stdout", "stderr"):
        if out[f"{stream}_capture_maxbytes"]:
            s.warn(f"{stream}_capture_maxbytes", "capture mode is not supported; ignored "
                   "(no PROCESS_COMMUNICATION events)")  # fmt: skip
        if out[f"{stream}_syslog"]:
            s.warn(f"{stream}_syslog", "not sent to syslog; the output goes where "
                   f"{stream}_logfile says")  # fmt: skip


def _plan_one(
    s: SupSection, group: str, program: str, kind: str, num: int, name: str,
    names: dict[str, Any], env: dict[str, str], ctx: ProgramContext, common: dict[str, Any],
) -> ProcessPlan:  # fmt: skip
    spec = namespec(group, name)
    options: dict[str, SupValue] = {}

    def put(key: str, value: object, source: str | None = None) -> None:
        filename, lineno = s.where(source)
        options[key] = SupValue(str(value), filename, lineno)

    command = v.expand(s, "command", names)
    if command is None or not command.strip():
        raise s.error("command", "expected a command (command is required)")
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise s.error("command", f"expected a command line shlex can split ({exc})") from None
    if not argv:
        raise s.error("command", "expected a command (command is required)")
    if common["redirect_stderr"]:
        # the child's stderr is its stdout, as in Supervisor: sh makes fd 2 a copy of fd 1
        # and then execs the command, so the pid is the command's
        put("cmd", "/bin/sh", "redirect_stderr")
        put("args", shlex.join(["-c", _SH_REDIRECT, argv[0], *argv]), "command")
    else:
        put("cmd", command, "command")
    put("numprocesses", 1, "numprocs")
    put("copy_env", "true")
    directory = v.expand(s, "directory", names)
    if directory is not None:
        put("working_dir", os.path.expanduser(directory), "directory")
    elif ctx.directory is not None:
        put("working_dir", ctx.directory)
    user = common.get("user")
    if user is not None and ctx.user is not None and user.pw_name != ctx.user and _uid(ctx.user):
        # supervisord runs as [supervisord] user and cannot switch to another one
        raise s.error("user", f"expected {ctx.user} or no user: [supervisord] user = "
                      f"{ctx.user} cannot start a program as another user")  # fmt: skip
    if user is not None:
        put("uid", user.pw_name, "user")
        put("gid", user.pw_gid, "user")
    elif ctx.user is not None and _uid(ctx.user) != os.geteuid():  # else: inherited anyway
        import pwd

        put("uid", ctx.user)
        put("gid", pwd.getpwnam(ctx.user).pw_gid)
    if common["umask"] is not None:
        put("umask", f"{common['umask']:03o}", "umask")
    put("priority", -common["priority"], "priority")
    put("autostart", str(common["autostart"]).lower(), "autostart")
    put("respawn", common["autorestart"], "autorestart")
    if common["autorestart"] == "always":
        # every exit is replaced anyway; an exit within startsecs, even with an expected code,
        # is a failed start (a program that daemonizes and exits 0 at once is given up on)
        put("success_exit_codes", "", "exitcodes")
    else:
        put("success_exit_codes", ",".join(map(str, common["exitcodes"])), "exitcodes")
    put("stop_signal", signal.Signals(common["stopsignal"]).name, "stopsignal")
    put("graceful_timeout", common["stopwaitsecs"], "stopwaitsecs")
    if common["killasgroup"]:
        put("stop_children", "true", "stopasgroup" if common["stopasgroup"] else "killasgroup")
    _restart_policy(put, common)
    logs = {
        stream: _stream(s, stream, names, common, ctx, spec, put) for stream in ("stdout", "stderr")
    }
    if kind == "eventlistener":
        put("close_child_stdin", "false")

    child_env = dict(ctx.environment)
    child_env.update(env)
    child_env.update(SUPERVISOR_ENABLED="1", SUPERVISOR_PROCESS_NAME=name,
                     SUPERVISOR_GROUP_NAME=group)  # fmt: skip
    serverurl = v.expand(s, "serverurl", names)
    if serverurl is not None and serverurl.strip().upper() != "AUTO":
        child_env["SUPERVISOR_SERVER_URL"] = serverurl.strip()
    for key, value in env.items():
        if _DOLLAR.search(value):
            s.warn("environment", f"{key}: '$NAME' in a value is replaced from circusd's "
                   "environment by Circus (Supervisor keeps it as written)")  # fmt: skip
    filename, lineno = s.where(None)
    process = SupProcess(
        namespec=spec, group=group, name=name, program=program, kind=kind, process_num=num,
        stdout_logfile=logs["stdout"], stderr_logfile=logs["stderr"],
        redirect_stderr=common["redirect_stderr"],
        stdout_events_enabled=common["stdout_events_enabled"],
        stderr_events_enabled=common["stderr_events_enabled"],
        autorestart=common["autorestart"], exitcodes=tuple(common["exitcodes"]),
        startsecs=common["startsecs"], startretries=common["startretries"],
        priority=common["priority"],
        filename=filename, lineno=lineno,
    )  # fmt: skip
    return ProcessPlan(process, options, child_env)


def _uid(name: str) -> int:
    import pwd

    return pwd.getpwnam(name).pw_uid


def _restart_policy(put: Callable[..., None], common: dict[str, Any]) -> None:
    """startsecs/startretries: a process that exits before ``startsecs`` failed to start;
    after ``startretries`` retries of such failures in a row, Supervisor marks it FATAL.
    Here: the restart policy's failure streak ends when a process stayed up ``startsecs``
    (``backoff_reset``), and ``give_up_after = startretries + 1`` failures in a row stop the
    watcher for good (emitting ``give_up``). Failed spawns (no such executable...) are
    retried ``startretries`` times too (``max_retry``)."""
    startsecs, retries = common["startsecs"], common["startretries"]
    put("max_retry", retries, "startretries")
    put("backoff_initial", BACKOFF_INITIAL, "startsecs")
    put("backoff_factor", BACKOFF_FACTOR, "startsecs")
    put("backoff_max", BACKOFF_MAX, "startsecs")
    put("backoff_reset", startsecs, "startsecs")
    if startsecs > 0:  # with 0, a process is RUNNING at once: Supervisor never gives up
        put("give_up_after", retries + 1, "startretries")


def _stream(
    s: SupSection, stream: str, names: Mapping[str, Any], common: dict[str, Any],
    ctx: ProgramContext, spec: str, put: Callable[..., None],
) -> str | None:  # fmt: skip
    """Set ``<stream>_stream.*``; return the log file's path (``None``: no file)."""
    key = f"{stream}_logfile"
    if stream == "stderr" and common["redirect_stderr"]:
        if s.get(key) not in (None, "") and (s.get(key) or "").lower() not in ("auto", "none"):
            s.warn(key, "ignored: redirect_stderr sends stderr to stdout_logfile")
        return None
    text = v.expand(s, key, names)
    value = "AUTO" if text is None else text.strip()
    lowered = value.lower()
    maxbytes = common[f"{key}_maxbytes"]
    backups = common[f"{key}_backups"]
    prefix = f"{stream}_stream"
    if lowered in ("none", "off", ""):
        if not common[f"{stream}_events_enabled"]:
            put(f"close_child_{stream}", "true", key)
        return None
    if lowered == "syslog":
        s.warn(key, "syslog is not supported; the output is kept in circusd's memory "
               "(circusctl logs) instead")  # fmt: skip
        return None
    if lowered == "auto":
        if ctx.childlogdir is None:
            return None  # kept in circusd's memory: circusctl logs, supervisorctl tail
        path = os.path.join(ctx.childlogdir, f"{spec.replace(':', '_')}-{stream}.log")
    else:
        path = os.path.join(ctx.cwd, os.path.expanduser(value))
    if path in _STD_FILES:
        if maxbytes and f"{key}_maxbytes" in s.options:
            s.warn(f"{key}_maxbytes", f"{value} is not rotated; ignored")
        if _STD_FILES[path] == 1:
            put(f"{prefix}.class", "StdoutStream", key)
            return None
        put(f"{prefix}.class", "FileStream", key)
        put(f"{prefix}.filename", path, key)
        return None
    if not os.path.isdir(os.path.dirname(path)):
        raise s.error(key, f"expected a file in an existing directory; {os.path.dirname(path)} "
                      "does not exist (Supervisor refuses it too)")  # fmt: skip
    put(f"{prefix}.class", "FileStream", key)
    put(f"{prefix}.filename", path, key)
    if maxbytes:
        put(f"{prefix}.max_bytes", maxbytes, f"{key}_maxbytes")
        put(f"{prefix}.backup_count", backups, f"{key}_backups")
    return path
