"""After a crash: finding the previous daemon's processes and adopting or replacing them.

Run once at start, before the watchers are started, when the crash state file (see
``_crashstate``) names processes of a previous daemon that is gone. Each one is taken only if
it is still the process that was recorded (same pid *and* same kernel start time; the boot id
was checked with the file): a pid reused by an unrelated process is neither adopted nor
signalled. Then, per ``[circus] on_crash``:

* ``adopt`` (default): the processes are supervised through pidfds by their watcher again,
  with their worker ids; their exits are noticed and replaced, stop and signals reach them
  and their trees. Processes of a watcher that is gone from the config, whose command
  changed, or that were being stopped are stopped instead.
* ``replace``: every tree is stopped (stop signal, ``graceful_timeout``, SIGKILL, the
  grandchildren included) before any watcher starts.

Either way no worker runs twice (adopted ones count against ``numprocesses``) and none is
left unsupervised.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import stat
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._crashstate import CrashState, PreviousProcess, PreviousState, watcher_command

if TYPE_CHECKING:
    from ._watcher_set import WatcherSet

__all__ = ["claim_leaves", "claim_previous_leaves", "recover"]

log = logging.getLogger("circus.arbiter")

# How long a process of a watcher that no longer exists gets between SIGTERM and SIGKILL.
_ORPHAN_GRACE = 10.0


def claim_leaves(state: PreviousState | None) -> None:
    """Keep the cgroup leaves of the previous daemon's live processes from the sweep of
    dead daemons' cgroups (to be called before tree tracking starts)."""
    if state is None or state.daemon_pid == os.getpid():
        return  # none, or our own (written before an exec of ourselves: nothing to take over)
    from circus.process import claim_cgroup, process_is, sibling_leaves

    for rec in state.processes:
        if rec.cgroup and process_is(rec.pid, rec.start_time):
            claim_cgroup(rec.cgroup, rec.pid)
    sibling_leaves(rec.cgroup for rec in state.processes if rec.cgroup)


def _predecessor_gone(state: PreviousState, crash: CrashState, quiet: bool = False) -> bool:
    """Whether the daemon that wrote ``state`` is gone (and is not ourselves before an exec).

    We hold the lock, so it is; but a lock file removed by hand would let two daemons run:
    a recorded daemon still running (not a zombie) keeps its processes.
    """
    from circus.process import process_is

    if state.daemon_pid == os.getpid():
        return False  # our own file, from before an exec of ourselves: handed over already
    if process_is(state.daemon_pid, state.daemon_start_time):
        if not quiet:
            log.error(
                "the circusd (pid %d) that wrote %s still runs without its lock: its "
                "processes are left to it",
                state.daemon_pid,
                crash.path,
            )
        return False
    return True


def claim_previous_leaves(config: Any) -> None:
    """:func:`claim_leaves` for the daemon a loaded config runs (circusd, before tree
    tracking starts); never raises."""
    try:
        from ._crashstate import CrashState, default_runtime_dir, state_key
        from ._from_config import settings_from_config

        settings = settings_from_config(config)
        crash = CrashState(
            settings.runtime_dir or default_runtime_dir(),
            state_key(settings.config_file, settings.endpoint),
            dict,
        )
        claim_leaves(crash.previous(quiet=True))
    except Exception:  # pragma: no cover - the recovery itself logs what is wrong
        log.debug("cannot look for the previous daemon's cgroups", exc_info=True)


async def take_sockets(crash: CrashState, sockets: Any) -> int:
    """Before binding: take the ``[socket:]`` sockets the previous daemon's workers still hold.

    While they run, their inherited listening socket keeps its address bound, so binding it
    again fails (``address already in use``) and the daemon could not start at all. The
    socket itself is taken from one of them (checked: the recorded process, the recorded
    socket, the configured address) and used as if bound here: adopted workers keep
    serving on it, new ones inherit it. Where it cannot be taken (no right to, see
    ``take_socket``), the old processes holding it are stopped, with their trees, so that
    the address can be bound. Returns how many were taken.
    """
    state = crash.previous(quiet=True)
    if state is None or not state.sockets or not _predecessor_gone(state, crash, quiet=True):
        return 0
    from circus.process import take_socket

    taken = 0
    for name, (fd, inode) in state.sockets.items():
        if name not in sockets:
            continue
        new = None
        for rec in state.processes:  # the number it was handed under, first
            new = take_socket(rec.pid, rec.start_time, fd, inode)
            if new is not None:
                break
        holders = [] if new is not None else _holders(state, inode)
        for rec, number in holders:  # it moved to another descriptor (dup2)
            new = take_socket(rec.pid, rec.start_time, number, inode)
            if new is not None:
                break
        if new is not None:
            taken += _use_socket(sockets, name, new)
        elif holders:
            log.warning(
                "socket %s: the previous circusd's workers hold it and it cannot be taken "
                "from them: stopping %d of them so that it can be bound",
                name,
                len({rec.pid for rec, _ in holders}),
            )
            await _stop_trees((p, None) for p in _attach_all(rec for rec, _ in holders))
    if taken:
        log.info("took %d listening socket(s) over from the previous circusd's workers", taken)
    return taken


