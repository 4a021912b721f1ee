"""The config loader's exception and warning types.

Every problem found in a config file is reported with where it is (file and line), which
section and option hold it, the offending value and what was expected, so an operator can fix
the file without reading our code.
"""

from __future__ import annotations

from circus.watcher import shorten

__all__ = ["ConfigError", "ConfigWarning"]


class ConfigError(ValueError):
    """A config file cannot be loaded; nothing was started.

    Attributes:
        filename: the file holding the problem (``None`` when not tied to a file).
        lineno: 1-based line number in ``filename`` (``None`` when unknown).
        section: the section header without brackets, e.g. ``watcher:web``.
        option: the option name as written.
        value: the offending value as written (after ``$(circus.env.X)`` expansion); the
            message shows at most ~100 characters of it.
        expected: what would have been accepted, in words.

    ``str(error)`` reads ``circus.ini:12: [watcher:web] numprocesses = 'abc': expected an
    integer >= 0``.
    """

    def __init__(
        self,
        expected: str,
        *,
        filename: str | None = None,
        lineno: int | None = None,
        section: str | None = None,
        option: str | None = None,
        value: str | None = None,
    ) -> None:
        self.expected = expected
        self.filename = filename
        self.lineno = lineno
        self.section = section
        self.option = option
        self.value = value
        super().__init__(self._format())

    def _format(self) -> str:
        where = ""
        if self.filename is not None:
            where = self.filename if self.lineno is None else f"{self.filename}:{self.lineno}"
            where += ": "
        what = ""
        if self.section is not None:
            what = f"[{self.section}] "
        if self.option is not None:
            what += self.option
            if self.value is not None:
                what += f" = {shorten(self.value)}"
        if what:
            what = what.rstrip() + ": "
        return f"{where}{what}{self.expected}"


class ConfigWarning(UserWarning):
    """Something in a config file is suspicious but loadable (typo'd option, ignored key...).

    Issued with :func:`warnings.warn`; circusd routes it to its log with
    ``logging.captureWarnings(True)``. The message starts with ``file:line:``.
    """
