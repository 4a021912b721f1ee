"""The crash state file: which processes this daemon runs, kept on disk for its successor.

A SIGKILLed circusd cannot stop its workers; they keep running, unsupervised. So a running
daemon keeps, in its runtime directory, one file per config and endpoint naming every process
it runs: per watcher, each process's pid, worker id, kernel start time (a pid and its start
time name one process for the life of the system) and cgroup leaf. The next circusd started
with the same config reads it and adopts or replaces them (``_recover``).

What makes the file trustworthy:

* It lives in a directory of our own (mode 0700, owned by us) and is 0600; a file or
  directory another user could have written is ignored with a warning: the file names
  processes to signal.
* A lock (``flock``) beside it is held for the daemon's life. The kernel drops it when the
  daemon dies, however it dies, so a successor that gets it knows the previous daemon is
  gone; a second daemon on the same config and endpoint is refused while the first lives.
* It is replaced atomically (written beside, then renamed): a reader sees the old or the
  new file, never half of one. Not fsync'ed: the file matters only while the processes it
  names are alive, and a power loss ends them (the boot id, recorded, rules out the file of
  an earlier boot).
* Writes are batched: a change schedules one write no sooner than ``MIN_INTERVAL`` after
  the previous one, so a thousand spawns in one loop pass cost one write.
* A scheduled write is rendered on the event loop (the snapshot reads the watchers) and
  stored by a writer thread: creating, writing and renaming a file on a real filesystem
  takes 0.2 to 2 ms, which a respawn that happened to be due then would wait for. Stores
  run one at a time, and one older than the file on disk is dropped.
* A write that fails (disk full, read-only filesystem) is logged and the daemon carries on;
  the next change tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib
import json
import logging
import math
import os
import stat
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ._errors import ArbiterError

__all__ = [
    "FORMAT",
    "MIN_INTERVAL",
    "ON_CRASH",
    "CrashState",
    "PreviousProcess",
    "PreviousState",
    "default_runtime_dir",
    "parse_state",
]

log = logging.getLogger("circus.arbiter")

#: Version of the file's format; a file with another one is ignored (with a warning).
FORMAT = 1
#: Seconds between two writes at least (a burst of changes is one write).
MIN_INTERVAL = 0.05
#: The values of ``[circus] on_crash``; the first is the default.
ON_CRASH = ("adopt", "replace")
#: Environment variable overriding the default runtime directory.
RUNTIME_ENV = "CIRCUS_RUNTIME_DIR"
# A state file larger than this is not one of ours.
_MAX_SIZE = 64 * 1024 * 1024


def default_runtime_dir() -> str:
    """Where state files go when ``[circus] runtime_dir`` is not set.

    ``$CIRCUS_RUNTIME_DIR``; else ``/run/circus`` for root; else ``$XDG_RUNTIME_DIR/circus``;
    else ``<tmp>/circus-<uid>``.
    """
    env = os.environ.get(RUNTIME_ENV, "").strip()
    if env:
        return env
    if os.geteuid() == 0:
        return "/run/circus"
    xdg = os.environ.get("XDG_RUNTIME_DIR", "").strip()
    if xdg:
        return os.path.join(xdg, "circus")
    tmp = os.environ.get("TMPDIR", "").strip() or "/tmp"  # not tempfile: a daemon import
    return os.path.join(tmp, f"circus-{os.geteuid()}")


def state_key(config_file: str | None, endpoint: str) -> str:
    """The name part shared by the state and lock files of one config and endpoint."""
    ident = f"{os.path.abspath(config_file) if config_file else ''}\0{endpoint}"
    digest: str = _sha256()(ident.encode("utf-8", "surrogateescape")).hexdigest()
    return digest[:20]


def _sha256() -> Callable[[bytes], Any]:
    """CPython's built-in SHA-256; hashlib's would load OpenSSL (3.5 MiB of the daemon's RSS)."""
    for module in ("_sha2", "_sha256"):  # 3.12+, 3.11
        try:
            return importlib.import_module(module).sha256  # type: ignore[no-any-return]
        except (ImportError, AttributeError):
            continue
    import hashlib  # pragma: no cover - a Python built without its own SHA-256

    return hashlib.sha256  # pragma: no cover


@dataclass(frozen=True)
class PreviousProcess:
    """One process named by a previous daemon's state file."""

    watcher: str
    pid: int
    wid: int
    start_time: int
    started: float
    cgroup: str | None = None
    ending: bool = False  # it was being stopped when the daemon died
    stdout_pipe: int | None = None  # inode of the pipe its stdout went to
    stderr_pipe: int | None = None


@dataclass(frozen=True)
class PreviousState:
    """What a previous daemon's state file says."""

    daemon_pid: int
    daemon_start_time: int
    boot_id: str
    written: float
    processes: tuple[PreviousProcess, ...]
    commands: dict[str, str] = field(default_factory=dict)  # watcher -> its cmd and args
    sockets: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (fd, inode)


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:
        raise ValueError(f"{what}: expected an integer >= {minimum}, got {value!r:.40}")
    return value


def _float(value: Any, what: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value):
        raise ValueError(f"{what}: expected a number, got {value!r:.40}")
    return float(value)


def _str(value: Any, what: str) -> str:
    if type(value) is not str:
        raise ValueError(f"{what}: expected a string, got {value!r:.40}")
    return value


def parse_state(data: bytes) -> PreviousState:
    """Validate a state file's bytes.

    Raises:
        ValueError: not a state file of this format (the message says what is wrong).
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON ({exc})") from None
    except RecursionError:
        raise ValueError("not JSON (nested too deeply)") from None
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    if doc.get("format") != FORMAT:
        raise ValueError(f"format {doc.get('format')!r:.20}, expected {FORMAT}")
    daemon = doc.get("daemon")
    watchers = doc.get("watchers")
    if not isinstance(daemon, dict) or not isinstance(watchers, dict):
        raise ValueError("no 'daemon' or 'watchers' object")
    procs: list[PreviousProcess] = []
    commands: dict[str, str] = {}
    seen: set[int] = set()
    for name, entry in watchers.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("processes"), list):
            raise ValueError(f"watcher {name!r:.60}: no 'processes' list")
        commands[name] = _str(entry.get("command", ""), f"watcher {name!r:.60} command")
        for item in entry["processes"]:
            if not isinstance(item, dict):
                raise ValueError(f"watcher {name!r:.60}: a process is not an object")
            pid = _int(item.get("pid"), "pid", 2)
            if pid in seen:
                raise ValueError(f"pid {pid} is listed twice")
            seen.add(pid)
            cgroup = item.get("cgroup")
            pipes = item.get("pipes", {})
            if not isinstance(pipes, dict):
                raise ValueError(f"pid {pid}: 'pipes' is not an object")
            out, err = pipes.get("stdout"), pipes.get("stderr")
            procs.append(
                PreviousProcess(
                    watcher=name,
                    pid=pid,
                    wid=_int(item.get("wid"), "wid", 1),
                    start_time=_int(item.get("start_time"), "start_time"),
                    started=_float(item.get("started"), "started"),
                    cgroup=None if cgroup is None else _str(cgroup, "cgroup"),
                    ending=bool(item.get("ending", False)),
                    stdout_pipe=None if out is None else _int(out, "stdout pipe", 1),
                    stderr_pipe=None if err is None else _int(err, "stderr pipe", 1),
                )
            )
    sockets: dict[str, tuple[int, int]] = {}
    listed = doc.get("sockets", {})
    if not isinstance(listed, dict):
        raise ValueError("'sockets' is not an object")
    for name, entry in listed.items():
        if not isinstance(entry, dict):
            raise ValueError(f"socket {name!r:.60} is not an object")
        sockets[name] = (_int(entry.get("fd"), "socket fd"), _int(entry.get("inode"), "inode", 1))
    return PreviousState(
        daemon_pid=_int(daemon.get("pid"), "daemon pid", 1),
        daemon_start_time=_int(daemon.get("start_time"), "daemon start_time"),
        boot_id=_str(doc.get("boot_id", ""), "boot_id"),
        written=_float(doc.get("written", 0.0), "written"),
        processes=tuple(procs),
        commands=commands,
        sockets=sockets,
    )


def watcher_command(watcher: Any) -> str:
    """What identifies a watcher's program in the state file: its cmd and args."""
    settings = getattr(watcher, "settings", None)
    cmd = getattr(settings, "cmd", None) or getattr(watcher, "cmd", "")
    args = getattr(settings, "args", None) or ""
    return f"{cmd}\0{args}"


def _private_dir(path: str) -> str | None:
    """Make ``path`` (0700) if missing; why it cannot be trusted, or None."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot make {path}: {exc.strerror or exc}"
    if not stat.S_ISDIR(st.st_mode):
        return f"{path} is not a directory"
    if st.st_uid != os.geteuid():
        return f"{path} belongs to uid {st.st_uid}, not to us"
    if st.st_mode & 0o022:
        return f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):o})"
    return None


class CrashState:
    """The state and lock files of one daemon (see the module docstring).

    Args:
        directory: the runtime directory.
        key: :func:`state_key` of the config and endpoint.
        snapshot: returns ``{watcher name: (command, [process entries])}`` of what runs now
            (entries from :func:`records`).
        endpoint: the control endpoint, named when another daemon holds the lock.
        sockets: returns ``{name: fd}`` of the daemon's listening sockets (the fds its
            workers inherit under the same numbers).
    """

    def __init__(
        self,
        directory: str,
        key: str,
        snapshot: Callable[[], dict[str, tuple[str, list[str]]]],
        endpoint: str = "",
        sockets: Callable[[], Mapping[str, int]] | None = None,
    ) -> None:
        self.directory = directory
        self.label = f" on {endpoint}" if endpoint else ""
        self.path = os.path.join(directory, f"circusd-{key}.state")
        self.lock_path = os.path.join(directory, f"circusd-{key}.lock")
        self._snapshot = snapshot
        self._sockets = sockets
        self._lock_fd: int | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._last = 0.0
        self._failing: int | None = None  # errno of the failing writes, logged once
        self._me = (os.getpid(), _own_start_time())
        self._boot = _boot_id()
        self.writes = 0  # how many times the file was written (figures, tests)
        self._io = threading.Lock()  # one store at a time, loop's or writer thread's
        self._rendered = 0  # sequence number of the last rendering
        self._stored = 0  # sequence number of the rendering on disk
        self._closed = False
        self._writer: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ lock

    def acquire(self) -> bool:
        """Take the lock; False (with an error logged) when the directory is not usable.

        Raises:
            ArbiterError: another daemon holds the lock (it runs this config and endpoint).
        """
        problem = _private_dir(self.directory)
        if problem is not None:
            log.error("crash state disabled (after a crash, workers cannot be found): %s", problem)
            return False
        for _ in range(10):
            try:
                fd = os.open(
                    self.lock_path,
                    os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                    0o600,
                )
            except OSError as exc:
                log.error("crash state disabled: cannot open %s: %s", self.lock_path, exc)
                return False
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_small(fd).strip()
                os.close(fd)
                raise ArbiterError(
                    f"another circusd (pid {holder.decode(errors='replace') or '?'}) runs "
                    f"this config{self.label}: it holds {self.lock_path}"
                ) from None
            except OSError as exc:
                os.close(fd)
                log.error("crash state disabled: cannot lock %s: %s", self.lock_path, exc)
                return False
            # A predecessor's clean exit may have unlinked the file we opened: lock the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.lock_path).st_ino
            except OSError:
                same = False
            if same:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
                    os.pwrite(fd, b"%d\n" % os.getpid(), 0)
                self._lock_fd = fd
                self._drop_stale_temporaries()
                return True
            os.close(fd)
        log.error("crash state disabled: %s keeps being replaced", self.lock_path)
        return False

    def _drop_stale_temporaries(self) -> None:
        """Remove the temporary files of writes a previous daemon was killed in the middle of
        (we hold the lock: no other writer of this file runs)."""
        prefix = os.path.basename(self.path) + "."
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if name.startswith(prefix) and name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(self.directory, name))

    @property
    def active(self) -> bool:
        """Whether the lock is held (and the file kept)."""
        return self._lock_fd is not None

    # ------------------------------------------------------------------ reading

    def previous(self, quiet: bool = False) -> PreviousState | None:
        """The previous daemon's state, or None: none, or unusable (a warning says why,
        unless ``quiet``)."""
        state, problem = self._load()
        if problem is not None and not quiet:
            log.warning("ignoring the crash state file %s: %s", self.path, problem)
        return state

    def _load(self) -> tuple[PreviousState | None, str | None]:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, exc.strerror or str(exc)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
                return None, "not a private file of ours (owner, mode or type)"
            if st.st_size > _MAX_SIZE:
                return None, f"too large ({st.st_size} bytes)"
            data = _read_all(fd)
        except OSError as exc:
            return None, exc.strerror or str(exc)
        finally:
            os.close(fd)
        try:
            state = parse_state(data)
        except ValueError as exc:
            return None, f"corrupt: {exc}"
        if state.boot_id and self._boot and state.boot_id != self._boot:
            return None, "written before the last boot"
        return state, None

    # ------------------------------------------------------------------ writing

    def changed(self) -> None:
        """Something ran or ended: write the file soon (one write per burst)."""
        if self._lock_fd is None or self._handle is not None:
            return
        loop = asyncio.get_running_loop()
        delay = max(0.0, self._last + MIN_INTERVAL - time.monotonic())
        self._handle = loop.call_later(delay, self._due)

    def _due(self) -> None:
        self._handle = None
        data = self._render()
        if data is None:
            return
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="circus-crash-state")
        try:
            self._writer.submit(self._store, *data)
        except RuntimeError:  # no thread to be had (RLIMIT_NPROC, pids.max): stored here
            self._store(*data)

    def write(self) -> bool:
        """Write the file now; False (logged once per kind of failure) when it failed."""
        data = self._render()
        return data is not None and self._store(*data)

    def _render(self) -> tuple[bytes, int] | None:
        """The file's contents now, with their sequence number; None when not kept."""
        if self._lock_fd is None:
            return None
        self._last = time.monotonic()
        try:
            watchers = self._snapshot()
            sockets = _socket_ids(self._sockets() if self._sockets is not None else {})
        except Exception:  # the daemon must not die of its bookkeeping
            log.exception("crash state: cannot list the processes")
            return None
        head = json.dumps(
            {
                "format": FORMAT,
                "boot_id": self._boot,
                "written": time.time(),
                "daemon": {"pid": self._me[0], "start_time": self._me[1]},
                "sockets": sockets,
            },
            separators=(",", ":"),
        )
        parts = [
            f'{json.dumps(name)}:{{"command":{json.dumps(command)},'
            f'"processes":[{",".join(entries)}]}}'
            for name, (command, entries) in watchers.items()
        ]
        data = f'{head[:-1]},"watchers":{{{",".join(parts)}}}}}'.encode()
        self._rendered += 1
        return data, self._rendered

    def _store(self, data: bytes, seq: int) -> bool:
        """Replace the file with ``data`` (from any thread); False when it failed, when a
        later rendering is on disk already, or after :meth:`close`."""
        with self._io:
            if self._closed or seq <= self._stored:
                return False
            return self._replace(data, seq)

    def _replace(self, data: bytes, seq: int) -> bool:
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            fd = os.open(
                tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
            )
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            if self._failing != exc.errno:
                self._failing = exc.errno
                log.error(
                    "cannot write the crash state file %s: %s (a crash now would leave "
                    "workers that changed since the last write unknown; retried at the "
                    "next change)",
                    self.path,
                    exc.strerror or exc,
                )
            return False
        if self._failing is not None:
            log.info("the crash state file %s is written again", self.path)
            self._failing = None
        self._stored = seq
        self.writes += 1
        return True

    def close(self) -> None:
        """At a clean exit: remove the file and the lock (nothing is left to find)."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        with self._io:  # a store under way ends first; none starts after
            self._closed = True
        if self._writer is not None:
            self._writer.shutdown(wait=True, cancel_futures=True)
            self._writer = None
        fd, self._lock_fd = self._lock_fd, None
        if fd is None:
            return
        for path in (self.path, self.lock_path):
            with contextlib.suppress(OSError):
                os.unlink(path)
        os.close(fd)


def records(procs: Iterable[Any], ending: bool) -> list[str]:
    """The state file entries (JSON objects, as text) of ``procs`` whose start time is known.

    A process's entry never changes while it runs: it is made once and kept (weakly) with
    the process, so a write of 1,000 processes mostly joins strings.
    """
    out: list[str] = []
    for proc in procs:
        if getattr(proc, "returncode", None) is not None:
            continue
        try:
            entry = _ENTRIES.get(proc)
        except TypeError:  # cannot be weakly referenced: made each time
            entry = None
        if entry is None:
            entry = _entry(proc)
            if entry is None:
                continue
            try:
                _ENTRIES[proc] = entry
            except TypeError:
                pass
        out.append(entry[:-1] + ',"ending":true}' if ending else entry)
    return out


_ENTRIES: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def _entry(proc: Any) -> str | None:
    start = getattr(proc, "start_time", None)
    if start is None:
        return None
    entry: dict[str, Any] = {
        "pid": proc.pid,
        "wid": proc.wid,
        "start_time": start,
        "started": float(proc.started or 0.0),
    }
    cgroup = getattr(proc, "cgroup", None)
    if cgroup:
        entry["cgroup"] = cgroup
    pipes = _pipes(proc)
    if pipes:
        entry["pipes"] = pipes
    return json.dumps(entry, separators=(",", ":"))


def _socket_ids(fds: Mapping[str, int]) -> dict[str, dict[str, int]]:
    """``{name: {"fd", "inode"}}`` of the daemon's listening sockets."""
    out: dict[str, dict[str, int]] = {}
    for name, fd in fds.items():
        try:
            out[name] = {"fd": fd, "inode": os.fstat(fd).st_ino}
        except OSError:
            continue
    return out


def _pipes(proc: Any) -> dict[str, int]:
    """``{"stdout": inode, "stderr": inode}`` of the pipes we read ``proc``'s output from."""
    out: dict[str, int] = {}
    for name in ("stdout", "stderr"):
        fd = getattr(proc, name, None)
        if isinstance(fd, int):
            try:
                out[name] = os.fstat(fd).st_ino
            except OSError:
                continue
    return out


def _read_small(fd: int) -> bytes:
    try:
        return os.pread(fd, 64, 0)
    except OSError:
        return b""


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _own_start_time() -> int:
    from circus.process import process_start_time

    return process_start_time(os.getpid()) or 0


def _boot_id() -> str:
    from circus.process import boot_id

    return boot_id()
