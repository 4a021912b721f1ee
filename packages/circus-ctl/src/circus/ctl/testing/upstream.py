"""Upstream Circus 0.19 in a separate venv, for interop tests.

Upstream owns the same ``circus`` import name, so it must never be installed into the
project's venv. :func:`ensure_upstream` builds (once, under a file lock so pytest-xdist
workers share it) a venv with ``uv venv`` + ``uv pip install circus==0.19.0`` and returns
the paths of its programs. :class:`UpstreamDaemon` runs upstream's ``circusd`` on ipc
endpoints in a temporary directory; :func:`run_circusctl` runs upstream's ``circusctl``.

Typical pytest use (see tests/interop/conftest.py)::

    @pytest.fixture(scope="session")
    def upstream():
        try:
            return ensure_upstream()
        except UpstreamUnavailable as exc:
            pytest.skip(str(exc))
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "UPSTREAM_VERSION",
    "UpstreamCircus",
    "UpstreamDaemon",
    "UpstreamUnavailable",
    "default_venv_dir",
    "ensure_upstream",
    "find_uv",
    "run_circusctl",
    "write_config",
]

UPSTREAM_VERSION = "0.19.0"
_READY = ".circus-ready"


class UpstreamUnavailable(RuntimeError):
    """Upstream Circus cannot be provided (no uv, PyPI unreachable, install failed)."""


@dataclass(frozen=True)
class UpstreamCircus:
    """A venv holding upstream Circus; attributes are absolute paths to its programs."""

    venv: Path

    @property
    def python(self) -> Path:
        """The venv's interpreter."""
        return self.venv / "bin" / "python"

    @property
    def circusd(self) -> Path:
        """Upstream's circusd."""
        return self.venv / "bin" / "circusd"

    @property
    def circusctl(self) -> Path:
        """Upstream's circusctl."""
        return self.venv / "bin" / "circusctl"

    @property
    def circus_top(self) -> Path:
        """Upstream's circus-top."""
        return self.venv / "bin" / "circus-top"


def _repo_root() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        if (parent / "uv.lock").exists() and (parent / "packages").is_dir():
            return parent
    return None


def default_venv_dir() -> Path:
    """Where the venv lives: ``$CIRCUS_UPSTREAM_VENV``, else ``<repo>/.cache/upstream-circus``."""
    env = os.environ.get("CIRCUS_UPSTREAM_VENV")
    if env:
        return Path(env)
    root = _repo_root() or Path.cwd()
    return root / ".cache" / "upstream-circus"


def find_uv() -> str | None:
    """Return the uv executable: on PATH, else ``<repo>/.tools/bin/uv``, else None."""
    found = shutil.which("uv")
    if found:
        return found
    root = _repo_root()
    if root is not None and (root / ".tools" / "bin" / "uv").exists():
        return str(root / ".tools" / "bin" / "uv")
    return None


def _is_ready(venv: Path) -> bool:
    marker = venv / _READY
    return (
        marker.exists()
        and marker.read_text().strip() == UPSTREAM_VERSION
        and (venv / "bin" / "circusd").exists()
    )


def _run(argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, UV_PYTHON_DOWNLOADS="never")
    env.pop("VIRTUAL_ENV", None)  # uv must not target the project's venv
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)


def ensure_upstream(venv: Path | None = None, install_timeout: float = 600.0) -> UpstreamCircus:
    """Return upstream Circus's venv, building it first if needed (once across processes).

    Raises:
        UpstreamUnavailable: no uv, or the install failed (typically PyPI unreachable); the
            message says why, for a pytest skip reason.
    """
    venv = Path(venv) if venv is not None else default_venv_dir()
    if _is_ready(venv):
        return UpstreamCircus(venv)
    uv = find_uv()
    if uv is None:
        raise UpstreamUnavailable("uv not found (on PATH or .tools/bin/uv): cannot build the venv")
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / f"{venv.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another worker may be building it right now
        if _is_ready(venv):
            return UpstreamCircus(venv)
        shutil.rmtree(venv, ignore_errors=True)
        python = f"{sys.version_info.major}.{sys.version_info.minor}"
        try:
            made = _run([uv, "venv", "-q", "--python", python, str(venv)], 120)
            if made.returncode != 0:
                raise UpstreamUnavailable(f"uv venv failed: {made.stderr.strip()[-500:]}")
            installed = _run(
                [
                    uv,
                    "pip",
                    "install",
                    "-q",
                    "--python",
                    str(venv / "bin" / "python"),
                    f"circus=={UPSTREAM_VERSION}",
                ],
                install_timeout,
            )
            if installed.returncode != 0:
                raise UpstreamUnavailable(
                    f"cannot install circus=={UPSTREAM_VERSION} from PyPI (unreachable?): "
                    f"{installed.stderr.strip()[-500:]}"
                )
        except subprocess.TimeoutExpired as exc:
            shutil.rmtree(venv, ignore_errors=True)
            raise UpstreamUnavailable(f"building the upstream venv timed out: {exc}") from None
        except UpstreamUnavailable:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        (venv / _READY).write_text(UPSTREAM_VERSION + "\n")
    return UpstreamCircus(venv)


