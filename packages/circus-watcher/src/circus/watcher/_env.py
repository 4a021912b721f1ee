"""The child environment of a watcher: ``env``, ``env_file``, ``copy_env``, ``copy_path``,
``virtualenv``.

Built once per start (and after ``set env``), not per spawn. Rules from
shared/spec/config.md §4.1 and §7.3: without ``copy_env`` the child gets only ``env``; with
it, circusd's environment overlaid by ``env``. ``$NAME`` in a value is replaced from
circusd's environment only for names starting with an uppercase letter (unset = empty).
"""

from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Mapping

from ._errors import OptionError

_VAR = re.compile(r"\$([A-Z][A-Z0-9_]*)")
_MAX_PTH = 1 << 20


def expand(value: str, environ: Mapping[str, str]) -> str:
    """Replace ``$NAME`` (uppercase-initial names only) from ``environ``."""
    return _VAR.sub(lambda match: environ.get(match.group(1), ""), value)


def build_env(
    env: Mapping[str, str],
    *,
    copy_env: bool,
    copy_path: bool,
    virtualenv: str | None,
    virtualenv_py_ver: str | None,
    environ: Mapping[str, str] | None = None,
    env_files: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return the exact environment of the watcher's children.

    ``env_files`` (the variables read from ``env_file``) override ``env``, as systemd's
    ``EnvironmentFile=`` overrides ``Environment=``; their values are never expanded.
    """
    base = dict(os.environ if environ is None else environ)
    result = dict(base) if copy_env else {}
    result.update({key: expand(value, base) for key, value in env.items()})
    if env_files:
        result.update(env_files)
    if copy_path:
        paths = [p for p in sys.path if p]
        if result.get("PYTHONPATH"):
            paths.append(result["PYTHONPATH"])
        result["PYTHONPATH"] = os.pathsep.join(paths)
    if virtualenv:
        _apply_virtualenv(result, virtualenv, virtualenv_py_ver)
    return result


def _apply_virtualenv(env: dict[str, str], venv: str, py_ver: str | None) -> None:
    version = py_ver or f"{sys.version_info.major}.{sys.version_info.minor}"
    site = os.path.join(venv, "lib", f"python{version}", "site-packages")
    if not os.path.isdir(site):
        raise OptionError("virtualenv", venv, f"a virtualenv holding {site}")
    extra = [site]
    for text in _pth_files(site):
        for line in text.splitlines():
            line = line.strip()
            if line and not line.startswith(("#", "import ")):
                extra.append(os.path.normpath(os.path.join(site, line)))
    if env.get("PYTHONPATH"):
        extra.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(extra)
    bin_dir = os.path.join(venv, "bin")
    env["PATH"] = os.pathsep.join(p for p in (bin_dir, env.get("PATH", "")) if p)
    env["VIRTUAL_ENV"] = venv


def _pth_files(site: str) -> list[str]:
    """The text of each ``*.pth`` of ``site``, in name order, read as circusd (root) from a
    virtualenv its app's user may own: the directories walked without following that
    user's links elsewhere, each file a plain one (no link out of a user's directory, no
    FIFO), at most :data:`_MAX_PTH` bytes. A file that cannot be read so is skipped: its
    lines (another file's content, put in the child's PYTHONPATH) would reach the app."""
    from circus.process import open_in, open_parent

    try:
        dir_fd, _ = open_parent(os.path.join(site, "x"))
    except OSError:
        return []
    try:
        listing = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            names = sorted(
                n for n in os.listdir(listing) if n.endswith(".pth") and not n.startswith(".")
            )
        finally:
            os.close(listing)
        texts = []
        for name in names:
            try:
                fd = open_in(dir_fd, name, os.O_RDONLY | os.O_NONBLOCK, path=f"{site}/{name}")
            except OSError:
                continue
            with open(fd, "rb") as handle:
                if stat.S_ISREG(os.fstat(fd).st_mode):
                    texts.append(handle.read(_MAX_PTH).decode("utf-8", "replace"))
        return texts
    finally:
        os.close(dir_fd)
