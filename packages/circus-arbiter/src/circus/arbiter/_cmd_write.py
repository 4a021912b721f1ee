"""Mutating commands. Each one takes the lock of the watcher(s) it touches, never a global one:
commands on the same watcher queue up in arrival order, commands on different watchers run
concurrently. Handlers validate synchronously and return the long part as a coroutine.
"""

from __future__ import annotations

import asyncio
import inspect
import signal as _signal
from collections.abc import Awaitable, Mapping
from typing import TYPE_CHECKING, Any

from circus.watcher import WatcherError

from ._commands import command
from ._errors import CommandError, MessageError, NotFoundError
from ._options import validate_set_options
from ._props import opt_bool, opt_float, opt_int, opt_str, req_str, to_signum
from ._readywait import until_ready
from ._watchers import watcher_error

if TYPE_CHECKING:
    from ._context import CommandContext
    from ._watcher_set import WatcherSet

Props = Mapping[str, Any]


def _targets(watchers: WatcherSet, props: Props) -> list[Any] | None:
    name = opt_str(props, "name")
    if name is None:
        return None
    return watchers.table.match(name, opt_str(props, "match", "glob") or "glob")


@command("start")
def cmd_start(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Start matching watchers, or every autostart watcher (``waiting``: until ready)."""
    targets = _targets(ctx.watchers, props)
    waiting = opt_bool(props, "waiting", False)

    async def run() -> dict[str, Any]:
        if targets is None:
            await ctx.watchers.start_all()
            if waiting:
                await until_ready(ctx.watchers.ordered())
            return {}
        infos = [await ctx.watchers.start(w) for w in targets]
        if waiting:
            await until_ready(targets)
        if len(targets) != 1:
            return {}
        return {"info": _info(infos[0], ("started", "kept"))}

    return run()


@command("stop")
def cmd_stop(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Stop matching watchers, or all of them (the daemon keeps running)."""
    targets = _targets(ctx.watchers, props)

    async def run() -> dict[str, Any]:
        if targets is None:
            await ctx.watchers.stop_all()
            return {}
        await asyncio.gather(*(ctx.watchers.stop(w) for w in targets))
        return {"info": None} if len(targets) == 1 else {}

    return run()


@command("restart")
def cmd_restart(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Restart matching watchers, or the whole arbiter in-process (``waiting``: until
    the restarted watchers' processes are ready)."""
    targets = _targets(ctx.watchers, props)
    waiting = opt_bool(props, "waiting", False)

    async def run() -> dict[str, Any]:
        if targets is None:
            await ctx.daemon.restart()
            if waiting:
                await until_ready(ctx.watchers.ordered())
            return {}
        infos = [await ctx.watchers.restart(w) for w in targets]
        if waiting:
            await until_ready(targets)
        if len(targets) != 1:
            return {}
        return {"info": _info(infos[0], ("stopped", "started", "kept"))}

    return run()


def _info(info: Any, keys: tuple[str, ...]) -> dict[str, list[int]]:
    info = info if isinstance(info, Mapping) else {}
    return {key: sorted(info.get(key) or []) for key in keys}


@command("reload")
def cmd_reload(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Gracefully reload one watcher or all of them (a watcher with readiness rolls; with
    ``waiting`` the answer comes once every process is ready, or names those that are not)."""
    name = opt_str(props, "name")
    graceful = opt_bool(props, "graceful", True)
    sequential = opt_bool(props, "sequential", False)
    waiting = opt_bool(props, "waiting", False)
    watcher = ctx.watchers.get(name) if name is not None else None

    async def run() -> dict[str, Any]:
        if watcher is None:
            await ctx.daemon.reload(graceful=graceful, sequential=sequential)
            if waiting:
                await until_ready(ctx.watchers.ordered())
            return {}
        info = await ctx.watchers.reload(watcher, graceful=graceful, sequential=sequential)
        if waiting:
            await until_ready([watcher])
        return {"info": _info(info, ("stopped", "started", "kept"))}

    return run()


@command("reloadconfig")
def cmd_reloadconfig(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Re-read the config file and apply the difference."""
    if not ctx.daemon.config_file:
        raise CommandError("this arbiter was not started from a config file")
    from ._reload import check_security, reload_config

    # A config that cannot load, or whose [circus] security is refused, is answered now,
    # even to a client that does not wait for the reload itself.
    check_security(ctx.daemon)

    async def run() -> dict[str, Any]:
        await reload_config(ctx.daemon)
        return {}

    return run()


@command("quit")
def cmd_quit(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Stop everything and exit."""

    async def run() -> dict[str, Any]:
        await ctx.daemon.quit()
        return {}

    return run()


def _scale(
    watchers: WatcherSet, props: Props, sign: int
) -> dict[str, Any] | Awaitable[dict[str, Any]]:
    watcher = watchers.get(req_str(props, "name"))
    nb = opt_int(props, "nb", 1)
    assert nb is not None
    if nb < 0:
        raise MessageError("'nb' must be >= 0")
    if getattr(watcher, "singleton", False):
        return {"numprocesses": len(watcher.pids), "singleton": True}
    waiting = sign > 0 and opt_bool(props, "waiting", False)

    async def run() -> dict[str, Any]:
        async with watchers.table.locked(watcher):
            if sign > 0:
                watchers.check_total(watcher.name, watcher.numprocesses + nb)
            method = watcher.incr if sign > 0 else watcher.decr
            before = set(watcher.pids)
            try:
                count = await method(nb)
            except (ValueError, TypeError) as exc:
                raise watcher_error(exc) from exc
            added = [pid for pid in watcher.pids if pid not in before]
        if waiting and added:
            await until_ready([watcher], added)
        return {"numprocesses": count if isinstance(count, int) else watcher.numprocesses}

    return run()


@command("incr")
def cmd_incr(ctx: CommandContext, props: Props) -> dict[str, Any] | Awaitable[dict[str, Any]]:
    """Add ``nb`` processes to a watcher."""
    return _scale(ctx.watchers, props, +1)


@command("decr")
def cmd_decr(ctx: CommandContext, props: Props) -> dict[str, Any] | Awaitable[dict[str, Any]]:
    """Remove ``nb`` processes from a watcher."""
    return _scale(ctx.watchers, props, -1)


@command("set")
def cmd_set(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Validate every option, then apply them together: one ``updated`` event and at most
    one reload for the whole set (``Watcher.set_opts``); a bad key, value or combination is
    refused before anything changes. ``depends_on`` is the daemon's: its names must be
    watchers and close no cycle."""
    watcher = ctx.watchers.get(req_str(props, "name"))
    options = props.get("options")
    if not isinstance(options, dict):
        raise MessageError("message invalid 'options' is missing")
    options = dict(options)
    deps_given = "depends_on" in options
    depends_on = options.pop("depends_on", None)
    validated = validate_set_options(options, also_known=lambda key: _has_option(watcher, key))
    if deps_given:
        ctx.watchers.check_dependencies_of(watcher.name, depends_on)
    _check_options(watcher, validated)  # answered now, even without ``waiting``
    before = ctx.watchers.deps.requires(watcher.name)
    recorded: tuple[str, ...] = ()
    if deps_given:
        # Recorded now, not once the watcher is free (a stop or reload may hold it): a set
        # checked meanwhile sees it, and cannot close a cycle with a set already answered.
        ctx.watchers.set_dependencies(watcher.name, depends_on)
        recorded = ctx.watchers.deps.requires(watcher.name)

    async def run() -> dict[str, Any]:
        try:
            async with ctx.watchers.table.locked(watcher):
                if "numprocesses" in validated:
                    ctx.watchers.check_total(watcher.name, validated["numprocesses"])
                await _set_options(watcher, validated)
                if deps_given and not validated:  # the watcher said nothing: told here
                    ctx.watchers.publish_event(watcher.name, "updated")
        except BaseException:
            if deps_given:
                _take_back(ctx.watchers, watcher.name, recorded, before)
            raise
        return {}

    return run()


def _take_back(
    watchers: WatcherSet, name: str, recorded: tuple[str, ...], before: tuple[str, ...]
) -> None:
    """Put back what watcher ``name`` required before a ``set`` that failed, unless a later
    ``set`` changed it since, or putting it back would now close a cycle (kept then)."""
    deps = watchers.deps
    if deps.requires(name) != recorded:
        return
    try:
        deps.check(name, before, known=lambda _: True)
    except ValueError:
        return
    deps.set(name, before)


def _check_options(watcher: Any, options: Mapping[str, Any]) -> None:
    check = getattr(watcher, "check_opts", None)
    if options and callable(check):
        try:
            check(options)
        except (ValueError, TypeError, KeyError, AttributeError, WatcherError) as exc:
            raise watcher_error(exc) from exc


async def _set_options(watcher: Any, options: Mapping[str, Any]) -> None:
    if not options:
        return
    try:
        set_many = getattr(watcher, "set_opts", None)
        if callable(set_many):
            await set_many(options)
            return
        for key, value in options.items():  # a watcher without it: one key at a time
            outcome = watcher.set_opt(key, value)
            if inspect.isawaitable(outcome):
                await outcome
    except (ValueError, TypeError, KeyError, AttributeError, WatcherError) as exc:
        raise watcher_error(exc) from exc


def _has_option(watcher: Any, key: str) -> bool:
    try:
        watcher.get_opt(key)
    except Exception:
        return False
    return True


@command("add")
def cmd_add(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Create a watcher at run time (stopped unless ``start``)."""
    name = req_str(props, "name")
    cmd = req_str(props, "cmd")
    options = props.get("options") or {}
    if not isinstance(options, dict):
        raise MessageError("'options' must be an object")
    if name in ctx.watchers.table:
        raise CommandError(f"'{name}' already exist")
    options = dict(options)
    depends_on = options.pop("depends_on", None)  # the daemon's, not the watcher's
    options = dict(validate_set_options(options, fold_rlimits=True))
    if depends_on is not None:
        options["depends_on"] = depends_on  # checked by create
    ctx.watchers.check_total(name, options.get("numprocesses", 1))
    args = props.get("args")
    if args is not None:
        if isinstance(args, list):
            args = " ".join(str(a) for a in args)
        options["args"] = args
    start = opt_bool(props, "start", False)
    # Created now, so the answer reports a bad option and a following `list` shows it.
    watcher = ctx.watchers.create(name, cmd, **options)

    async def run() -> dict[str, Any]:
        if not start:
            return {}
        # upstream answers the watcher's own start result, at the top level (not in "info")
        return _info(await ctx.watchers.start(watcher), ("started", "kept"))

    return run()


@command("rm")
def cmd_rm(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Remove a watcher, stopping its processes unless ``nostop``."""
    watcher = ctx.watchers.get(req_str(props, "name"))
    nostop = opt_bool(props, "nostop", False)

    async def run() -> dict[str, Any]:
        await ctx.watchers.remove(watcher, nostop=nostop)
        return {}

    return run()


@command("signal")
def cmd_signal(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Send a signal to a watcher's processes, one pid, its children or its whole tree."""
    watcher = ctx.watchers.get(req_str(props, "name"))
    if "signum" not in props:
        raise MessageError("message invalid 'signum' is missing")
    signum = to_signum(props["signum"])
    pid = opt_int(props, "pid")
    childpid = opt_int(props, "childpid")
    children = opt_bool(props, "children")
    recursive = opt_bool(props, "recursive")
    if childpid is not None and pid is None:
        raise MessageError("'childpid' needs 'pid'")
    if pid is not None and pid not in set(watcher.pids):
        raise NotFoundError(f"process {pid} not found in {watcher.name!r}")

    async def run() -> dict[str, Any]:
        if childpid is not None:
            _signal_child(watcher, pid, childpid, signum)
            return {}
        outcome = watcher.signal(signum, pid=pid, children=children, recursive=recursive)
        if inspect.isawaitable(outcome):
            await outcome
        return {}

    return run()


def _signal_child(watcher: Any, pid: int | None, childpid: int, signum: int) -> None:
    from circus.process import is_child_of  # two /proc reads, not a scan of the host

    if pid is None or not is_child_of(childpid, pid):
        raise NotFoundError(f"child {childpid} not found for process {pid}")
    try:
        import os

        os.kill(childpid, signum)
    except ProcessLookupError:
        raise NotFoundError(f"child {childpid} not found for process {pid}") from None


@command("kill")
def cmd_kill(ctx: CommandContext, props: Props) -> Awaitable[dict[str, Any]]:
    """Stop-signal the selected processes, SIGKILL after ``graceful_timeout``; they respawn."""
    watcher = ctx.watchers.get(req_str(props, "name"))
    pid = opt_int(props, "pid")
    raw_signum = props.get("signum")
    signum = (
        to_signum(raw_signum)
        if raw_signum is not None
        else int(getattr(watcher, "stop_signal", _signal.SIGTERM))
    )
    timeout = opt_float(props, "graceful_timeout")
    if timeout is None:
        timeout = float(getattr(watcher, "graceful_timeout", 30.0))
    pids = [pid] if pid is not None else list(watcher.pids)
    if pid is not None and pid not in set(watcher.pids):
        raise NotFoundError(f"process {pid} not found in {watcher.name!r}")

    async def run() -> dict[str, Any]:
        results = await asyncio.gather(
            *(watcher.kill_process(p, signum=signum, graceful_timeout=timeout) for p in pids),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, Exception) and not _vanished(result):
                raise watcher_error(result)
        return {}

    return run()


def _vanished(exc: Exception) -> bool:
    # A process that ended on its own between the check and the kill is not an error.
    return type(exc).__name__ == "ProcessNotFoundError"
