"""``depends_on`` between watchers: which watcher requires which, as a plain graph.

Names are compared case-insensitively (as watcher names are) and stored lowercase. The graph
holds only edges: a name may be required while no watcher of that name exists (a ``rm`` of a
required watcher leaves its dependents pointing at nothing; starting them then fails with a
clear reason). Every change that adds edges goes through :meth:`DepGraph.check` first, so the
graph never holds a cycle. No asyncio here: the order in which things start and stop is
``_deporder``'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["DepGraph", "DependencyError", "parse_names"]

_SPLIT = re.compile(r"[,\n]")
_MAX_NAMES = 1000  # dependencies of one watcher; more is garbage, not a config
_MAX_NAME = 256  # characters: no command may name a watcher by a longer name


class DependencyError(ValueError):
    """A ``depends_on`` that cannot be accepted: an unknown name or a cycle.

    Attributes:
        name: the watcher whose ``depends_on`` is refused.
        missing: the names that match no watcher (empty for a cycle).
        cycle: the names along the cycle, first repeated at the end (empty otherwise).
    """

    def __init__(
        self, message: str, name: str, missing: tuple[str, ...] = (), cycle: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.name = name
        self.missing = missing
        self.cycle = cycle


def parse_names(value: Any) -> tuple[str, ...]:
    """``depends_on`` as watcher names: a string of names separated by commas or newlines
    (each stripped; a watcher name may hold spaces), or a list of strings. Duplicates (any
    case) are dropped, order is kept.

    Raises:
        TypeError: not a string or a list of strings.
        ValueError: an empty name in a list, a name with a NUL or over 256 characters, or
            more than 1000 names.
    """
    if value is None:
        return ()
    if isinstance(value, str):
        items = [item.strip() for item in _SPLIT.split(value) if item.strip()]
    elif isinstance(value, list | tuple):
        items = []
        for item in value:
            if not isinstance(item, str):
                raise TypeError("expected watcher names (strings)")
            if not item.strip():
                raise ValueError("expected watcher names; one is empty")
            items.append(item.strip())
    else:
        raise TypeError("expected a string of names or a list of names")
    names: dict[str, str] = {}
    for item in items:
        if "\0" in item:
            raise ValueError("expected watcher names; one holds a NUL character")
        if len(item) > _MAX_NAME:
            raise ValueError(f"expected watcher names of at most {_MAX_NAME} characters")
        names.setdefault(item.lower(), item)
    if len(names) > _MAX_NAMES:
        raise ValueError(f"expected at most {_MAX_NAMES} names")
    return tuple(names.values())


class DepGraph:
    """``name -> the names it requires`` (all lowercase), without cycles."""

    def __init__(self) -> None:
        self._requires: dict[str, tuple[str, ...]] = {}
        self._required_by: dict[str, set[str]] = {}  # the reverse edges, kept in step

    def __bool__(self) -> bool:
        """True when any watcher requires another."""
        return bool(self._requires)

    def requires(self, name: str) -> tuple[str, ...]:
        """What ``name`` requires directly (lowercase, in the order given)."""
        return self._requires.get(name.lower(), ())

    def dependents(self, name: str) -> list[str]:
        """Who requires ``name`` directly (lowercase, sorted)."""
        return sorted(self._required_by.get(name.lower(), ()))

    def involves(self, names: Iterable[str]) -> bool:
        """True when one of ``names`` requires, or is required by, another watcher."""
        keys = {n.lower() for n in names}
        return any(n in keys or not keys.isdisjoint(deps) for n, deps in self._requires.items())

    def required_closure(self, names: Iterable[str]) -> set[str]:
        """``names`` and everything they require, transitively (lowercase)."""
        return self._closure(names, self.requires)

    def dependent_closure(self, names: Iterable[str]) -> set[str]:
        """``names`` and everything that requires them, transitively (lowercase)."""
        return self._closure(names, self.dependents)

    @staticmethod
    def _closure(names: Iterable[str], step: Callable[[str], Iterable[str]]) -> set[str]:
        seen: set[str] = set()
        todo = [n.lower() for n in names]
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(step(name))
        return seen

    def check(self, name: str, deps: Iterable[str], known: Callable[[str], bool]) -> None:
        """Refuse ``name`` requiring ``deps`` when one is not ``known`` or when the edges
        would close a cycle (``name`` requiring itself included). Changes nothing.

        Raises:
            DependencyError: naming the unknown watchers, or the cycle as ``a -> b -> a``.
        """
        key = name.lower()
        wanted = [d.lower() for d in deps]
        missing = tuple(d for d in deps if not known(d) and d.lower() != key)
        if missing:
            listed = ", ".join(repr(m) for m in missing[:5])
            if len(missing) > 5:
                listed += f" and {len(missing) - 5} more"
            raise DependencyError(f"no watcher named {listed}", name, missing=missing)
        cycle = self._path_back(key, wanted)
        if cycle:
            raise DependencyError(
                "dependency cycle: " + " -> ".join(cycle), name, cycle=tuple(cycle)
            )

    def _path_back(self, key: str, wanted: list[str]) -> list[str]:
        """A path from ``key`` through ``wanted`` back to ``key``, or ``[]``."""
        # depth-first from each new requirement, through the existing edges
        parent: dict[str, str] = {}
        stack = []
        for dep in wanted:
            if dep not in parent:
                parent[dep] = key
                stack.append(dep)
        while stack:
            node = stack.pop()
            if node == key:
                path = [key]
                step = parent[key]
                while step != key:
                    path.append(step)
                    step = parent[step]
                path.append(key)
                path.reverse()
                return path
            for nxt in self._requires.get(node, ()):
                if nxt not in parent:
                    parent[nxt] = node
                    stack.append(nxt)
        return []

    def set(self, name: str, deps: Iterable[str]) -> None:
        """Record what ``name`` requires (replacing what it required); unchecked: call
        :meth:`check` first."""
        key = name.lower()
        self.discard(key)
        wanted = tuple(dict.fromkeys(d.lower() for d in deps))
        if wanted:
            self._requires[key] = wanted
            for dep in wanted:
                self._required_by.setdefault(dep, set()).add(key)

    def discard(self, name: str) -> None:
        """Forget what ``name`` requires (who requires it keeps pointing at the name)."""
        key = name.lower()
        for dep in self._requires.pop(key, ()):
            users = self._required_by.get(dep)
            if users is not None:
                users.discard(key)
                if not users:
                    del self._required_by[dep]

    def as_dict(self) -> dict[str, tuple[str, ...]]:
        """A copy of every edge: ``{name: required names}``."""
        return dict(self._requires)
