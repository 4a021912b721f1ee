"""``[env]`` / ``[env:PATTERNS]`` sections and the load-time ``$(circus.env.NAME)`` expansion.

Rules (spec/config.md §7): ``[env]`` applies to every watcher; ``[env:p1,p2]`` to watchers
whose name matches any ``fnmatch`` pattern (case-sensitive), later sections overriding earlier
ones and ``[env]``. A value's ``$NAME`` (uppercase first letter) is replaced from circusd's
environment by the watcher when it builds its children's environment (``circus.watcher`` does
it at start), so the ``env`` kwarg keeps the values as written: expanding here too would
expand twice. ``$(circus.env.NAME)`` (or ``((circus.env.NAME))``,
case-insensitive) in any value is replaced at load time from the matching env sections, then
``[env]``, then circusd's environment, using the *unexpanded* section values as upstream does;
unknown names stay for spawn time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from ._reader import RawSection

__all__ = ["EnvSections", "expand_circus_cpus", "expand_circus_env"]

_CIRCUS_ENV = re.compile(
    r"\$\(circus\.env\.(?P<a>\w+)\)|\(\(circus\.env\.(?P<b>\w+)\)\)", re.IGNORECASE
)


def expand_circus_env(value: str, variables: Mapping[str, str]) -> str:
    """Replace every known ``$(circus.env.NAME)`` in ``value``; names match case-insensitively.

    An exact-case match wins over a case-insensitive one; unknown names are left verbatim.
    """
    if "circus" not in value.lower():
        return value
    folded: dict[str, str] | None = None

    def replace(match: re.Match[str]) -> str:
        nonlocal folded
        name = match.group("a") or match.group("b")
        if name in variables:
            return variables[name]
        if folded is None:
            folded = {key.lower(): val for key, val in variables.items()}
        return folded.get(name.lower(), match.group(0))

    return _CIRCUS_ENV.sub(replace, value)


_CIRCUS_CPUS = re.compile(r"\$\(circus\.cpus\)|\(\(circus\.cpus\)\)", re.IGNORECASE)


def expand_circus_cpus(value: str) -> str:
    """Replace ``$(circus.cpus)`` (or ``((circus.cpus))``) with the CPUs circusd may use: its
    affinity mask and cgroup CPU quotas (``circus.process.usable_cpus``), at least 1."""
    if "cpus" not in value.lower():
        return value
    match = _CIRCUS_CPUS.search(value)
    if match is None:
        return value
    from circus.process import usable_cpus  # only a config that asks for it pays the import

    return _CIRCUS_CPUS.sub(str(usable_cpus()), value)


@dataclass
class EnvSections:
    """The ``[env]`` section and the ``[env:PATTERNS]`` sections in file order."""

    base: dict[str, str] = field(default_factory=dict)
    patterned: list[tuple[tuple[str, ...], dict[str, str]]] = field(default_factory=list)

    @classmethod
    def from_sections(cls, sections: list[RawSection]) -> EnvSections:
        """Collect ``env`` and ``env:…`` sections; values are the raw (stripped) text."""
        env = cls()
        for section in sections:
            values = {key: raw.value.strip() for key, raw in section.options.items()}
            if section.name == "env":
                env.base.update({k: v for k, v in values.items() if k not in env.base})
            else:
                patterns = tuple(p.strip() for p in section.name[4:].split(",") if p.strip())
                env.patterned.append((patterns, values))
        return env

    def raw_for(self, watcher: str | None) -> dict[str, str]:
        """The unexpanded variables a watcher gets (``None``: a non-watcher section)."""
        merged = dict(self.base)
        if watcher is not None:
            for patterns, values in self.patterned:
                if any(fnmatchcase(watcher, pattern) for pattern in patterns):
                    merged.update(values)
        return merged

    def lookup_for(self, watcher: str | None, environ: Mapping[str, str]) -> dict[str, str]:
        """What ``$(circus.env.NAME)`` resolves against: env sections over ``environ``."""
        variables = dict(environ)
        variables.update(self.raw_for(watcher))
        return variables

    def env_for(self, watcher: str) -> dict[str, str]:
        """The watcher's ``env`` kwarg: its variables as written (``$NAME`` not expanded)."""
        return self.raw_for(watcher)
