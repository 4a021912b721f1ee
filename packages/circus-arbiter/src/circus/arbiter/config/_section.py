"""Typed access to one section's options, with errors and warnings that point at the line."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import TypeVar

from ._errors import ConfigError, ConfigWarning
from ._reader import RawValue

__all__ = ["SectionView"]

T = TypeVar("T")
_MISSING = object()


class SectionView:
    """One section's (already ``$(circus.env.X)``-expanded) options and where they come from."""

    def __init__(self, name: str, filename: str, lineno: int, options: dict[str, RawValue]):
        self.name = name
        self.filename = filename
        self.lineno = lineno
        self.options = options

    def __contains__(self, key: str) -> bool:
        return key in self.options

    def names(self) -> list[str]:
        """Option names in file order."""
        return list(self.options)

    def text(self, key: str, default: str | None = None) -> str | None:
        """The option's text as written (stripped), or ``default`` when absent."""
        raw = self.options.get(key)
        return default if raw is None else raw.value.strip()

    def error(self, key: str | None, expected: str) -> ConfigError:
        """A :class:`ConfigError` at ``key``'s line (the header's line when absent)."""
        raw = self.options.get(key) if key is not None else None
        return ConfigError(
            expected,
            filename=raw.filename if raw else self.filename,
            lineno=raw.lineno if raw else self.lineno,
            section=self.name,
            option=key,
            value=raw.value if raw else None,
        )

    def warn(self, key: str | None, message: str) -> None:
        """Issue a :class:`ConfigWarning` located at ``key`` (or the section header)."""
        raw = self.options.get(key) if key is not None else None
        filename, lineno = (raw.filename, raw.lineno) if raw else (self.filename, self.lineno)
        prefix = f"[{self.name}] {key}" if key is not None else f"[{self.name}]"
        warnings.warn(f"{filename}:{lineno}: {prefix}: {message}", ConfigWarning, stacklevel=4)

    def get(self, key: str, convert: Callable[[str], T], default: T, expected: str) -> T:
        """Convert the option with ``convert``; ``default`` when absent.

        Raises:
            ConfigError: ``convert`` raised ``ValueError``; the message ends with ``expected``.
        """
        raw = self.options.get(key)
        if raw is None:
            return default
        try:
            return convert(raw.value)
        except ValueError:
            raise self.error(key, expected) from None

    def check_unknown(
        self, key: str, known: Iterable[str], what: str, *, name: str | None = None
    ) -> bool:
        """Warn when ``name`` (default: ``key``) looks like a typo of a ``known`` name.

        Returns True when it warned. The warning is located at option ``key``.
        """
        import difflib  # deferred: only needed for options we do not know

        name = key if name is None else name
        candidates = list(known)
        if name in candidates:
            return False
        lowered = {candidate.lower(): candidate for candidate in candidates}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
        else:
            close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.8)
        if close:
            self.warn(key, f"unknown {what} (did you mean {close[0]!r}?); {_KEPT[what]}")
            return True
        return False


_KEPT = {
    "watcher option": "kept as a free-form watcher option",
    "daemon option": "ignored",
    "socket option": "ignored",
    "plugin option": "passed to the plugin as is",
    "stream option": "passed to the stream class as is",
    "section": "section ignored",
}
