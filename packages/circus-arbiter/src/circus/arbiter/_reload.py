"""``reloadconfig`` and SIGHUP: apply the difference between the running and the new config.

Watchers whose section did not change are not touched (same processes, same pids); a change
of ``numprocesses`` alone resizes in place; any other change stops the old watcher and starts
a new one; removed watchers are stopped and dropped; new ones are created (and started when
``autostart``). Sockets: removed ones are closed, new ones bound, changed ones re-bound and
every watcher referring to them re-created. Plugins whose section changed are restarted.
Watchers added at run time with ``add`` are left alone. A change in ``[circus]`` is logged and
its endpoints are *not* re-bound (upstream restarts the whole arbiter; we keep the control
channel that is serving the very request).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._errors import CommandError
from ._from_config import plugin_spec

if TYPE_CHECKING:
    from ._arbiter import Arbiter

__all__ = ["reload_config", "load"]

log = logging.getLogger("circus.arbiter")


def load(path: str) -> Any:
    """Load a config file; a bad file is a command error naming file, section and option."""
    from .config import load_config

    try:
        return load_config(path)
    except Exception as exc:
        raise CommandError(f"cannot reload {path}: {exc}") from exc


async def reload_config(arbiter: Arbiter, force: bool = False) -> None:
    """Re-read ``arbiter.config_file`` and apply it (everything re-created with ``force``)."""
    assert arbiter.config_file is not None
    new = load(arbiter.config_file)
    old = arbiter._loaded_config
    if old is not None and old.circus != new.circus:
        log.warning(
            "[circus] changed in %s: endpoints are kept until circusd restarts", arbiter.config_file
        )
    arbiter.check_delay = new.circus.check_delay
    arbiter.warmup_delay = new.circus.warmup_delay

    old_socks = {s.name: s for s in old.sockets} if old is not None else {}
    new_socks = {s.name: s for s in new.sockets}
    changed_socks = {n for n in old_socks.keys() & new_socks.keys() if old_socks[n] != new_socks[n]}
    if force:
        changed_socks = set(old_socks.keys() & new_socks.keys())

    old_w = {w.name.lower(): w for w in old.watchers} if old is not None else {}
    new_w = {w.name.lower(): w for w in new.watchers}

    # Stop what goes away or changes, before touching the sockets it may use.
    recreate: list[Any] = []
    resize: list[Any] = []
    for key, cfg in old_w.items():
        current = arbiter.table.find(key)
        target = new_w.get(key)
        if current is None:
            if target is not None:
                recreate.append(target)
            continue
        if target is None:
            await arbiter.rm_watcher(current)
            continue
        uses_changed = bool(target.sockets & changed_socks)
        if not force and not uses_changed and cfg == target:
            continue
        if not force and not uses_changed and _only_numprocesses(cfg, target):
            resize.append((current, int(target.options.get("numprocesses", 1))))
            continue
        await arbiter.rm_watcher(current)
        recreate.append(target)

    for name in old_socks.keys() - new_socks.keys():
        arbiter.socket_set.remove(name)
    for name in changed_socks:
        arbiter.socket_set.remove(name)
        arbiter.socket_set.add(new_socks[name].kwargs)
    for name in new_socks.keys() - old_socks.keys():
        if name not in arbiter.socket_set:
            arbiter.socket_set.add(new_socks[name].kwargs)
    for watcher in arbiter.table.ordered():
        arbiter.socket_set.attach(watcher)

    for key, cfg in new_w.items():
        if key not in old_w and arbiter.table.find(key) is None:
            recreate.append(cfg)
    recreate.sort(key=lambda c: (-c.priority, c.name.lower()))
    for cfg in recreate:
        kwargs = cfg.kwargs
        watcher = arbiter.create_watcher(kwargs.pop("name"), kwargs.pop("cmd"), **kwargs)
        if cfg.autostart:
            await arbiter.start_watcher(watcher)
    for watcher, count in resize:
        async with arbiter.table.locked(watcher):
            await watcher.set_numprocesses(count)

    if arbiter._plugins is not None or new.plugins:
        old_p = {p.name: p for p in old.plugins} if old is not None else {}
        new_p = {p.name: p for p in new.plugins if p.active}
        await arbiter.apply_plugins(
            {n: plugin_spec(p) for n, p in new_p.items() if force or old_p.get(n) != p},
            removed=[n for n in old_p if n not in new_p],
        )
    arbiter._loaded_config = new


def _only_numprocesses(old: Any, new: Any) -> bool:
    a = dict(old.options)
    b = dict(new.options)
    a.pop("numprocesses", None)
    b.pop("numprocesses", None)
    return a == b and old.sockets == new.sockets
