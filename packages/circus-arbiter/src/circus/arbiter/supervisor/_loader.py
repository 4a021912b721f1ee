"""``load_supervisor``: read a supervisord.conf and its includes into a runnable Circus config.

Every Supervisor option is honoured, mapped to its Circus equivalent, or reported with a
:class:`~circus.arbiter.config.ConfigWarning` ``file:line: [section] option: what we do
instead``; an invalid value is a :class:`~circus.arbiter.config.ConfigError` at its line.
"""

from __future__ import annotations

import glob
import os
import pwd
import resource
from collections.abc import Mapping
from typing import Any

from circus.watcher import MAX_TOTAL_PROCESSES

from ..config import CircusConfig, ConfigError, DaemonConfig, SocketConfig, WatcherConfig
from ..config._reader import RawValue
from ..config._section import SectionView
from ..config._watcher import parse_watcher
from . import _values as v
from ._model import SupervisorConfig, SupervisordSection, SupProcess, SupSection
from ._program import ProcessPlan, ProgramContext, check_name, plan_processes
from ._reader import RawSupSection, read_supervisor_ini

__all__ = ["load_supervisor", "expand_program"]

_SUPERVISORD_KEYS = (
    "nodaemon", "logfile", "logfile_maxbytes", "logfile_backups", "loglevel", "pidfile",
    "umask", "identifier", "childlogdir", "directory", "user", "minfds", "minprocs",
    "environment", "nocleanup", "strip_ansi", "silent",
)  # fmt: skip
#: Sections kept for the control API and event listeners (``SupervisorConfig.sections``).
PASSED_ON = ("unix_http_server", "inet_http_server", "supervisorctl")
PASSED_ON_KINDS = ("eventlistener", "rpcinterface", "ctlplugin")
_LEVELS = {
    "critical": "critical", "error": "error", "warn": "warning", "warning": "warning",
    "info": "info", "debug": "debug", "trace": "debug", "blather": "debug",
}  # fmt: skip


