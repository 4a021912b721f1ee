"""The Circus INI text equivalent to a loaded supervisord.conf (``circusctl convert``)."""

from __future__ import annotations

import re

from ._model import SupervisorConfig

__all__ = ["to_circus_ini", "unconverted", "ConvertError"]

_INLINE_COMMENT = re.compile(r"\s;")
_FNMATCH = re.compile(r"([*?\[])")


class ConvertError(ValueError):
    """A value the Circus INI syntax cannot hold as written."""


def _env_pattern(name: str) -> str:
    if "," in name:
        raise ConvertError(f"watcher name {name!r}: a comma cannot appear in an [env:...] header")
    return _FNMATCH.sub(r"[\1]", name)


def _line(section: str, key: str, value: str) -> str:
    if "\n" in value or _INLINE_COMMENT.search(value) or value != value.strip():
        raise ConvertError(
            f"[{section}] {key} = {value!r}: Circus INI cannot hold this value as written "
            "(a newline, leading or trailing spaces, or ' ;' which starts a comment there)"
        )
    return f"{key} = {value}" if value else f'{key} = ""'


def to_circus_ini(supervisor: SupervisorConfig) -> str:
    """Circus INI text that loads (``circusd``) into the same watchers and sockets.

    Raises:
        ConvertError: a value Circus INI cannot express (``' ;'`` inside a command...).
    """
    out = [
        f"# Converted from {supervisor.path} (circusctl convert).",
        "# One watcher per Supervisor process, named as supervisorctl names it.",
    ]
    if not supervisor.supervisord.nodaemon:
        out.append("# [supervisord] nodaemon = false: run it with 'circusd --daemon'.")
    for header, pairs in supervisor.ini.items():
        kind, _, name = header.partition(":")
        if kind == "env":
            if not pairs:
                continue
            header = f"env:{_env_pattern(name)}"
        out.append("")
        out.append(f"[{header}]")
        out.extend(_line(header, key, value) for key, value in pairs)
    return "\n".join(out) + "\n"


def unconverted(supervisor: SupervisorConfig) -> list[str]:
    """``file:line: [section]: ...`` for each section the Circus INI leaves out: Supervisor's
    XML-RPC servers and event listeners run only when circusd reads the supervisord.conf."""
    out = []
    for name, section in supervisor.sections.items():
        out.append(
            f"{section.filename}:{section.lineno}: [{name}]: not converted (served only when "
            "circusd runs the supervisord.conf itself)"
        )
    return out
