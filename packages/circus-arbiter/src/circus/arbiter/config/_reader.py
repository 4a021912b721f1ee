"""Read the INI syntax of Circus 0.19 config files, keeping the line of every option.

Why not plain :class:`configparser.RawConfigParser`: upstream replaced its line reader, and
configs rely on the differences (spec/config.md §1). The first occurrence of an option wins
(stock configparser keeps the last or refuses duplicates); ``rem`` lines are comments; an
inline ``;`` is a comment only after whitespace, ``#`` never inline; option names keep their
case; no interpolation; ``key = ""`` is the empty string. We also need the line number of every
value for error messages, which configparser does not expose. So this module is a small,
complete reader of that dialect; configparser's regular expressions for headers and options
are mirrored.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

from ._errors import ConfigError, ConfigWarning

__all__ = ["RawValue", "RawSection", "RawConfig", "read_ini"]

# A section header fills the whole (comment-stripped) line; an option's name ends at the first
# '=' or ':' (the same rule as configparser's OPTCRE).
_SECTION = re.compile(r"\[(?P<header>.+)\]")
_OPTION = re.compile(r"(?P<name>.*?)\s*[=:]\s*(?P<value>.*)")
_INLINE_COMMENT = re.compile(r"\s;")


@dataclass
class RawValue:
    """One option as read: its text (continuation lines joined by newlines) and where it is."""

    value: str
    filename: str
    lineno: int


@dataclass
class RawSection:
    """A section, merged over every header with the same name, first definition of a key kept."""

    name: str
    filename: str
    lineno: int
    options: dict[str, RawValue] = field(default_factory=dict)


@dataclass
class RawConfig:
    """Sections in order of first appearance, and the files read, in reading order."""

    sections: dict[str, RawSection] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)


def _strip_inline_comment(text: str) -> str:
    match = _INLINE_COMMENT.search(text)
    if match is not None:
        text = text[: match.start()]
    return text.strip()


def _is_comment(line: str) -> bool:
    stripped = line.strip()
    if not stripped or stripped[0] in "#;":
        return True
    # Upstream (after configparser's legacy rule) treats a first word "rem" as a comment only
    # when it starts the line, unindented.
    return line[0] in "rR" and line.split(None, 1)[0].lower() == "rem"


def _finish(value: str) -> str:
    return "" if value == '""' else value


def read_ini(text: str, filename: str, into: RawConfig) -> None:
    """Parse ``text`` (the content of ``filename``) and merge it into ``into``.

    Sections already in ``into`` are extended; an option already present keeps its first
    value (a duplicate in the same file is reported as a :class:`ConfigWarning`).

    Raises:
        ConfigError: a line is neither a comment, a section header, an option nor a
            continuation, or an option appears before any section header.
    """
    into.files.append(filename)
    section: RawSection | None = None
    current: RawValue | None = None  # the option continuation lines extend
    current_indent = 0
    seen_here: dict[tuple[str, str], int] = {}

    # Split on "\n" only, as iterating over a text file does (open() already turned "\r\n" and
    # "\r" into "\n"); str.splitlines would also split on form feeds and U+2028 inside values.
    for lineno, line in enumerate(text.split("\n"), start=1):
        if _is_comment(line):
            if not line.strip():
                current = None  # a blank line ends a multi-line value
            continue
        indent = len(line) - len(line.lstrip())
        content = _strip_inline_comment(line)
        if current is not None and indent > current_indent:
            if content:
                current.value = f"{current.value}\n{content}" if current.value else content
            continue
        current = None
        header = _SECTION.fullmatch(content)
        if header is not None:
            name = header.group("header").strip()
            section = into.sections.get(name)
            if section is None:
                section = RawSection(name, filename, lineno)
                into.sections[name] = section
            continue
        if content.startswith("["):
            raise ConfigError(
                f"malformed section header {content!r}: expected [name]",
                filename=filename,
                lineno=lineno,
            )
        if section is None:
            raise ConfigError(
                "expected a [section] header before the first option",
                filename=filename,
                lineno=lineno,
            )
        option = _OPTION.fullmatch(content)
        if option is None or not option.group("name"):
            raise ConfigError(
                f"cannot parse line {content!r}: expected 'name = value', a [section] "
                "header or a comment",
                filename=filename,
                lineno=lineno,
                section=section.name,
            )
        name = option.group("name")
        value = RawValue(option.group("value"), filename, lineno)
        first = seen_here.get((section.name, name))
        if first is not None:
            warnings.warn(
                f"{filename}:{lineno}: [{section.name}] {name} is already set on line "
                f"{first}; the first value is kept (as Circus 0.19 does)",
                ConfigWarning,
                stacklevel=2,
            )
        seen_here.setdefault((section.name, name), lineno)
        if name not in section.options:
            section.options[name] = value
            current = value
        else:
            current = RawValue("", filename, lineno)  # absorbs an ignored value's continuation
        current_indent = indent

    for sec in into.sections.values():
        for raw in sec.options.values():
            raw.value = _finish(raw.value)