def load_supervisor(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> SupervisorConfig:
    """Load a supervisord.conf (and its ``[include]`` files) as Supervisor 4 reads it.

    Returns:
        The :class:`SupervisorConfig`; its ``config`` is the :class:`CircusConfig` circusd
        runs (one watcher per Supervisor process, named by its supervisorctl namespec).

    Raises:
        ConfigError: an unreadable file, a malformed line, an invalid value, an unknown
            program in a group, a name clash; the message starts with ``file:line:``.
    """
    environ = dict(os.environ if environ is None else environ)
    main = os.path.abspath(os.fspath(path))
    raw: dict[str, RawSupSection] = {}
    files = [main]
    _read(main, raw, None)
    _includes(main, raw, files, environ)
    sections = {
        name: SupSection(s.name, s.filename, s.lineno, s.options) for name, s in raw.items()
    }
    return _build(main, sections, files, environ)


def _read(filename: str, into: dict[str, RawSupSection], origin: SupSection | None) -> list[str]:
    try:
        with open(filename, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if origin is None:
            raise ConfigError(f"cannot read config file: {reason}", filename=filename) from None
        raise origin.error("files", f"cannot read included file {filename}: {reason}") from None
    return read_supervisor_ini(text, filename, into)


def _includes(
    main: str, raw: dict[str, RawSupSection], files: list[str], environ: Mapping[str, str]
) -> None:
    """``[include] files``: globs relative to the main file's folder, read in sorted order.
    As in Supervisor, an ``[include]`` inside an included file is not followed."""
    if "include" not in raw:
        return
    include = raw["include"]
    section = SupSection(include.name, include.filename, include.lineno, dict(include.options))
    if "files" not in section.options:
        raise section.error(None, "expected a files = ... option in [include]")
    names = {"host_node_name": v.host_node_name(), **v.env_expansions(environ)}
    patterns = (v.expand(section, "files", names) or "").split()
    base = os.path.dirname(main)
    seen = {os.path.realpath(main)}
    for pattern in patterns:
        full = os.path.join(base, os.path.expanduser(pattern))
        matches = sorted(p for p in glob.glob(full) if os.path.isfile(p))
        if not matches:
            section.warn("files", f"{full} matches no file (as Supervisor, nothing is read)")
        for filename in matches:
            real = os.path.realpath(filename)
            if real in seen:
                continue
            seen.add(real)
            files.append(os.path.abspath(filename))
            before = raw.get("include")
            before_files = before.options.get("files") if before else None
            defined = _read(os.path.abspath(filename), raw, section)
            if "include" in defined:
                nested = raw["include"]
                nested_files = nested.options.get("files")
                where = (
                    f"{nested_files.filename}:{nested_files.lineno}" if nested_files else filename
                )
                if before_files is not None:
                    nested.options["files"] = before_files
                import warnings

                from ..config import ConfigWarning

                warnings.warn(
                    f"{where}: [include] files: not followed in an included file "
                    "(Supervisor reads [include] from the main file only)",
                    ConfigWarning,
                    stacklevel=3,
                )


def _build(
    main: str, sections: dict[str, SupSection], files: list[str], environ: Mapping[str, str]
) -> SupervisorConfig:
    base_names: dict[str, Any] = {"host_node_name": v.host_node_name(), **v.env_expansions(environ)}
    sup, daemon, ctx = _supervisord(sections.get("supervisord"), base_names, main)
    if "circus" in sections:
        daemon = _circus_section(sections["circus"], daemon)
    base_names.update(v.env_expansions(sup.environment))
    ctx.names = base_names

    passed: dict[str, SupSection] = {}
    grouped: dict[str, str] = {}  # program section -> first heterogeneous group naming it
    groups_of: list[tuple[str, int, list[str], SupSection]] = []
    for name, section in sections.items():
        kind, colon, rest = name.partition(":")
        if name in ("supervisord", "include", "circus"):
            continue
        if name in PASSED_ON or (colon and kind in PASSED_ON_KINDS):
            passed[name] = _expanded(section, base_names) if kind != "eventlistener" else section
        elif colon and kind == "group":
            groups_of.append(_group(section, sections, base_names))
        elif colon and kind in ("program", "fcgi-program"):
            continue
        else:
            section.warn(None, "unknown section (Supervisor ignores it); ignored")

    plans: list[tuple[tuple[int, int, str], ProcessPlan]] = []
    sockets: dict[str, SocketConfig] = {}
    for group, priority, programs, _section in groups_of:
        for program_section in programs:
            grouped.setdefault(program_section, group)
            section = sections[program_section]
            kind = program_section.partition(":")[0]
            room = MAX_TOTAL_PROCESSES - len(plans)
            for plan in plan_processes(section, group, ctx, kind, room):
                own = -int(plan.options["priority"].value)
                plans.append(((priority, own, plan.process.namespec), plan))
            if kind == "fcgi-program":
                _fcgi(section, sockets, base_names, plans, group)
    for name, section in sections.items():
        kind, colon, rest = name.partition(":")
        if not colon or kind not in ("program", "fcgi-program") or name in grouped:
            continue
        group = check_name(section, None, rest)
        room = MAX_TOTAL_PROCESSES - len(plans)
        for plan in plan_processes(section, group, ctx, kind, room):
            priority = int(plan.options["priority"].value)
            plans.append(((-priority, -priority, plan.process.namespec), plan))
        if kind == "fcgi-program":
            _fcgi(section, sockets, base_names, plans, group)

    # with a [group:x], processes start by group priority, then their own
    watchers, processes, ini = _watchers(plans, bool(groups_of))
    _check_total(watchers, plans)
    groups: dict[str, list[str]] = {}
    for proc in processes:
        groups.setdefault(proc.group, []).append(proc.namespec)
    config = CircusConfig(
        path=main,
        circus=daemon,
        watchers=tuple(sorted(watchers, key=lambda w: (w.name.lower(), w.name))),
        sockets=tuple(sockets.values()),
        sources=tuple(files),
    )
    result = SupervisorConfig(
        path=main,
        config=config,
        supervisord=sup,
        processes=tuple(processes),
        groups={name: tuple(specs) for name, specs in groups.items()},
        sections=passed,
        sources=tuple(files),
        ini={**_daemon_ini(daemon, sections.get("circus")), **ini, **_socket_ini(sockets)},
    )
    object.__setattr__(config, "supervisor", result)  # the one back-reference, set once
    return result


def _expanded(section: SupSection, names: Mapping[str, Any]) -> SupSection:
    options = {
        key: type(raw)(
            v.expand_text(section, key, raw.value, v.names_for(section, key, names)),
            raw.filename,
            raw.lineno,
        )
        for key, raw in section.options.items()
    }
    return SupSection(section.name, section.filename, section.lineno, options)


def _circus_section(section: SupSection, daemon: DaemonConfig) -> DaemonConfig:
    """``[circus]`` in a supervisord.conf: circusd's own options (endpoints...), read as in a
    Circus file; what it sets wins over the values mapped from ``[supervisord]``."""
    import dataclasses

    from ..config._daemon import parse_daemon

    options = {
        k: RawValue(raw.value, raw.filename, raw.lineno) for k, raw in section.options.items()
    }
    parsed = parse_daemon(SectionView("circus", section.filename, section.lineno, options))
    mapped = {
        key: getattr(daemon, key)
        for key in ("loglevel", "logoutput", "pidfile", "umask")
        if key not in section.options
    }
    return dataclasses.replace(parsed, **mapped)


def _group(
    section: SupSection, sections: Mapping[str, SupSection], names: Mapping[str, Any]
) -> tuple[str, int, list[str], SupSection]:
    group = check_name(section, None, section.name.partition(":")[2])
    priority_text = v.expand(section, "priority", names)
    try:
        priority = 999 if priority_text is None else v.to_int(priority_text)
    except ValueError:
        raise section.error("priority", "expected an integer") from None
    for key in section.options:
        if key not in ("programs", "priority"):
            section.warn(key, "unknown option (Supervisor ignores it); ignored")
    text = v.expand(section, "programs", names)
    if not text or not text.strip():
        raise section.error("programs", "expected programs = a comma-separated list of programs")
    programs = []
    for item in (part.strip() for part in text.split(",")):
        found = [
            f"{kind}:{item}" for kind in ("program", "fcgi-program") if f"{kind}:{item}" in sections
        ]
        if not found:
            raise section.error("programs", f"expected known programs; {item!r} names no "
                                "[program:x] or [fcgi-program:x] section")  # fmt: skip
        if len(found) > 1:
            raise section.error("programs", f"{item!r} is ambiguous: both a program and an "
                                "fcgi-program")  # fmt: skip
        programs.append(found[0])
    return group, priority, programs, section


def _level(text: str) -> str:
    try:
        return _LEVELS[text.strip().lower()]
    except KeyError:
        raise ValueError(text) from None


def _supervisord(
    section: SupSection | None, names: dict[str, Any], main: str
) -> tuple[SupervisordSection, DaemonConfig, ProgramContext]:
    cwd = os.getcwd()
    if section is None:
        import warnings

        from ..config import ConfigWarning

        warnings.warn(
            f"{main}:1: no [supervisord] section (Supervisor refuses such a file); its "
            "defaults are used",
            ConfigWarning,
            stacklevel=3,
        )
        section = SupSection("supervisord", main, 1)
    s = section

    def text(key: str) -> str | None:
        return v.expand(s, key, names)

    def typed(key: str, convert: Any, default: Any, expected: str) -> Any:
        value = text(key)
        if value is None:
            return default
        try:
            return convert(value)
        except ValueError:
            raise s.error(key, expected) from None

    for key in s.options:
        if key not in _SUPERVISORD_KEYS:
            s.warn(key, "unknown option (Supervisor ignores it); ignored")
    nodaemon = typed("nodaemon", v.to_bool, False, "expected true or false")
    env = typed("environment", v.to_env, {}, "expected KEY=value pairs separated by commas")
    names.update(v.env_expansions(env))
    level = typed("loglevel", _level, "info",
                  "expected one of critical, error, warn, info, debug, trace, blather")  # fmt: skip
    umask = typed("umask", v.to_octal, 0o022, "expected an octal mask such as 022")
    minfds = typed("minfds", lambda t: v.to_int(t, 0), 1024, "expected an integer >= 0")
    minprocs = typed("minprocs", lambda t: v.to_int(t, 0), 200, "expected an integer >= 0")
    for key in ("nocleanup", "strip_ansi", "silent"):
        if typed(key, v.to_bool, False, "expected true or false") and key != "silent":
            s.warn(
                key,
                "not supported; ignored"
                if key == "strip_ansi"
                else "no AUTO child log files are made, so there is nothing to clean; ignored",
            )
    logfile = text("logfile")
    logoutput = "-" if nodaemon else os.path.join(cwd, "supervisord.log")
    if logfile is not None:
        logfile = os.path.join(cwd, os.path.expanduser(logfile.strip()))
        logoutput = "-" if logfile in ("/dev/stdout", "/proc/self/fd/1") else logfile
        if logfile == "/dev/null":
            logoutput = logfile
    for key in ("logfile_maxbytes", "logfile_backups"):
        value = typed(key, v.to_bytes, 0, "expected a size in bytes (KB, MB, GB suffixes)")
        if value and logoutput not in ("-", "/dev/null"):
            s.warn(key, "circusd does not rotate its own log; ignored (use logrotate with "
                   "copytruncate, or log to stdout)")  # fmt: skip
    pidfile = text("pidfile")
    if pidfile is not None:
        pidfile = os.path.join(cwd, os.path.expanduser(pidfile.strip()))
    childlogdir = text("childlogdir")
    if childlogdir is not None:
        childlogdir = os.path.join(cwd, os.path.expanduser(childlogdir.strip()))
        if not os.path.isdir(childlogdir):
            raise s.error("childlogdir", f"expected an existing directory; {childlogdir} is not")
        if os.stat(childlogdir).st_mode & 0o002:
            s.warn(
                "childlogdir",
                "is writable by every user: AUTO child logs are not written "
                "there (kept in circusd's memory: circusctl logs, supervisorctl tail)",
            )
            childlogdir = None
    directory = text("directory")
    if directory is not None:
        directory = os.path.join(cwd, os.path.expanduser(directory.strip()))
        if not os.path.isdir(directory):
            raise s.error("directory", f"expected an existing directory; {directory} is not")
        if nodaemon:
            s.warn("directory", "ignored with nodaemon = true (Supervisor changes to it only "
                   "when it daemonizes)")  # fmt: skip
            directory = None
    user = text("user")
    user_name = None
    if user is not None:
        try:
            entry = v.to_user(user)
        except ValueError:
            raise s.error("user", "expected an existing user name or uid") from None
        user_name = entry.pw_name
        if os.geteuid() != entry.pw_uid:
            s.warn(
                "user",
                f"circusd keeps running as {pwd.getpwuid(os.geteuid()).pw_name}; "
                f"every program without its own user= runs as {entry.pw_name}",
            )
    for key, value, limit in (("minfds", minfds, resource.RLIMIT_NOFILE),
                              ("minprocs", minprocs, resource.RLIMIT_NPROC)):  # fmt: skip
        hard = resource.getrlimit(limit)[1]
        if hard != resource.RLIM_INFINITY and hard < value and key in s.options:
            s.warn(key, f"the hard limit is {hard}; circusd raises its soft limit only up to it")
    sup = SupervisordSection(
        nodaemon=nodaemon,
        logfile=logfile,
        pidfile=pidfile,
        loglevel=level,
        identifier=text("identifier") or "supervisor",
        childlogdir=childlogdir,
        directory=directory,
        user=user_name,
        umask=umask,
        minfds=minfds,
        minprocs=minprocs,
        environment=env,
    )
    daemon = DaemonConfig(loglevel=level, logoutput=logoutput, pidfile=pidfile, umask=umask)
    ctx = ProgramContext(
        names=names, environment=env, user=user_name, directory=directory,
        childlogdir=childlogdir, cwd=cwd,
    )  # fmt: skip
    return sup, daemon, ctx


def _fcgi(
    section: SupSection,
    sockets: dict[str, SocketConfig],
    names: Mapping[str, Any],
    plans: list[tuple[tuple[int, int, str], ProcessPlan]],
    group: str,
) -> None:
    """``[fcgi-program:x] socket=`` → ``[socket:x]``; each process gets it as its stdin."""
    from ..config._socket import parse_socket

    program = section.name.partition(":")[2]
    socket_name = program.lower()
    filename, lineno = section.where("socket")
    for _key, plan in plans:  # every process of it, whichever groups name it
        if plan.process.program == program and plan.process.kind == "fcgi-program":
            plan.options["stdin_socket"] = type(plan.options["cmd"])(socket_name, filename, lineno)
    if socket_name in sockets:
        return  # the same fcgi-program named by several groups shares its socket
    text = v.expand(section, "socket", {**names, "program_name": program})
    if not text or not text.strip():
        raise section.error("socket", "expected socket = tcp://HOST:PORT or unix:///PATH")
    text = text.strip()
    options: dict[str, RawValue] = {}

    def put(key: str, value: object, source: str) -> None:
        filename, lineno = section.where(source)
        options[key] = RawValue(str(value), filename, lineno)

    mode_text = v.expand(section, "socket_mode", names)
    if text.startswith("unix://"):
        path = text[len("unix://") :]
        if not os.path.isabs(path):
            raise section.error("socket", "expected an absolute path after unix://")
        put("path", os.path.normpath(path), "socket")
        mode = 0o700
        if mode_text is not None:
            try:
                mode = v.to_octal(mode_text)
            except ValueError:
                raise section.error("socket_mode", "expected an octal mode such as 0700") from None
        put("umask", f"{0o777 & ~mode:03o}", "socket_mode")
        if section.get("socket_owner") is not None or section.get("user") is not None:
            section.warn(
                "socket_owner" if section.get("socket_owner") else "user",
                "the socket file stays owned by circusd's user (Supervisor chowns "
                "it to socket_owner or the program's user); socket_mode applies",
            )
    else:
        import re

        match = re.fullmatch(r"tcp://([^\s:]+):(\d+)", text)
        if match is None:
            raise section.error("socket", "expected socket = tcp://HOST:PORT or unix:///PATH")
        if mode_text is not None or section.get("socket_owner") is not None:
            raise section.error(
                "socket_mode" if mode_text is not None else "socket_owner",
                "only valid with a unix:// socket",
            )
        put("host", match.group(1), "socket")
        put("port", match.group(2), "socket")
    backlog = v.expand(section, "socket_backlog", names)
    if backlog is not None:
        try:
            v.to_int(backlog, 1, 65535)
        except ValueError:
            raise section.error("socket_backlog", "expected an integer from 1 to 65535") from None
        put("backlog", backlog.strip(), "socket_backlog")
    view = SectionView(f"socket:{socket_name}", section.filename, section.lineno, options)
    sockets[socket_name] = parse_socket(view, socket_name)


def circus_priority(first: int, second: int | None = None) -> int:
    """Circus's priority (higher starts first) for Supervisor's (lower starts first): the
    program's own, negated; with heterogeneous groups, the group's priority then the
    process's, packed in one 32-bit integer (each clamped to -32768..32767). A pure function
    of the priorities, so a reload that adds a process does not change the others'."""
    if second is None:
        return max(-(2**31), min(2**31 - 1, -first))
    group = max(-32768, min(32767, first))
    own = max(-32768, min(32767, second))
    return max(-(2**31), min(2**31 - 1, -(group * 65536 + own + 32768)))


def _watchers(
    plans: list[tuple[tuple[int, int, str], ProcessPlan]], grouped: bool
) -> tuple[list[WatcherConfig], list[SupProcess], dict[str, tuple[tuple[str, str], ...]]]:
    ordered = sorted(plans, key=lambda item: item[0])
    watchers: list[WatcherConfig] = []
    processes: list[SupProcess] = []
    seen: dict[str, SupProcess] = {}
    ini: dict[str, tuple[tuple[str, str], ...]] = {}
    for key, plan in ordered:
        proc = plan.process
        first = seen.get(proc.namespec.lower())
        if first is not None:
            raise ConfigError(
                f"process name {proc.namespec!r} is already used by the process defined at "
                f"{first.filename}:{first.lineno} (watcher names are case-insensitive)",
                filename=proc.filename,
                lineno=proc.lineno,
            )
        seen[proc.namespec.lower()] = proc
        priority = plan.options["priority"]
        plan.options["priority"] = type(priority)(
            str(circus_priority(key[0], key[1] if grouped else None)),
            priority.filename,
            priority.lineno,
        )
        options = {
            key: RawValue(val.value, val.filename, val.lineno) for key, val in plan.options.items()
        }
        view = SectionView(f"watcher:{proc.namespec}", proc.filename, proc.lineno, options)
        watchers.append(parse_watcher(view, proc.namespec, plan.env))
        processes.append(proc)
        ini[f"watcher:{proc.namespec}"] = tuple((k, val.value) for k, val in options.items())
        ini[f"env:{proc.namespec}"] = tuple(plan.env.items())
    return watchers, processes, ini


def _daemon_ini(
    daemon: DaemonConfig, circus: SupSection | None
) -> dict[str, tuple[tuple[str, str], ...]]:
    pairs = [(key, raw.value) for key, raw in (circus.options.items() if circus else ())]
    mapped = [("loglevel", daemon.loglevel), ("logoutput", daemon.logoutput)]
    if daemon.umask is not None:
        mapped.append(("umask", f"{daemon.umask:03o}"))
    if daemon.pidfile:
        mapped.append(("pidfile", daemon.pidfile))
    pairs += [(key, value) for key, value in mapped if circus is None or key not in circus.options]
    return {"circus": tuple(pairs)}


def _socket_ini(sockets: Mapping[str, SocketConfig]) -> dict[str, tuple[tuple[str, str], ...]]:
    out = {}
    for name, sock in sockets.items():
        opts = sock.options
        if opts.get("path"):
            pairs = [("path", str(opts["path"])), ("umask", f"{opts['umask']:03o}")]
        else:
            pairs = [("host", str(opts["host"])), ("port", str(opts["port"]))]
        pairs.append(("backlog", str(opts["backlog"])))
        out[f"socket:{name}"] = tuple(pairs)
    return out


def _check_total(watchers: list[WatcherConfig], plans: list[Any]) -> None:
    if len(watchers) > MAX_TOTAL_PROCESSES:
        proc = plans[-1][1].process
        raise ConfigError(
            f"expected at most {MAX_TOTAL_PROCESSES} processes in all (the daemon's "
            f"ceiling); this file defines {len(watchers)}",
            filename=proc.filename,
            lineno=proc.lineno,
        )


def expand_program(
    section: SupSection, group: str, supervisor: SupervisorConfig, kind: str = "eventlistener"
) -> list[tuple[SupProcess, WatcherConfig]]:
    """The processes of ``section`` (e.g. ``[eventlistener:x]``) and their watchers, mapped
    as ``[program:x]`` is, with ``supervisor``'s ``[supervisord]`` defaults."""
    sup = supervisor.supervisord
    names: dict[str, Any] = {"host_node_name": v.host_node_name(), **v.env_expansions(os.environ)}
    names.update(v.env_expansions(sup.environment))
    ctx = ProgramContext(
        names=names, environment=sup.environment, user=sup.user, directory=sup.directory,
        childlogdir=sup.childlogdir,
    )  # fmt: skip
    out = []
    for plan in plan_processes(section, group, ctx, kind):
        options = {
            key: RawValue(val.value, val.filename, val.lineno) for key, val in plan.options.items()
        }
        view = SectionView(
            f"watcher:{plan.process.namespec}", section.filename, section.lineno, options
        )
        out.append((plan.process, parse_watcher(view, plan.process.namespec, plan.env)))
    return out
