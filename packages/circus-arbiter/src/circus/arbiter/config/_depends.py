"""``[watcher:NAME] depends_on = a, b``: read one section's list, then check the whole graph.

``depends_on`` is not a watcher option (the watcher layer never sees it): the loader takes it
out of the section before the section is parsed, keeps it on :class:`WatcherConfig`
(``depends_on``), and checks, once every watcher is known, that each name is a
``[watcher:NAME]`` of the config and that no chain of ``depends_on`` comes back to where it
started. Both errors point at the ``depends_on`` line (a cycle: the line that closes it,
the message giving every line along it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from .._depgraph import DependencyError, DepGraph, parse_names
from ._errors import ConfigError
from ._reader import RawValue
from ._section import SectionView

__all__ = ["OPTION", "DependsOn", "take_depends_on", "check_depends_on"]

OPTION = "depends_on"
_EXPECTED = "expected watcher names separated by commas"


class DependsOn(NamedTuple):
    """One watcher's ``depends_on`` as read, and where."""

    name: str  # the watcher's name as written
    names: tuple[str, ...]
    raw: RawValue | None  # None: the section has no depends_on
    section: str


def take_depends_on(view: SectionView, name: str) -> DependsOn:
    """Remove ``depends_on`` from ``view`` (watcher ``name``'s section) and return it.

    Raises:
        ConfigError: the value is not a list of names.
    """
    if OPTION not in view:
        return DependsOn(name, (), None, view.name)
    try:
        names = parse_names(view.text(OPTION) or "")
    except (TypeError, ValueError) as exc:
        raise view.error(OPTION, f"{_EXPECTED} ({exc})") from None
    return DependsOn(name, names, view.options.pop(OPTION), view.name)


def check_depends_on(graph_of: Mapping[str, DependsOn]) -> None:
    """Check every watcher's ``depends_on`` against the others.

    Args:
        graph_of: ``{lowercase watcher name: its DependsOn}`` in file order.

    Raises:
        ConfigError: a name that is no watcher of the config (with a close name when one
            is), or a cycle, located at the ``depends_on`` line concerned.
    """
    graph = DepGraph()
    for entry in graph_of.values():
        if not entry.names:
            continue
        try:
            graph.check(entry.name, entry.names, known=lambda d: d.lower() in graph_of)
        except DependencyError as exc:
            raise _located(exc, entry, graph_of) from None
        graph.set(entry.name, entry.names)


def _located(
    exc: DependencyError, entry: DependsOn, graph_of: Mapping[str, DependsOn]
) -> ConfigError:
    if exc.missing:
        import difflib

        words = []
        for missing in exc.missing[:5]:  # a garbage list must not cost a difflib each
            close = difflib.get_close_matches(missing.lower(), list(graph_of), n=1, cutoff=0.75)
            hint = f" (did you mean {graph_of[close[0]].name!r}?)" if close else ""
            words.append(f"{missing!r}{hint}")
        if len(exc.missing) > 5:
            words.append(f"and {len(exc.missing) - 5} more")
        expected = "expected names of [watcher:NAME] sections; no watcher named " + ", ".join(words)
    else:
        steps = []
        for key in exc.cycle[:-1]:
            where = graph_of[key].raw
            at = f" ({where.filename}:{where.lineno})" if where is not None else ""
            steps.append(f"{graph_of[key].name}{at}")
        expected = "expected no dependency cycle; found " + " -> ".join(
            [*steps, graph_of[exc.cycle[-1]].name]
        )
    raw = entry.raw
    assert raw is not None
    return ConfigError(
        expected,
        filename=raw.filename,
        lineno=raw.lineno,
        section=entry.section,
        option=OPTION,
        value=raw.value,
    )
