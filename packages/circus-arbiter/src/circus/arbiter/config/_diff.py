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
        rollable: the rest of ``watchers.changed`` that a rolling reload can apply: a
            ``readiness`` probe before and after, the same sockets, and every option that
            differs one ``set`` applies to a running watcher by a reload or at the next spawn
            (``cmd``, ``args``, ``env``, ``env_file``, ``working_dir``, ``uid``, hooks, the
            readiness options...), or ``numprocesses``. Output streams, free-form options
            and the rest (``priority``, ``use_sockets``, ``autostart``...) are not.
    """

    circus_changed: bool
    watchers: Changes
    sockets: Changes
    plugins: Changes
    resized: tuple[str, ...] = ()
    rollable: tuple[str, ...] = ()

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
    rollable = []
    for name in watchers.changed:
        key = name.lower()
        if key in forced:
            continue
        before = dict(old_watchers[key][1].options)
        after = dict(new_watchers[key][1].options)
        before.pop("numprocesses")
        after.pop("numprocesses")
        if old_watchers[key][1].sockets != new_watchers[key][1].sockets:
            continue
        if before == after:
            resized.append(name)
        elif _rollable(before, after):
            rollable.append(name)

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
        rollable=tuple(rollable),
    )


def _rollable(before: dict[str, Any], after: dict[str, Any]) -> bool:
    """Whether a rolling reload can take a watcher from ``before`` to ``after`` (options
    without ``numprocesses``): both have readiness, every difference is one ``set`` applies
    to a running watcher by a reload or at the next spawn."""
    from circus.watcher import OPTIONS, Effect

    if not before.get("readiness") or not after.get("readiness"):
        return False
    for key in before.keys() | after.keys():
        if before.get(key, _MISSING) == after.get(key, _MISSING):
            continue
        if key in _ROLLABLE_EXTRA:
            continue
        spec = OPTIONS.get(key)
        if spec is None or not spec.settable or key in _NOT_ROLLED:
            return False
        if spec.effect not in (Effect.RELOAD, Effect.NEXT_SPAWN):
            return False
    return True


_MISSING = object()
#: not settable as a whole, but ``set rlimit_X`` changes each at the next spawn
_ROLLABLE_EXTRA = frozenset({"rlimits"})
#: opened when a roll starts: a failed roll could not give the old ones back
_NOT_ROLLED = frozenset({"stdout_stream", "stderr_stream"})
