"""A hook as the config wrote it: the watcher's ``(target, ignore_errors)`` pair, located.

The loader does not import hooks (the watcher does, when the daemon creates it); when that
import fails, the daemon reports the config's file, line, section and option like any other
config error, instead of the pair's repr.
"""

from __future__ import annotations

from typing import Any

from ._errors import ConfigError

__all__ = ["HookSpec"]


class HookSpec(tuple[str, bool]):
    """``(dotted_path, ignore_errors)``, equal to the plain pair, plus where it was written.

    Equality, hashing and ``deepcopy`` are the tuple's (a config diff compares values, not
    places); :meth:`error` builds the loader's :class:`ConfigError` at the option's line.
    """

    filename: str
    lineno: int
    section: str
    option: str
    text: str

    def __new__(
        cls,
        target: str,
        ignore_errors: bool,
        *,
        filename: str,
        lineno: int,
        section: str,
        option: str,
        text: str,
    ) -> HookSpec:
        spec = super().__new__(cls, (target, ignore_errors))
        spec.filename, spec.lineno, spec.section = filename, lineno, section
        spec.option, spec.text = option, text
        return spec

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # deepcopy/pickle rebuild through __new__, whose location arguments are keywords
        return tuple(self), {
            "filename": self.filename,
            "lineno": self.lineno,
            "section": self.section,
            "option": self.option,
            "text": self.text,
        }

    def error(self, expected: str) -> ConfigError:
        """The config error for this hook: ``file:line: [section] option = 'text': expected``."""
        return ConfigError(
            expected,
            filename=self.filename,
            lineno=self.lineno,
            section=self.section,
            option=self.option,
            value=self.text,
        )