def _holders(state: PreviousState, inode: int) -> list[tuple[PreviousProcess, int]]:
    """``(process, fd)`` of the recorded live processes holding the socket ``inode``."""
    from circus.process import process_is

    found = []
    for rec in state.processes:
        if not process_is(rec.pid, rec.start_time):
            continue
        try:
            numbers = os.listdir(f"/proc/{rec.pid}/fd")
        except OSError:
            continue
        for number in numbers:
            try:
                st = os.stat(f"/proc/{rec.pid}/fd/{number}")
            except OSError:
                continue
            if stat.S_ISSOCK(st.st_mode) and st.st_ino == inode:
                found.append((rec, int(number)))
                break
    return found


def _attach_all(recs: Iterable[PreviousProcess]) -> list[Any]:
    seen: set[int] = set()
    out = []
    for rec in recs:
        if rec.pid not in seen:
            seen.add(rec.pid)
            proc = _attach(rec)
            if proc is not None:
                out.append(proc)
    return out


def _use_socket(sockets: Any, name: str, fd: int) -> int:
    from circus.sockets import CircusSocket, SocketError

    try:
        sock = CircusSocket.from_fd(fd, name)
    except SocketError:
        os.close(fd)
        return 0
    if not _same_address(sockets.get(name), sock):
        sock.close()  # the config moved it: the old workers keep the old one alone
        return 0
    sock.set_inheritable(False)
    if sock.path:
        try:
            st = os.stat(sock.path)
        except OSError:
            pass
        else:  # the file is ours now, as it was our predecessor's: removed at exit
            sock.adopted = False
            sock._file_id = (st.st_dev, st.st_ino)
    sockets.put(sock)
    return 1


def _same_address(wanted: Any, sock: Any) -> bool:
    path = getattr(wanted, "path", None)
    if path or sock.path:
        return bool(path) and os.path.abspath(str(path)) == os.path.abspath(str(sock.path))
    port = getattr(wanted, "port", 0) or 0
    return bool(getattr(wanted, "family", sock.family) == sock.family) and port in (0, sock.port)


def _attach(rec: PreviousProcess) -> Any:
    from circus.process import Process, ProcessError, ProcessGoneError

    try:
        proc = Process.attach(
            rec.pid,
            rec.start_time,
            name=rec.watcher,
            wid=rec.wid,
            started=rec.started,
            cgroup=rec.cgroup,
        )
    except ProcessGoneError:
        return None
    except ProcessError as exc:
        log.error(
            "pid %d of watcher %s survived the crash but cannot be supervised: %s",
            rec.pid,
            rec.watcher,
            exc,
        )
        return None
    _reopen_output(proc, rec)
    return proc


def _reopen_output(proc: Any, rec: PreviousProcess) -> None:
    """Give the pipes the process still writes to a reader again (see ``reopen_pipe``)."""
    from circus.process import reopen_pipe

    for name, fd, inode in (("stdout", 1, rec.stdout_pipe), ("stderr", 2, rec.stderr_pipe)):
        if inode is not None:
            setattr(proc, name, reopen_pipe(rec.pid, fd, inode))


