"""Read-only commands: they never take a lock and answer from in-memory state.

``list`` and ``status`` read attributes only (no psutil, no syscalls), so they stay fast with
thousands of processes; ``stats``/``dstats`` call psutil.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ._commands import command
from ._crashview import crash_loop_of, shown_status
from ._errors import CommandError, MessageError, NotFoundError
from ._healthview import health_of, health_table
from ._props import opt_bool, opt_int, opt_names, opt_str, req_str

if TYPE_CHECKING:
    from ._context import CommandContext

Props = Mapping[str, Any]


@command("list")
def cmd_list(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """``watchers`` (sorted lowercase names) or, with ``name``, that watcher's ``pids``."""
    name = opt_str(props, "name")
    if name is None:
        return {"watchers": ctx.watchers.table.names()}
    return {"pids": sorted(ctx.watchers.get(name).pids)}


@command("status")
def cmd_status(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """``statuses`` of all watchers, or ``status`` replaced by one watcher's state; a
    crash-looping watcher's details in ``crash_loops`` / ``crash_loop`` (see ``_crashview``);
    per-process readiness in ``health`` (see ``_healthview``)."""
    name = opt_str(props, "name")
    if name is None:
        answer: dict[str, Any] = {"statuses": ctx.watchers.statuses()}
        loops = ctx.watchers.crash_loops()
        if loops:
            answer["crash_loops"] = loops
        table = health_table(ctx.watchers.ordered())
        if table:
            answer["health"] = table
        return answer
    watcher = ctx.watchers.get(name)
    one: dict[str, Any] = {"status": shown_status(watcher)}
    loop = crash_loop_of(watcher)
    if loop is not None:
        one["crash_loop"] = loop
    health = health_of(watcher)
    if health is not None:
        one["health"] = health
    return one


@command("numwatchers")
def cmd_numwatchers(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """The number of watchers."""
    return {"numwatchers": len(ctx.watchers.table)}


@command("numprocesses")
def cmd_numprocesses(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """Running processes in total, or of one watcher (with ``watcher_name``)."""
    name = opt_str(props, "name")
    if name is None:
        return {"numprocesses": ctx.watchers.numprocesses()}
    watcher = ctx.watchers.get(name)
    return {"numprocesses": len(watcher.pids), "watcher_name": name}


@command("options")
def cmd_options(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """Every option of a watcher."""
    watcher = ctx.watchers.get(req_str(props, "name"))
    options = _with_depends_on(ctx, watcher, dict(watcher.options()))
    return {"options": dict(sorted(options.items()))}  # upstream answers sorted keys


@command("get")
def cmd_get(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """Selected options of a watcher; an unknown key is errno 3."""
    watcher = ctx.watchers.get(req_str(props, "name"))
    keys = props.get("keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise MessageError("'keys' must be a list of option names")
    options = dict(watcher.options())
    options["depends_on"] = ctx.watchers.dependencies_of(watcher.name)  # [] when none
    result = {}
    for key in keys:
        if key in options:
            result[key] = options[key]
            continue
        try:
            result[key] = watcher.get_opt(key)
        except Exception:
            raise NotFoundError(f"'{key}' option not found") from None
    return {"options": result}


def _with_depends_on(ctx: CommandContext, watcher: Any, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with the daemon's ``depends_on`` of ``watcher`` when it has one (as our
    other options, it shows once set: Circus 0.19 has no such key)."""
    deps = ctx.watchers.dependencies_of(watcher.name)
    if deps:
        options["depends_on"] = deps
    return options


def _tree_tracking() -> str:
    """How ``stop_children`` finds a process tree: ``cgroup2:<subtree>`` or ``process-tree``."""
    from circus.process import tree_tracking

    return tree_tracking()


@command("globaloptions")
def cmd_globaloptions(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """The arbiter's endpoints and check_delay (and ours: tree_tracking), or one of them."""
    options = {**ctx.daemon.globaloptions(), "tree_tracking": _tree_tracking()}
    key = opt_str(props, "option")
    if key is None:
        return {"options": options}
    if key not in options:
        raise MessageError(f"'{key}' not an existing option")
    return {"options": {key: options[key]}}


@command("listsockets")
def cmd_listsockets(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """The arbiter's sockets sorted by fd."""
    return {"sockets": ctx.watchers.sockets.listing()}


@command("stats")
async def cmd_stats(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """psutil facts per process: all watchers, one watcher, or one process of it."""
    name = opt_str(props, "name")
    extended = opt_bool(props, "extended")
    if name is None:
        return {"infos": {w.name: await _infos(w, extended) for w in ctx.watchers.ordered()}}
    watcher = ctx.watchers.get(name)
    pid = opt_int(props, "process")
    if pid is None:
        return {"name": name, "info": await _infos(watcher, extended)}
    if pid not in set(watcher.pids):
        raise NotFoundError(f"process {pid} not found in {name!r}")
    return {"process": pid, "info": (await _infos(watcher, extended)).get(str(pid))}


async def _infos(watcher: Any, extended: bool) -> dict[str, Any]:
    try:
        infos = await watcher.stats(extended=extended)
    except Exception as exc:
        raise CommandError(f"stats of {watcher.name!r} failed: {exc}") from exc
    return {str(pid): info for pid, info in infos.items()}


@command("dstats")
def cmd_dstats(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """psutil facts about circusd itself (children: ``[]``, as upstream), and ours beside
    ``info``: ``tree_tracking``, how process trees are found."""
    # psutil costs the daemon ~5 MiB of RSS: loaded only once somebody asks for stats
    from ._procinfo import process_info

    info = process_info(os.getpid(), started=ctx.daemon.started_at, children=False)
    if isinstance(info, dict):
        info["children"] = []
    return {"info": info, "tree_tracking": _tree_tracking()}


@command("logs")
def cmd_logs(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """Ours: the last ``lines`` lines of output kept per watcher, oldest first."""
    names = opt_names(props, "name")
    count = opt_int(props, "lines", 20)
    assert count is not None
    if count < 0:
        raise MessageError("'lines' must be >= 0")
    if names is None:
        watchers = [w.name for w in ctx.watchers.ordered()]
    else:
        watchers = [ctx.watchers.get(n).name for n in names]
    return {"logs": ctx.watchers.output.lines(watchers, count)}


@command("ipython")
def cmd_ipython(ctx: CommandContext, props: Props) -> dict[str, Any]:
    """Not supported: an in-daemon IPython kernel is a remote shell as circusd's user."""
    raise CommandError("ipython is not supported by this circusd")
