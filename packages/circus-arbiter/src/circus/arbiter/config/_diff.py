"""``diff_configs``: what ``reloadconfig`` must do to go from one loaded config to another."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._model import CircusConfig

__all__ = ["Changes", "ConfigDiff", "diff_configs"]


@dataclass(frozen=True)
class Changes:
    """Names of one kind of entry (watchers, sockets or plugins), split by fate.

    Names are as spelled in the new config (the old one for ``removed``); entries are matched
    case-insensitively. Each tuple is sorted.
    """

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    unchanged: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


@dataclass(frozen=True)
class ConfigDiff:
    """The difference between two configs.

    Attributes:
        circus_changed: ``[circus]`` differs in any way (upstream then restarts the whole
            arbiter in-process).
        watchers, sockets, plugins: what was added, removed, changed, unchanged. A watcher
            whose ``cmd``, ``args`` or ``stdin_socket`` refers to a changed socket is changed.
        resized: the subset of ``watchers.changed`` whose only difference is
            ``numprocesses``, which the daemon may apply in place instead of re-creating.
    """

    circus_changed: bool
    watchers: Changes
    sockets: Changes
    plugins: Changes
    resized: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.circus_changed or self.watchers or self.sockets or self.plugins)


def _split(
    old: dict[str, tuple[str, Any]], new: dict[str, tuple[str, Any]], forced: Iterable[str] = ()
) -> Changes:
    forced = set(forced)
    added = [new[k][0] for k in new if k not in old]
    removed = [old[k][0] for k in old if k not in new]
    changed: list[str] = []
    unchanged: list[str] = []
    for key in new:
        if key in old:
            differs = key in forced or old[key][1] != new[key][1]
            (changed if differs else unchanged).append(new[key][0])
    return Changes(
        added=tuple(sorted(added)),
        removed=tuple(sorted(removed)),
        changed=tuple(sorted(changed)),
        unchanged=tuple(sorted(unchanged)),
    )


def diff_configs(old: CircusConfig, new: CircusConfig) -> ConfigDiff:
    """Compare two loaded configs entry by entry (see :class:`ConfigDiff`)."""
    old_sockets = {s.name: (s.name, s) for s in old.sockets}
    new_sockets = {s.name: (s.name, s) for s in new.sockets}
    sockets = _split(old_sockets, new_sockets)
    touched = set(sockets.changed)

    old_watchers = {w.name.lower(): (w.name, w) for w in old.watchers}
    new_watchers = {w.name.lower(): (w.name, w) for w in new.watchers}
    forced = [key for key, (_, w) in new_watchers.items() if w.sockets & touched]
    watchers = _split(old_watchers, new_watchers, forced)

    resized = []
    for name in watchers.changed:
        key = name.lower()
        if key in forced:
            continue
        before = dict(old_watchers[key][1].options)
        after = dict(new_watchers[key][1].options)
        before.pop("numprocesses")
        after.pop("numprocesses")
        if before == after and old_watchers[key][1].sockets == new_watchers[key][1].sockets:
            resized.append(name)

    plugins = _split(
        {p.name.lower(): (p.name, p) for p in old.plugins},
        {p.name.lower(): (p.name, p) for p in new.plugins},
    )
    return ConfigDiff(
        circus_changed=old.circus != new.circus,
        watchers=watchers,
        sockets=sockets,
        plugins=plugins,
        resized=tuple(resized),
    )