async def _stop_trees(procs: Iterable[tuple[Any, Any]]) -> int:
    """Stop each ``(process, watcher or None)`` with its whole tree; return how many."""
    stops = []
    for proc, watcher in procs:
        settings = getattr(watcher, "settings", None)
        timeout = float(getattr(settings, "graceful_timeout", _ORPHAN_GRACE))
        signum = int(getattr(settings, "stop_signal", signal.SIGTERM))
        stops.append(_stop_one(proc, timeout, signum))
    results = await asyncio.gather(*stops, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            log.error("stopping a process of the previous daemon: %s", result)
    return len(stops)


async def _stop_one(proc: Any, grace: float, signum: int) -> None:
    try:
        await proc.astop(grace, signum, True)
    finally:
        proc.close()


async def recover(crash: CrashState, watchers: WatcherSet, mode: str) -> dict[str, int]:
    """Adopt or replace what the previous daemon left running (see the module docstring).

    Returns counts: ``adopted``, ``stopped``, ``gone`` (recorded but no longer running, or
    a reused pid).
    """
    counts = {"adopted": 0, "stopped": 0, "gone": 0}
    state = crash.previous()
    if state is None or not state.processes:
        return counts
    if not _predecessor_gone(state, crash):
        return counts
    by_watcher: dict[str, list[tuple[PreviousProcess, Any]]] = {}
    never = {1, os.getpid(), os.getppid()}  # whatever a file says, not these
    for rec in state.processes:
        proc = None if rec.pid in never else _attach(rec)
        if proc is None:
            counts["gone"] += 1
            continue
        by_watcher.setdefault(rec.watcher, []).append((rec, proc))
    to_stop: list[tuple[Any, Any]] = [(proc, None) for proc in _unrecorded(state)]
    if to_stop:
        log.warning(
            "stopping %d process tree(s) the previous circusd started after its last state "
            "write (found in its cgroup leaves)",
            len(to_stop),
        )
    to_adopt: list[tuple[Any, list[Any]]] = []
    for name, pairs in by_watcher.items():
        watcher = _find(watchers, name)
        if watcher is None:
            why = "its watcher is no longer in the config"
        elif mode == "replace":
            why = ""
        elif state.commands.get(name) != watcher_command(watcher):
            why = "its watcher's command changed"
        else:
            why = ""
            keep = [proc for rec, proc in pairs if not rec.ending]
            to_stop.extend((proc, watcher) for rec, proc in pairs if rec.ending)
            if keep:
                to_adopt.append((watcher, keep))
            continue
        if why:
            log.warning(
                "watcher %s: stopping %d process(es) of the previous circusd: %s",
                name,
                len(pairs),
                why,
            )
        to_stop.extend((proc, watcher) for _rec, proc in pairs)
    # The trees to end go first: nothing new starts while one of them still runs.
    counts["stopped"] += await _stop_trees(to_stop)
    for watcher, procs in to_adopt:
        if watchers.stopping or watcher.name not in watchers.table:
            # a quit (or a remove) came while we were stopping trees: nothing is adopted now
            counts["stopped"] += await _stop_trees((p, watcher) for p in procs)
            continue
        try:
            async with watchers.table.locked(watcher):
                kept = await watcher.adopt(procs)
        except Exception as exc:
            log.error("watcher %s: cannot adopt the previous processes: %s", watcher.name, exc)
            counts["stopped"] += await _stop_trees((p, watcher) for p in procs if p.pid)
            continue
        counts["adopted"] += len(kept)
    crash.changed()
    log.warning(
        "after a crash of circusd (pid %d): %d process(es) adopted, %d stopped, %d gone",
        state.daemon_pid,
        counts["adopted"],
        counts["stopped"],
        counts["gone"],
    )
    return counts


def _unrecorded(state: PreviousState) -> list[Any]:
    """The roots of the trees in the previous daemon's cgroup leaves that its file does not
    name (spawned after its last write), attached in their leaves."""
    from circus.process import Process, ProcessError, process_start_time, sibling_leaves

    roots = []
    for path, members in sibling_leaves(r.cgroup for r in state.processes if r.cgroup).items():
        born = {pid: process_start_time(pid) for pid in members}
        known = [(start, pid) for pid, start in born.items() if start is not None]
        if not known:
            continue
        start, pid = min(known)  # the worker itself was born first in its leaf
        try:
            roots.append(Process.attach(pid, start, cgroup=path))
        except ProcessError:
            continue  # gone meanwhile
    return roots


def _find(watchers: WatcherSet, name: str) -> Any:
    from ._errors import NotFoundError

    try:
        return watchers.get(name)
    except NotFoundError:
        return None
