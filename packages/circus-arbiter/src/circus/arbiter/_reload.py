"""``reloadconfig`` and SIGHUP: apply the difference between the running and the new config.

Watchers whose section did not change are not touched (same processes, same pids); a change of
``numprocesses`` alone resizes in place; any other change stops the old watcher and starts a new
one, except a running watcher with readiness (before and after) whose changes a graceful reload
can apply (``ConfigDiff.rollable``: a deploy by config, a new ``cmd``, ``args``, ``env``,
``env_file``, ``working_dir``...), which takes the new options and rolls (one new process ready,
one old one stopped, and so on): a new release that never gets ready leaves the old processes
serving with the old options, the rest of the config is applied, and the answer is an error
naming the watcher and why; removed watchers are stopped and dropped; new ones are created (and
started when ``autostart``). Sockets: removed ones are closed, new ones bound, changed ones
re-bound and every watcher referring to them re-created. A plugin's watcher (``plugin:NAME``) is
re-created when its section changed, removed with its section, added with a new one. Watchers
added at run time with ``add`` are left alone. A change in ``[circus]`` is applied in place
(:meth:`Arbiter.apply_daemon_options`, which has ``Channels.move`` bind the new endpoints): the
old control socket closes once it has answered its pending requests; upstream restarted the
whole arbiter (every process) for any change there. The new ``[circus]``'s security applies with
it (CURVE options, the refusal of exposed endpoints): all of it, or an error answer and nothing
changed. ``depends_on`` is applied whole and in place (a change of it alone restarts nothing);
watchers are started in its order; a watcher stopped because what it requires was re-created is
started again, and a running watcher's new requirement is started.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Any

from ._curve import config_options
from ._errors import CommandError
from ._from_config import plugin_spec, plugin_watcher_name

if TYPE_CHECKING:
    from ._arbiter import Arbiter

__all__ = ["check_security", "load", "reload_config"]

log = logging.getLogger("circus.arbiter")


def load(path: str, like: Any = None) -> Any:
    """Load a config file; a bad file is a command error naming file, section and option.

    ``like`` is the config the daemon runs: the file is read in its format (a daemon started
    on a supervisord.conf keeps reading it as one, even when started with ``--format``).
    """
    from .config import load_config

    fmt = "auto"
    if like is not None:
        fmt = "supervisor" if getattr(like, "supervisor", None) is not None else "circus"
    try:
        return load_config(path, format=fmt)
    except Exception as exc:
        raise CommandError(f"cannot reload {path}: {exc}") from exc


def check_security(arbiter: Arbiter) -> None:
    """Re-read ``arbiter.config_file`` and run the checks a reload's ``[circus]`` security
    must pass (exposure, CURVE settings, key files) without changing anything.

    Synchronous, so a command handler can call it before its background part: the refusal
    is then answered even without ``waiting``. :func:`reload_config` runs the same checks.

    Raises:
        CommandError: the config cannot be loaded, or its security settings are refused.
    """
    from ._curve import CurveSwitch
    from ._from_config import stats_enabled

    assert arbiter.config_file is not None
    new = load(arbiter.config_file, arbiter.loaded_config)
    daemon = new.circus
    stats = daemon.stats_endpoint if stats_enabled(daemon) else None
    try:
        CurveSwitch(config_options(new), [daemon.endpoint, daemon.pubsub_endpoint, stats], None)
    except Exception as exc:
        raise CommandError(f"cannot apply [circus] of {arbiter.config_file}: {exc}") from exc


async def reload_config(arbiter: Arbiter, force: bool = False) -> None:
    """Re-read ``arbiter.config_file`` and apply it (everything re-created with ``force``).

    Under systemd (``arbiter.systemd``), ``RELOADING=1`` is sent first and ``READY=1`` once
    done, whatever the outcome."""
    notifier = getattr(arbiter, "systemd", None)
    if notifier is None:
        await _reload_config(arbiter, force)
        return
    notifier.reloading()
    try:
        await _reload_config(arbiter, force)
    finally:
        notifier.reloaded()


async def _reload_config(arbiter: Arbiter, force: bool) -> None:
    from .config import CircusConfig, DaemonConfig, diff_configs

    assert arbiter.config_file is not None
    new = load(arbiter.config_file, arbiter.loaded_config)
    old = arbiter.loaded_config
    if old is None:
        old = CircusConfig(path=arbiter.config_file, circus=DaemonConfig())
    diff = diff_configs(old, new)
    rebound = False
    curve = config_options(new)
    # with CURVE in play the key files are read again even when [circus] reads the same:
    # a key pair replaced under the same file names is a change too
    if diff.circus_changed or curve is not None or arbiter.channels.curve_server is not None:
        try:
            rebound = await arbiter.apply_daemon_options(new.circus, curve=curve)
        except Exception as exc:
            raise CommandError(f"cannot apply [circus] of {arbiter.config_file}: {exc}") from exc

    watchers = arbiter.watcher_set
    w = diff.watchers
    resized = set() if force else set(diff.resized)
    rolled = set() if force else _rolling(arbiter, diff.rollable)
    recreate = [
        n
        for n in (*w.changed, *(w.unchanged if force else ()))
        if n not in resized and n not in rolled
    ]
    # A watcher of the file that is not running (removed by `rm`) is simply created again.
    recreate += [n for n in w.unchanged if not force and watchers.table.find(n) is None]

    running = {x.name.lower() for x in watchers.ordered() if not x.is_stopped()}
    # Stop what goes away or changes, before touching the sockets it may use (what requires
    # it, under the old depends_on, stops first, and starts again below).
    for name in (*w.removed, *recreate):
        current = watchers.table.find(name)
        if current is not None:
            await watchers.remove(current)

    s = diff.sockets
    rebind = [*s.changed, *(s.unchanged if force else ())]
    for name in (*s.removed, *rebind):
        watchers.sockets.remove(name)
    for name in (*rebind, *s.added):
        watchers.sockets.add(new.socket(name).kwargs)
    for watcher in watchers.ordered():
        watchers.sockets.attach(watcher)

    configs = [new.watcher(n) for n in (*w.added, *recreate)]
    configs.sort(key=lambda c: (-c.priority, c.name.lower()))
    made = set()
    for cfg in configs:
        current = watchers.table.find(cfg.name)
        if current is not None:  # a watcher added at run time under that name
            await watchers.remove(current)
        made.add(cfg.name.lower())
    # The file's depends_on (the loader checked it; run-time watchers keep theirs): a change
    # of it alone re-creates nothing. Where the file did not change it, what `set` made it
    # stays, as a `set` option of an unchanged section does.
    before = {cfg.name.lower(): cfg.depends_on for cfg in old.watchers}
    for cfg in new.watchers:
        key = cfg.name.lower()
        if force or key in made or before.get(key) != cfg.depends_on:
            watchers.set_dependencies(cfg.name, cfg.depends_on, check=False)
    # a supervisord.conf: its control API and listeners follow the new processes
    supervisor = getattr(arbiter, "_supervisor", None)
    if supervisor is not None:
        supervisor.reloaded(new)
    to_start = []
    for cfg in configs:
        kwargs = cfg.kwargs if supervisor is None else supervisor.rewrite(cfg.kwargs)
        watcher = watchers.create(kwargs.pop("name"), kwargs.pop("cmd"), **kwargs)
        if cfg.autostart:
            to_start.append(watcher)
    if supervisor is not None:
        supervisor.tracker.attach_all()
    for current in watchers.ordered():
        key = current.name.lower()
        # stopped because what it requires was re-created or removed: started again;
        # running with a requirement (maybe new) stopped: the requirement is started
        stopped = current.is_stopped()
        if (stopped and key in running and key not in made) or (
            not stopped and _lacks_requirement(watchers, key)
        ):
            to_start.append(current)
    await watchers.start_many(to_start)
    for name in resized:
        current = watchers.table.find(name)
        if current is not None:
            async with watchers.table.locked(current):
                await current.set_numprocesses(int(new.watcher(name).options["numprocesses"]))
    failed = await _roll(watchers, new, sorted(rolled))

    p = diff.plugins
    # plugins talk to the endpoints: all of them reconnect when those moved
    restart = {*p.added, *p.changed, *(p.unchanged if force or rebound else ())}
    if restart or p.removed:
        specs = {
            plugin_watcher_name(pl.name): plugin_spec(pl)
            for pl in new.plugins
            if pl.name in restart
        }
        removed = [plugin_watcher_name(name) for name in p.removed]
        await arbiter.plugin_set.apply(specs, removed=removed)
    if failed:
        # What runs is the old section: the next reloadconfig tries the new one again.
        keep = {name.lower(): old.watcher(name) for name in failed}
        kept = tuple(keep.get(c.name.lower(), c) for c in new.watchers)
        new = dataclasses.replace(new, watchers=kept)
    arbiter.loaded_config = new
    from ._authz import announce

    announce(arbiter)  # a reload that keeps (or sets) unauthenticated_access = full says so
    if failed:
        raise CommandError(
            "reloadconfig applied, except: " + "; ".join(failed[name] for name in sorted(failed))
        )


def _rolling(arbiter: Arbiter, names: tuple[str, ...]) -> set[str]:
    """The rollable watchers (``ConfigDiff.rollable``) that run now, with readiness."""
    if getattr(arbiter, "_supervisor", None) is not None:
        return set()  # a supervisord.conf's processes are re-created with its rewriting
    result = set()
    for name in names:
        current = arbiter.watcher_set.table.find(name)
        if current is not None and current.status() == "active" and current.has_readiness:
            result.add(name)
    return result


async def _roll(watchers: Any, new: Any, names: list[str]) -> dict[str, str]:
    """Roll each watcher of ``names`` to its new section, one after the other; ``{name:
    why}`` of those that failed (their old processes and options are kept)."""
    from ._watchers import make_watcher

    failed: dict[str, str] = {}
    for name in names:
        current = watchers.table.find(name)
        if current is None:
            continue
        try:
            # the loader checked the section: a throwaway watcher turns it into settings
            # exactly as creating it would (free-form options, hooks, cross-option rules)
            model = make_watcher(new.watcher(name).kwargs)
            settings = model.settings
            async with watchers.table.locked(current):
                await current.redeploy(settings)
        except Exception as exc:  # noqa: BLE001 - one watcher's failure is answered, the rest applied
            log.error("reloadconfig: watcher %s not rolled: %s", name, exc)
            failed[name] = str(exc)
    return failed


def _lacks_requirement(watchers: Any, name: str) -> bool:
    for dep in watchers.deps.requires(name):
        other = watchers.table.find(dep)
        if other is not None and other.is_stopped() and not getattr(other, "on_demand", False):
            return True
    return False
