"""Stopping a flooded endpoint from accepting for a while (the connection guard's last resort).

Runs on the thread that owns the endpoint's socket (the arbiter's loop), where the guard
asks for it. libzmq stops accepting only by unbinding, which closes its listening descriptor
and ends every connection the endpoint had. So a duplicate of that descriptor is kept first:
the listening socket stays open, the ipc file and the tcp port stay circusd's own (nobody can
take them over meanwhile), and new connections wait in the kernel's backlog. To accept
again, libzmq is given that same socket back (``ZMQ_USE_FD``), once the descriptors of the
connections the pause ended have been closed (libzmq closes them on its I/O thread).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import TYPE_CHECKING, Any

import zmq

if TYPE_CHECKING:
    from ._connguard import _Endpoint

__all__ = ["forget", "pause"]

log = logging.getLogger("circus.arbiter")

_RESUME_SLACK = 8  # descriptors above the target a resume tolerates
_RESUME_LATE = 5.0  # seconds a resume waits at most for libzmq to close the ended ones
_RESUME_RETRY = 0.05


def pause(watched: _Endpoint, seconds: float, cap: int) -> None:
    """Stop ``watched`` accepting for ``seconds`` (``cap``: for the log line); tells the
    guard thread, waiting on ``watched.paused``, that it is done either way."""
    try:
        _stop_accepting(watched, seconds, cap)
    finally:
        watched.paused.set()


def forget(watched: _Endpoint) -> None:
    """The socket is being closed: no resume, and our duplicate of its listener goes."""
    watched.closed = True
    if watched.resume is not None:
        watched.resume.cancel()
        watched.resume = None
    if watched.held is not None:
        os.close(watched.held)
        watched.held = None


def _stop_accepting(watched: _Endpoint, seconds: float, cap: int) -> None:
    if watched.closed:
        return
    sock = watched.sock
    held = _hold(watched)
    if held is None and isinstance(watched.local, int):
        # a tcp port must stay ours while we do not listen: without a duplicate of the
        # listening socket, keep accepting (and shedding)
        watched.pause_asked = False
        return
    ending = len(watched.conns) + len(watched.closing)
    try:
        sock.unbind(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    except zmq.ZMQError as exc:
        if held is not None:
            os.close(held)
        watched.pause_asked = False
        log.debug("%s endpoint %s: cannot pause: %s", watched.name, watched.endpoint, exc)
        return
    watched.held = held
    watched.listens_at_pause = watched.listens
    watched.fds_target = _open_fds() - ending
    watched.resume_by = time.monotonic() + seconds + _RESUME_LATE
    watched.pauses += 1
    log.warning(
        "%s endpoint %s: flooded with connections; not accepting any for %.2f s "
        "(its %d connections end; cap %d)",
        watched.name,
        watched.endpoint,
        seconds,
        ending,
        cap,
    )
    assert watched.loop is not None
    watched.resume = watched.loop.call_later(seconds, _resume, watched)


def _hold(watched: _Endpoint) -> int | None:
    """A duplicate of libzmq's listening descriptor, if it still is the endpoint's."""
    fd = watched.listener
    if fd is None:
        return None
    try:
        held = os.dup(fd)
    except OSError:
        return None
    try:
        sock = socket.socket(fileno=held)
    except OSError:
        os.close(held)
        return None
    try:
        listening = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        ours = listening and same_local(sock.getsockname(), watched.local)
    except OSError:
        ours = False
    finally:
        sock.detach()
    if not ours:
        os.close(held)
        return None
    return held


def _resume(watched: _Endpoint) -> None:
    watched.resume = None
    assert watched.loop is not None
    if watched.closed or watched.listens != watched.listens_at_pause:
        # closed meanwhile, or its owner bound it again itself (a reload's undo)
        if watched.held is not None:
            os.close(watched.held)
            watched.held = None
        watched.pause_asked = False
        return
    if _open_fds() > watched.fds_target + _RESUME_SLACK and time.monotonic() < watched.resume_by:
        # the connections the pause ended still hold their descriptors: accepting now
        # would stack a new burst on them
        watched.resume = watched.loop.call_later(_RESUME_RETRY, _resume, watched)
        return
    held, watched.held = watched.held, None
    sock = watched.sock
    try:
        if held is not None:
            # the same listening socket (the same file, the same port): what waited in its
            # backlog is accepted now
            sock.setsockopt(zmq.USE_FD, held)
            try:
                sock.bind(watched.endpoint)
            finally:
                sock.setsockopt(zmq.USE_FD, -1)
        else:
            from ._endpoints import bind_again

            bind_again(sock, watched.endpoint, watched.owner)
    except Exception as exc:
        if held is not None:
            os.close(held)
        log.error(
            "%s endpoint %s: cannot accept again: %s; retrying",
            watched.name,
            watched.endpoint,
            exc,
        )
        watched.resume = watched.loop.call_later(1.0, _resume, watched)
        return
    watched.pause_asked = False
    log.info("%s endpoint %s: accepting connections again", watched.name, watched.endpoint)


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1
    except OSError:  # EMFILE right now: as full as it gets
        return 1 << 30


def same_local(name: Any, local: Any) -> bool:
    """Whether ``getsockname()`` answered ``name`` for a socket of the endpoint whose
    address is ``local`` (an ipc path, or a tcp port)."""
    if isinstance(local, int):
        return isinstance(name, tuple) and len(name) >= 2 and name[1] == local
    if isinstance(name, bytes):
        name = name.decode(errors="replace")
    return bool(name == local)
