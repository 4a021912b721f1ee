"""Reaping exited adopted orphans without listing a single process.

A subreaper looks for exited orphans after every SIGCHLD and every reap. Listing its children
to find them (:func:`reap_orphans`) reads every ``/proc/<pid>/stat`` of the host where the
kernel does not keep children lists: with thousands of unrelated processes, each look took
the daemon's loop for tens of milliseconds, hundreds of times during a mass stop. Most looks
find nothing, and ``waitid(P_ALL, WNOWAIT)`` says so in one system call: it names one exited
child without reaping it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Literal, NamedTuple

from ._reaping import registry

__all__ = ["WaitingOrphans", "reap_waiting_orphans"]


class WaitingOrphans(NamedTuple):
    """What :func:`reap_waiting_orphans` did."""

    reaped: dict[int, int]  # pid -> returncode
    #: None: no exited child is left. ``"process"``: the next one is a live
    #: :class:`~circus.process.Process`, which its own exit watcher reaps (its owner may
    #: look again then). ``"other"``: one that is not ours to reap (our own session, or
    #: excluded) hides the rest: only :func:`reap_orphans` can tell what is behind it.
    blocked_by: Literal["process", "other"] | None


def reap_waiting_orphans(exclude: Iterable[int] = ()) -> WaitingOrphans:
    """Reap the exited adopted orphans the kernel names first; stop at a child not ours.

    An orphan is what :func:`adopted_orphans` lists: a child that no :class:`Process` owns
    and that is not from our session (a plain ``subprocess`` child of this process is left
    to its waiter). Costs one ``waitid`` per orphan reaped, plus one.
    """
    skip = set(exclude)
    ours = os.getsid(0)
    reaped: dict[int, int] = {}
    while True:
        try:
            found = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            found = None  # no child at all
        if found is None:
            return WaitingOrphans(reaped, None)
        pid = found.si_pid
        if pid in registry:
            return WaitingOrphans(reaped, "process")
        if pid in skip:
            return WaitingOrphans(reaped, "other")
        skip.add(pid)  # named twice (someone else reaps it meanwhile): not ours, stop there
        try:
            if os.getsid(pid) == ours:
                return WaitingOrphans(reaped, "other")
            wpid, status = os.waitpid(pid, os.WNOHANG)
        except (ProcessLookupError, ChildProcessError):
            continue  # reaped by someone else meanwhile: look again
        if wpid:
            reaped[pid] = os.waitstatus_to_exitcode(status)