def write_config(
    directory: Path,
    watchers: Mapping[str, Mapping[str, Any]],
    *,
    statsd: bool = False,
    sockets: Mapping[str, Mapping[str, Any]] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> tuple[Path, dict[str, str]]:
    """Write a circus.ini with ipc endpoints inside ``directory``.

    Returns the config path and the endpoints ``{"endpoint", "pubsub_endpoint"}`` (plus
    ``"stats_endpoint"`` with ``statsd``). Multicast discovery is disabled (it would bind a
    fixed UDP port).
    """
    directory.mkdir(parents=True, exist_ok=True)
    endpoints = {
        "endpoint": f"ipc://{directory / 'ctrl.sock'}",
        "pubsub_endpoint": f"ipc://{directory / 'pub.sock'}",
    }
    if statsd:  # 0.19 turns statsd on whenever stats_endpoint is set
        endpoints["stats_endpoint"] = f"ipc://{directory / 'stats.sock'}"
    lines = ["[circus]"]
    lines += [f"{k} = {v}" for k, v in endpoints.items()]
    lines += ["multicast_endpoint = ", "check_delay = 1", f"statsd = {str(statsd).lower()}"]
    lines += [f"{k} = {v}" for k, v in (extra or {}).items()]
    for name, options in watchers.items():
        lines += ["", f"[watcher:{name}]"] + [f"{k} = {v}" for k, v in options.items()]
    for name, options in (sockets or {}).items():
        lines += ["", f"[socket:{name}]"] + [f"{k} = {v}" for k, v in options.items()]
    path = directory / "circus.ini"
    path.write_text("\n".join(lines) + "\n")
    return path, endpoints


def run_circusctl(
    upstream: UpstreamCircus,
    endpoint: str,
    args: Sequence[str],
    timeout: float = 30.0,
    ctl_timeout: int = 5,
) -> subprocess.CompletedProcess[str]:
    """Run upstream's circusctl against ``endpoint``; return the completed process."""
    argv = [str(upstream.circusctl), "--endpoint", endpoint, "--timeout", str(ctl_timeout)]
    return subprocess.run([*argv, *args], capture_output=True, text=True, timeout=timeout)


class UpstreamDaemon:
    """Upstream's circusd running a config written into ``directory`` (a context manager).

    On enter it starts circusd and waits (up to ``start_timeout``) until its control channel
    answers and every autostarted watcher is ``active`` (0.19 answers while its watchers are
    still ``starting``); on exit it sends ``quit``, waits, and kills it if it is still alive, so no
    process is left behind. ``endpoints`` holds the three ipc endpoints.
    """

    def __init__(
        self,
        upstream: UpstreamCircus,
        directory: Path,
        watchers: Mapping[str, Mapping[str, Any]],
        *,
        statsd: bool = False,
        sockets: Mapping[str, Mapping[str, Any]] | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        self.upstream = upstream
        self.directory = Path(directory)
        self.config, self.endpoints = write_config(
            self.directory, watchers, statsd=statsd, sockets=sockets
        )
        self.start_timeout = start_timeout
        self.autostarted = sorted(
            name
            for name, options in watchers.items()
            if str(options.get("autostart", "true")).strip().lower()
            not in ("false", "0", "no", "off")
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = self.directory / "circusd.log"

    @property
    def endpoint(self) -> str:
        """The control endpoint."""
        return self.endpoints["endpoint"]

    @property
    def pubsub_endpoint(self) -> str:
        """The pub/sub endpoint."""
        return self.endpoints["pubsub_endpoint"]

    def __enter__(self) -> UpstreamDaemon:
        from circus.ctl import CircusClient
        from circus.ctl.errors import CtlError

        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [str(self.upstream.circusd), str(self.config)],
                cwd=self.directory,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + self.start_timeout
        with CircusClient(self.endpoint, timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    self._fail("circusd exited during start-up")
                try:
                    statuses = client.call("status").get("statuses", {})
                    if all(statuses.get(name) == "active" for name in self.autostarted):
                        return self
                except CtlError:  # not bound yet, or 0.19's command lock (errno 5)
                    pass
                if time.monotonic() > deadline:
                    self._fail(
                        f"circusd did not answer with {self.autostarted} active "
                        f"within {self.start_timeout}s"
                    )
                time.sleep(0.05)

    def _fail(self, message: str) -> None:
        self.__exit__(None, None, None)
        raise RuntimeError(f"{message}; log:\n{self.log_path.read_text(errors='replace')}")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self.process
        if process is None:
            return
        self.process = None
        family = _descendants(process.pid)
        if process.poll() is None:
            self._quit()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                family |= _descendants(process.pid)
                process.terminate()  # circusd treats SIGTERM as a graceful quit
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(10)
        # Whatever circusd failed to stop must not outlive the test.
        for pid, started in family:
            if _start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def _quit(self) -> None:
        """Send ``quit``, retrying while 0.19's command lock refuses it (errno 5)."""
        from circus.ctl import CircusClient
        from circus.ctl.errors import CallError, CtlError

        deadline = time.monotonic() + 15
        try:
            with CircusClient(self.endpoint, timeout=5.0) as client:
                while True:
                    try:
                        client.call("quit", {"waiting": True})
                        return
                    except CallError as exc:
                        if "already running" not in exc.reason or time.monotonic() > deadline:
                            return
                    time.sleep(0.1)
        except CtlError:
            return


def _start_time(pid: int) -> str | None:
    """The kernel's start time of ``pid`` (guards against pid reuse), None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[19]


def _descendants(root: int) -> set[tuple[int, str]]:
    """(pid, start time) of every live descendant of ``root``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found: set[tuple[int, str]] = set()
    stack = list(children.get(root, []))
    while stack:
        pid = stack.pop()
        started = _start_time(pid)
        if started is not None:
            found.add((pid, started))
        stack.extend(children.get(pid, []))
    return found
