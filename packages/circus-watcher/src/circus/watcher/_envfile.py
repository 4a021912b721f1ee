"""``env_file``: environment files read the way systemd reads ``EnvironmentFile=``.

One assignment per line, ``KEY=VALUE``; blank lines and lines starting with ``#`` or ``;``
are skipped; whitespace around the key and an unquoted value is dropped. A value may be
wrapped in single quotes (taken literally) or double quotes (``\\"``, ``\\\\``, ``\\$`` and
``\\``-newline are unescaped), and an unquoted value continues on the next line when it ends
with a backslash. ``$NAME`` is not expanded (systemd does not either). A line that is no
assignment, or a key that is no valid variable name, is an :class:`EnvFileError` naming the
file and line: a file meant to hold secrets is better refused than half applied.

A path written with a leading ``-`` is optional: a missing file is skipped, as in systemd.
Files stack in the order given, a later file overriding an earlier one. Standard library only.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable

from ._errors import WatcherError

__all__ = ["MAX_ENV_FILE_BYTES", "EnvFileError", "read_env_files", "split_optional"]

#: Refuse files bigger than this: an environment is small, and a path pointing at a device
#: or a huge log must not make the daemon read it all into memory.
MAX_ENV_FILE_BYTES = 1 << 20

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DOUBLE_ESCAPES = {'"': '"', "\\": "\\", "$": "$", "`": "`", "\n": ""}


class EnvFileError(WatcherError, ValueError):
    """An environment file cannot be read or holds a line that is no ``KEY=VALUE``.

    A watcher reports it as the :class:`OptionError` of ``env_file``; circusd's config loader
    as a config error at the option's line."""

    def __init__(self, path: str, lineno: int | None, problem: str) -> None:
        where = f"{path}:{lineno}" if lineno else path
        super().__init__(f"{where}: {problem}")
        self.path = path
        self.lineno = lineno
        self.problem = problem


def split_optional(entry: str) -> tuple[str, bool]:
    """``("-/etc/x.env")`` -> ``("/etc/x.env", True)``: the path and whether it may be missing."""
    return (entry[1:], True) if entry.startswith("-") else (entry, False)


def read_env_files(entries: Iterable[str]) -> dict[str, str]:
    """Read every file of ``entries`` in order (``-PATH``: optional) into one mapping.

    Raises:
        EnvFileError: a required file is missing or unreadable, too big, not UTF-8, or
            holds a line that is no assignment.
    """
    result: dict[str, str] = {}
    for entry in entries:
        path, optional = split_optional(entry)
        text = _read(path, optional)
        if text is not None:
            result.update(parse_env_text(text, path))
    return result


def _read(path: str, optional: bool) -> str | None:
    try:
        # the directories on the way walked without following another user's link (its
        # own ``current -> releases/42`` is fine, ``conf -> /root`` is not); imported here:
        # a config that names no env file loads without the process layer
        from circus.process import open_parent

        dir_fd, name = open_parent(path)
        try:
            # O_NONBLOCK: a FIFO put in the file's place must not hold the daemon in open()
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
            with open(fd, "rb") as handle:
                opened = os.fstat(fd)
                if not stat.S_ISREG(opened.st_mode):
                    raise EnvFileError(path, None, "not a regular file")
                problem = _borrowed(dir_fd, name, opened)
                if problem:
                    raise EnvFileError(path, None, problem)
                data = handle.read(MAX_ENV_FILE_BYTES + 1)
        finally:
            os.close(dir_fd)
    except FileNotFoundError:
        if optional:
            return None
        raise EnvFileError(path, None, "no such file (write -PATH for an optional one)") from None
    except OSError as exc:
        raise EnvFileError(path, None, f"cannot read it: {exc.strerror or exc}") from None
    if len(data) > MAX_ENV_FILE_BYTES:
        raise EnvFileError(path, None, f"larger than {MAX_ENV_FILE_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EnvFileError(path, None, f"not UTF-8 text (byte {exc.start})") from None


def _borrowed(dir_fd: int, name: str, opened: os.stat_result) -> str | None:
    """Why the file opened as ``name`` in the directory ``dir_fd`` must not be used, or None.

    The daemon reads as root what its processes, maybe another user's, then get in their
    environment: a link made by another user (in the app's own dir) may only lead to a file
    of that user, never to root's or another app's secrets. Checked after the open, so a
    swap in between is refused, not raced.
    """
    try:
        named = os.lstat(name, dir_fd=dir_fd)
    except OSError as exc:
        return f"changed while read ({exc.strerror or exc})"
    if stat.S_ISLNK(named.st_mode):
        if named.st_uid in (0, os.geteuid()) or named.st_uid == opened.st_uid:
            return None
        return (
            f"a link of uid {named.st_uid} to a file of uid {opened.st_uid}: another user's "
            "link may only lead to that user's own files"
        )
    if (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
        return "changed while read"
    if opened.st_nlink > 1:
        from circus.process import dir_is_private

        holder = os.fstat(dir_fd)
        if not dir_is_private(holder) and opened.st_uid != holder.st_uid:
            # with fs.protected_hardlinks off, anyone may hard-link root's file there
            return (
                f"a file of uid {opened.st_uid} with {opened.st_nlink} hard links, in a "
                f"directory of uid {holder.st_uid} that others may write"
            )
    return None


def parse_env_text(text: str, path: str = "<env_file>") -> dict[str, str]:
    """Parse the text of one environment file; ``path`` only names it in errors."""
    result: dict[str, str] = {}
    lines = text.split("\n")
    index = 0
    while index < len(lines):
        lineno = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line[0] in "#;":
            continue
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep:
            raise EnvFileError(path, lineno, "expected KEY=VALUE")
        if not _KEY.match(key):
            raise EnvFileError(path, lineno, f"{key!r} is not a variable name")
        value, index = _value(rest.lstrip(), lines, index, path, lineno)
        if "\0" in value:
            raise EnvFileError(path, lineno, "a value cannot hold a NUL character")
        result[key] = value
    return result


def _value(rest: str, lines: list[str], index: int, path: str, lineno: int) -> tuple[str, int]:
    """The value starting at ``rest`` and the index of the next unread line."""
    if rest[:1] in ("'", '"'):
        return _quoted(rest, lines, index, path, lineno)
    parts = []
    while rest.endswith("\\"):
        parts.append(rest[:-1])
        if index >= len(lines):
            rest = ""
            break
        rest = lines[index].strip()
        index += 1
    parts.append(rest)
    return "".join(parts).rstrip(), index


def _quoted(rest: str, lines: list[str], index: int, path: str, lineno: int) -> tuple[str, int]:
    quote, text = rest[0], rest[1:]
    out: list[str] = []
    while True:
        pos = 0
        while pos < len(text):
            char = text[pos]
            if char == quote:
                tail = text[pos + 1 :].strip()
                if tail and not tail.startswith("#"):
                    raise EnvFileError(path, lineno, f"text after the closing quote: {tail!r}")
                return "".join(out), index
            if char == "\\" and quote == '"' and pos + 1 < len(text):
                nxt = text[pos + 1]
                out.append(_DOUBLE_ESCAPES.get(nxt, "\\" + nxt))
                pos += 2
                continue
            out.append(char)
            pos += 1
        if index >= len(lines):
            raise EnvFileError(path, lineno, f"no closing {quote}")
        if quote == '"' and out and out[-1] == "\\":
            out.pop()  # a backslash-newline inside double quotes joins the lines
        else:
            out.append("\n")
        text = lines[index]
        index += 1
