"""Supervisor's value syntax: ``%(name)s`` expansions and its typed options, with errors that
name the file and line (``file:line: [program:x] startsecs = 'abc': expected ...``)."""

from __future__ import annotations

import os
import platform
import pwd
import signal
from collections.abc import Mapping
from typing import Any

from ._model import SupSection

__all__ = [
    "expand",
    "names_for",
    "host_node_name",
    "env_expansions",
    "to_bool",
    "to_int",
    "to_signal",
    "to_octal",
    "to_exitcodes",
    "to_bytes",
    "to_autorestart",
    "to_user",
    "to_env",
]

_TRUE = ("yes", "true", "on", "1")
_FALSE = ("no", "false", "off", "0")
_SIZES = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}


def host_node_name() -> str:
    """``%(host_node_name)s``: the machine's node name, as Supervisor takes it."""
    return platform.node()


def env_expansions(environ: Mapping[str, str]) -> dict[str, str]:
    """``ENV_X`` for every variable ``X`` of ``environ``."""
    return {f"ENV_{key}": value for key, value in environ.items()}


def names_for(section: SupSection, key: str, names: Mapping[str, Any]) -> dict[str, Any]:
    """The expansion names for ``key``: ``names`` plus ``here``, the absolute folder of the
    file the value was written in (an included file's own folder)."""
    filename, _ = section.where(key)
    return {**names, "here": os.path.dirname(os.path.abspath(filename))}


def expand(section: SupSection, key: str, names: Mapping[str, Any]) -> str | None:
    """The option's text with ``%(name)s`` expanded (``%%`` is ``%``); ``None`` when absent.

    Raises:
        ConfigError: an unknown name or a malformed ``%`` expression, at the option's line.
    """
    text = section.get(key)
    if text is None:
        return None
    return expand_text(section, key, text, names_for(section, key, names))


def expand_text(section: SupSection, key: str, text: str, names: Mapping[str, Any]) -> str:
    """``text`` (written at option ``key``) with ``%(name)s`` expanded from ``names``."""
    if "%" not in text:
        return text
    try:
        return text % names
    except KeyError as exc:
        known = ", ".join(sorted(n for n in names if not n.startswith("ENV_")))
        raise section.error(
            key,
            f"%({exc.args[0]})s cannot be expanded here (known names: {known}, ENV_<variable>)",
        ) from None
    except (ValueError, TypeError) as exc:
        raise section.error(
            key, f"expected a valid %(name)s expansion ({exc}; write %% for %)"
        ) from None


def to_bool(text: str) -> bool:
    """Supervisor's booleans: yes/true/on/1, no/false/off/0 (any case)."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(text)


def to_int(text: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """A decimal integer within the bounds."""
    value = int(text.strip(), 10)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(text)
    return value


def to_signal(text: str) -> int:
    """A signal name (``TERM``, ``SIGTERM``, any case) or number."""
    value = text.strip()
    if value.isdigit():
        number = int(value)
    else:
        name = value.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        found = getattr(signal, name, None)
        if not isinstance(found, int):
            raise ValueError(text)
        number = int(found)
    if number not in set(signal.valid_signals()) or number == 0:
        raise ValueError(text)
    return int(number)


def to_octal(text: str) -> int:
    """An octal mode mask (``022``, ``0o022``) between 0 and 0o777."""
    value = text.strip().lower()
    value = value[2:] if value.startswith("0o") else value
    number = int(value, 8)
    if not 0 <= number <= 0o777:
        raise ValueError(text)
    return number


def to_exitcodes(text: str) -> tuple[int, ...]:
    """A comma-separated list of exit codes 0..255."""
    codes = tuple(int(part.strip(), 10) for part in text.split(","))
    if not codes or any(not 0 <= code <= 255 for code in codes):
        raise ValueError(text)
    return codes


def to_bytes(text: str) -> int:
    """A size: a number of bytes or one with a KB, MB or GB suffix (any case)."""
    value = text.strip().lower()
    for suffix, factor in _SIZES.items():
        if value.endswith(suffix):
            return int(value[: -len(suffix)].strip(), 10) * factor
    number = int(value, 10)
    if number < 0:
        raise ValueError(text)
    return number


def to_autorestart(text: str) -> str:
    """``true`` → always, ``false`` → never, ``unexpected`` → on-failure (Circus's modes)."""
    value = text.strip().lower()
    if value == "unexpected":
        return "on-failure"
    return "always" if to_bool(value) else "never"


def to_user(text: str) -> pwd.struct_passwd:
    """An existing user, by name or uid."""
    value = text.strip()
    try:
        return pwd.getpwuid(int(value)) if value.isdigit() else pwd.getpwnam(value)
    except (KeyError, OverflowError):
        raise ValueError(text) from None


def to_env(text: str) -> dict[str, str]:
    """``KEY="val",KEY2=val2``: Supervisor's environment syntax (a shlex split, as Supervisor
    does). Quoted values hold commas, spaces and ``=``; surrounding quotes are removed; an
    unquoted ``#`` starts a comment. Unquoted values may also hold
    ``$ { } [ ] @ ! * ? & | < > ^ ~ %``, which Supervisor refuses."""
    import shlex

    lexer = shlex.shlex(text)
    lexer.wordchars += "/.+-():${}[]@!*?&|<>^~%`\\"
    tokens = list(lexer)
    result: dict[str, str] = {}
    index = 0
    while index < len(tokens):
        triple = tokens[index : index + 3]
        if len(triple) != 3 or triple[1] != "=":
            raise ValueError(text)
        result[triple[0]] = triple[2].strip("'\"")
        index += 4  # the separator (a comma) is skipped whatever it is, as Supervisor does
    return result
