"""Cached, isolated venvs for the peers (upstream Circus, Supervisor) and for plotting.

Each venv lives under ``.cache/<name>`` (gitignored), is made with ``uv venv`` and filled with
``uv pip install`` with ``UV_PYTHON_DOWNLOADS=never``; the project venv is never touched
(upstream Circus owns the same ``circus`` import name as we do). A ``.bench-ok`` file written
last records the requirements, so a half-built venv is rebuilt and a built one costs nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .procs import BenchError
from .settings import CACHE_DIR, ROOT

UPSTREAM_CIRCUS = ("upstream-circus", ("circus==0.19.0",))
SUPERVISOR = ("bench-supervisor", ("supervisor==4.3.0",))
PLOT = ("bench-plot", ("matplotlib>=3.7",))
_MARKER = ".bench-ok"


def find_uv() -> str:
    """Path of the uv binary: on PATH, else the repository's ``.tools/bin/uv``."""
    found = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    if not os.access(found, os.X_OK):
        raise BenchError("uv not found on PATH nor at .tools/bin/uv (run `make install`)")
    return found


def venv_dir(spec: tuple[str, tuple[str, ...]]) -> Path:
    """Where the venv for ``spec`` lives (built or not)."""
    return CACHE_DIR / spec[0]


def is_cached(spec: tuple[str, tuple[str, ...]]) -> bool:
    """True when the venv for ``spec`` is fully built with exactly its requirements."""
    marker = venv_dir(spec) / _MARKER
    return marker.is_file() and marker.read_text() == "\n".join(spec[1])


def ensure_venv(spec: tuple[str, tuple[str, ...]]) -> Path:
    """Build (once) and return the venv directory for ``spec`` = (name, requirements).

    Raises:
        BenchError: when uv is missing or the install fails (message carries uv's output).
    """
    path = venv_dir(spec)
    if is_cached(spec):
        return path
    uv = find_uv()
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never"}
    env.pop("VIRTUAL_ENV", None)
    base = getattr(sys, "_base_executable", sys.executable)
    print(f"[bench] building {path} ({' '.join(spec[1])}) ...", file=sys.stderr, flush=True)
    for cmd in (
        [uv, "venv", "-q", "--clear", "--python", base, str(path)],
        [uv, "pip", "install", "-q", "--python", str(path / "bin" / "python"), *spec[1]],
    ):
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise BenchError(f"{' '.join(cmd)} failed: {done.stderr.strip()[-800:]}")
    (path / _MARKER).write_text("\n".join(spec[1]))
    return path


def upstream_circus_ready() -> bool:
    """True when an upstream Circus venv is already built."""
    bindir = venv_dir(UPSTREAM_CIRCUS) / "bin"
    return (bindir / "circusd").exists() and (bindir / "circusctl").exists()


def upstream_circus_venv() -> Path:
    """The venv holding upstream Circus 0.19's ``circusd``/``circusctl``.

    Engineer C's ``circus.ctl.testing.upstream`` builds ``.cache/upstream-circus`` for the
    interop tests (under a file lock, with its own ready marker); when it is installed the
    bench lets it build and share that one copy, and only builds its own otherwise.

    Raises:
        BenchError: the venv cannot be built (no uv, PyPI unreachable).
    """
    try:
        from circus.ctl.testing import upstream
    except ImportError:
        upstream = None
    if upstream is not None:
        try:
            return Path(upstream.ensure_upstream().venv)
        except upstream.UpstreamUnavailable as exc:
            raise BenchError(str(exc)) from None
    if upstream_circus_ready():
        return venv_dir(UPSTREAM_CIRCUS)
    return ensure_venv(UPSTREAM_CIRCUS)
