"""Read the INI dialect of supervisord.conf files, keeping where every value was written.

Supervisor reads its files with the standard library's ``RawConfigParser`` set up so that
``;`` and ``#`` start an inline comment when whitespace precedes them, duplicate sections and
options are allowed (the later value wins, also across included files) and option names are
lower-cased. This reader follows the same rules, and records the file and line of every
section header and option so that errors and warnings can point at them (configparser does
not keep line numbers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..config import ConfigError

__all__ = ["SupValue", "RawSupSection", "read_supervisor_ini"]

_SECTION = re.compile(r"\[(?P<header>.+)\]")
_OPTION = re.compile(r"(?P<name>.*?)\s*[=:]\s*(?P<value>.*)")
_INLINE = re.compile(r"\s[;#]")


@dataclass
class SupValue:
    """One option's text (continuation lines joined by newlines) and where it was written."""

    value: str
    filename: str
    lineno: int


@dataclass
class RawSupSection:
    """A section as read: merged over every header of that name, later options winning."""

    name: str
    filename: str
    lineno: int
    options: dict[str, SupValue] = field(default_factory=dict)


def _strip_comment(line: str) -> str:
    match = _INLINE.search(line)
    return (line[: match.start()] if match else line).strip()


def read_supervisor_ini(text: str, filename: str, into: dict[str, RawSupSection]) -> list[str]:
    """Parse ``text`` (the content of ``filename``) and merge its sections into ``into``.

    Returns the names of the sections this file defines, in order (an included file's
    ``[include]`` is recognised by the caller through it).

    Raises:
        ConfigError: an option before any section header, or a line that is neither a
            comment, a header, an option nor a continuation.
    """
    section: RawSupSection | None = None
    current: SupValue | None = None
    current_indent = 0
    defined: list[str] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if not stripped:
            if current is not None:
                current.value += "\n"  # kept only if a continuation line follows
            continue
        if stripped[0] in "#;":
            continue
        indent = len(line) - len(line.lstrip())
        content = _strip_comment(line)
        if current is not None and indent > current_indent:
            if content:
                current.value = f"{current.value.rstrip(chr(10))}\n{content}".lstrip("\n")
            continue
        if current is not None:
            current.value = current.value.rstrip("\n")
        current = None
        header = _SECTION.match(content)
        if header is not None:
            name = header.group("header")
            section = into.get(name)
            if section is None:
                section = into[name] = RawSupSection(name, filename, lineno)
            if name not in defined:
                defined.append(name)
            continue
        if section is None:
            raise ConfigError(
                "expected a [section] header before the first option",
                filename=filename,
                lineno=lineno,
            )
        option = _OPTION.fullmatch(content)
        if option is None or not option.group("name").strip():
            raise ConfigError(
                f"cannot parse line {content!r}: expected 'name = value', a [section] "
                "header or a comment",
                filename=filename,
                lineno=lineno,
                section=section.name,
            )
        name = option.group("name").strip().lower()
        current = SupValue(option.group("value").strip(), filename, lineno)
        current_indent = indent
        section.options[name] = current
    if current is not None:
        current.value = current.value.rstrip("\n")
    return defined
