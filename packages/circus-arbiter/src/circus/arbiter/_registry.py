"""The arbiter's table of watchers: case-insensitive lookup, ordering, per-watcher locks.

Mutating commands on one watcher are serialised by that watcher's ``asyncio.Lock`` (queued, never
rejected); there is no arbiter-wide lock, so stopping one watcher never blocks another.
"""

from __future__ import annotations

import asyncio
import fnmatch
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from ._errors import MessageError, NotFoundError
from ._patterns import check_pattern, compile_regex

__all__ = ["WatcherTable"]

_SUGGEST_MAX = 1000  # watchers; difflib takes ~12 us per similar candidate name
_GLOB = re.compile(r"[*?\[]")  # a glob with wildcards matched nothing: no single suggestion


class WatcherTable:
    """Watchers by lowercase name, with one lock each."""

    def __init__(self) -> None:
        self._by_name: dict[str, Any] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: str) -> bool:
        return name.lower() in self._by_name

    def add(self, watcher: Any) -> None:
        """Register a watcher (its name must be free, case-insensitively)."""
        key = watcher.name.lower()
        self._by_name[key] = watcher
        self._locks.setdefault(key, asyncio.Lock())

    def remove(self, watcher: Any) -> None:
        """Unregister a watcher; its lock stays until the last holder is done with it."""
        key = watcher.name.lower()
        if self._by_name.get(key) is watcher:
            del self._by_name[key]

    def get(self, name: str) -> Any:
        """The watcher called ``name`` (any case).

        Raises:
            NotFoundError: ``program <name> not found`` (errno 3), as upstream, followed by
                `` (did you mean <watcher>?)`` when one name is close.
        """
        try:
            return self._by_name[name.lower()]
        except KeyError:
            raise NotFoundError(f"program {name} not found{self._suggest(name)}") from None

    def find(self, name: str) -> Any | None:
        """The watcher called ``name`` or ``None``."""
        return self._by_name.get(name.lower())

    def names(self) -> list[str]:
        """Sorted lowercase names (what ``list`` answers)."""
        return sorted(self._by_name)

    def ordered(self, reverse: bool = False) -> list[Any]:
        """Start order: priority descending, then name; ``reverse`` gives the stop order."""
        items = sorted(self._by_name.values(), key=lambda w: (-_priority(w), w.name.lower()))
        return list(reversed(items)) if reverse else items

    def __iter__(self) -> Iterator[Any]:
        return iter(self.ordered())

    def match(self, pattern: str, how: str = "glob") -> list[Any]:
        """Watchers matching ``pattern`` by ``glob`` (default), ``regex`` or ``simple``.

        Raises:
            NotFoundError: nothing matched (``program <pattern> not found``).
            MessageError: unknown ``how``, a pattern over 256 characters, or a regular
                expression that is invalid or could backtrack without bound.
        """
        check_pattern(pattern)
        pattern_l = pattern.lower()
        if how == "simple":
            found = [self.get(pattern)]
        elif how == "glob":
            found = [w for k, w in self._by_name.items() if fnmatch.fnmatchcase(k, pattern_l)]
        elif how == "regex":
            regex = compile_regex(pattern_l)
            found = [w for k, w in self._by_name.items() if regex.match(k)]
        else:
            raise MessageError(f"'match' must be one of glob, regex, simple, got {how!r}")
        if not found:
            hint = self._suggest(pattern) if how == "glob" and not _GLOB.search(pattern) else ""
            raise NotFoundError(f"program {pattern} not found{hint}")
        return sorted(found, key=lambda w: (-_priority(w), w.name.lower()))

    def _suggest(self, name: str) -> str:
        """`` (did you mean <watcher>?)`` for the closest watcher name, or ``""``.

        Only on the error path, so difflib is imported here and not by a running daemon
        (the reason is kept after upstream's ``program <name> not found`` prefix, which
        clients parse). Past :data:`_SUGGEST_MAX` watchers no suggestion is made: a
        mistyped name must not cost the loop more than ~10 ms.
        """
        if len(self._by_name) > _SUGGEST_MAX:
            return ""
        import difflib

        close = difflib.get_close_matches(name.lower(), list(self._by_name), n=1, cutoff=0.75)
        return f" (did you mean {self._by_name[close[0]].name}?)" if close else ""

    @asynccontextmanager
    async def locked(self, watcher: Any) -> AsyncIterator[None]:
        """Hold ``watcher``'s lock: mutating operations on it run one at a time, in order."""
        key = watcher.name.lower()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            yield

    def drop_lock(self, name: str) -> None:
        """Forget a removed watcher's lock."""
        key = name.lower()
        if key not in self._by_name:
            lock = self._locks.get(key)
            if lock is not None and not lock.locked():
                del self._locks[key]


def _priority(watcher: Any) -> int:
    try:
        return int(getattr(watcher, "priority", 0) or 0)
    except (TypeError, ValueError):
        return 0
