"""Children start with every signal at its default disposition and none blocked.

exec() resets caught signals to their default, but an *ignored* signal stays ignored and a
*blocked* one stays blocked in the new program. A manager started from a background shell
job (SIGINT and SIGQUIT ignored), under ``nohup``, or by code that ignores SIGCHLD or blocks
signals in its thread would hand that on: ``stop_signal = INT`` would then never stop a
child, and a child ignoring SIGCHLD loses its own children's exit statuses. Popen's
``restore_signals`` covers SIGPIPE and SIGXFSZ only, so the rest is undone here, in a
preexec_fn that is asked for only when there is something to undo (it costs the vfork fast
path).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

__all__ = ["inherited_signal_state", "reset_signals", "thread_status"]

# Nothing to undo for these: Popen restores SIGPIPE/SIGXFSZ itself, SIGKILL/SIGSTOP cannot
# be ignored or blocked, and ignoring SIGWINCH/SIGURG is what their default action does.
_HARMLESS = frozenset(
    int(s)
    for s in (
        signal.SIGPIPE,
        getattr(signal, "SIGXFSZ", signal.SIGPIPE),
        signal.SIGKILL,
        signal.SIGSTOP,
        getattr(signal, "SIGWINCH", signal.SIGPIPE),
        getattr(signal, "SIGURG", signal.SIGPIPE),
    )
)


# Only signals Python may set: the C library reserves a few real-time ones for itself (glibc's
# 32 and 33, which ``uv run`` for one leaves marked ignored) and signal.signal() refuses them
# with EINVAL, which would fail every spawn.
_SETTABLE = frozenset(int(s) for s in signal.valid_signals())


def _mask_signals(mask: int) -> tuple[int, ...]:
    return tuple(
        signum
        for signum in range(1, mask.bit_length() + 1)
        if mask >> (signum - 1) & 1 and signum in _SETTABLE and signum not in _HARMLESS
    )


def thread_status() -> bytes | None:
    """The text of ``/proc/thread-self/status`` (None where there is none)."""
    try:
        fd = os.open("/proc/thread-self/status", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 8192)
    finally:
        os.close(fd)


def inherited_signal_state(status: bytes | None = None) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The signals a child spawned now by this thread would inherit as (ignored, blocked).

    Read from ``/proc/thread-self/status`` (one read, and it sees dispositions set from C
    too; ``status``: that text, if the caller just read it); elsewhere from
    :func:`signal.getsignal` and :func:`signal.pthread_sigmask`.
    """
    data = thread_status() if status is None else status
    if data is None:
        return _portable_state()
    try:
        masks = _raw_field(data, b"SigIgn:"), _raw_field(data, b"SigBlk:")
    except ValueError:
        return _portable_state()
    # The masks are the same from one spawn to the next as a rule: decoded once.
    state = _STATES.get(masks)
    if state is None:
        try:
            state = _mask_signals(int(masks[0], 16)), _mask_signals(int(masks[1], 16))
        except ValueError:
            return _portable_state()
        if len(_STATES) >= 64:
            _STATES.clear()
        _STATES[masks] = state
    return state


_STATES: dict[tuple[bytes, bytes], tuple[tuple[int, ...], tuple[int, ...]]] = {}


def _raw_field(data: bytes, name: bytes) -> bytes:
    start = data.index(name) + len(name)
    return data[start : data.index(b"\n", start)]


def _portable_state() -> tuple[tuple[int, ...], tuple[int, ...]]:
    ignored = []
    for signum in signal.valid_signals():
        if signum in _HARMLESS:
            continue
        try:
            if signal.getsignal(signum) is signal.SIG_IGN:
                ignored.append(int(signum))
        except (OSError, ValueError):
            continue
    blocked = tuple(int(s) for s in signal.pthread_sigmask(signal.SIG_BLOCK, ()))
    return tuple(ignored), tuple(s for s in blocked if s not in _HARMLESS)


def reset_signals(ignored: tuple[int, ...], blocked: tuple[int, ...]) -> Callable[[], None]:
    """A preexec_fn putting ``ignored`` back to SIG_DFL and unblocking ``blocked``."""

    def preexec() -> None:
        # Best effort, one signal at a time: an exception here would fail the whole spawn.
        for signum in ignored:
            try:
                signal.signal(signum, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        if blocked:
            try:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
            except (OSError, ValueError):
                pass

    return preexec
