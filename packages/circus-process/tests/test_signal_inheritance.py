"""Children start with default signal dispositions and an empty mask, whatever ours are.

A test run (or a manager) started from a background shell job has SIGINT and SIGQUIT
ignored; exec keeps ignored and blocked signals, so without a reset every child would
ignore ``stop_signal = INT`` too.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from circus.process import Process
from circus.process._sigreset import inherited_signal_state

STATUS = "/proc/self/status"
SETTABLE = {int(s) for s in signal.valid_signals()}


def signal_masks(proc: Process, read_to_eof: Callable[[int], bytes]) -> dict[str, set[int]]:
    """The child's own SigIgn/SigBlk (it runs ``cat /proc/self/status``) as signal sets."""
    assert proc.stdout is not None
    text = read_to_eof(proc.stdout).decode()
    assert proc.wait(30) == 0
    out: dict[str, set[int]] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("SigIgn", "SigBlk"):
            mask = int(value, 16)
            # Only the signals a program may set: the C library's reserved real-time ones
            # (glibc's 32 and 33) may come ignored from a launcher (`uv run`) and stay so.
            out[key] = {n for n in range(1, 65) if mask >> (n - 1) & 1} & SETTABLE
    return out


@pytest.fixture
def ignoring() -> Iterator[Callable[..., None]]:
    """``ignoring(*signals)``: set them to SIG_IGN in this process until the test ends."""
    saved: dict[int, Any] = {}

    def ignore(*signums: int) -> None:
        for signum in signums:
            saved.setdefault(signum, signal.getsignal(signum))
            signal.signal(signum, signal.SIG_IGN)

    yield ignore
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_ignored_signals_are_not_inherited(
    spawn: Callable[..., Process], ignoring: Callable[..., None], read_to_eof: Any
) -> None:
    # (Not SIGCHLD: ignoring it here would have the kernel reap our own children.)
    ignoring(signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR2)
    assert {signal.SIGINT, signal.SIGUSR2} <= set(inherited_signal_state()[0])
    masks = signal_masks(spawn("cat", args=[STATUS]), read_to_eof)
    assert masks["SigIgn"] == set(), masks
    assert masks["SigBlk"] == set(), masks


def test_stop_signal_int_works_when_we_ignore_it(
    pysnippet: Callable[..., Process], ignoring: Callable[..., None]
) -> None:
    ignoring(signal.SIGINT)
    proc = pysnippet("import time\nprint('ready', flush=True)\ntime.sleep(60)")
    assert proc.stdout is not None
    assert _read_line(proc.stdout) == b"ready\n"
    assert proc.stop(graceful_timeout=20, stop_signal=signal.SIGINT) == -signal.SIGINT


def _read_line(fd: int) -> bytes:
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        buf += chunk
    return buf


def test_blocked_signals_are_not_inherited(spawn: Callable[..., Process], read_to_eof: Any) -> None:
    # Spawned from a thread that blocks signals (as a library caller's worker thread may).
    result: dict[str, Any] = {}

    def worker() -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1, signal.SIGTERM})
        try:
            result["state"] = inherited_signal_state()
            result["proc"] = spawn("cat", args=[STATUS])
        except BaseException as exc:  # reported by the test thread
            result["error"] = exc

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(30)
    assert "error" not in result, result["error"]
    assert set(result["state"][1]) >= {signal.SIGUSR1, signal.SIGTERM}
    masks = signal_masks(result["proc"], read_to_eof)
    assert masks["SigBlk"] == set(), masks


def test_reset_also_applies_with_rlimits(
    spawn: Callable[..., Process], ignoring: Callable[..., None], read_to_eof: Any
) -> None:
    ignoring(signal.SIGINT)
    proc = spawn("cat", args=[STATUS], rlimits={"nofile": 512})
    masks = signal_masks(proc, read_to_eof)
    assert masks["SigIgn"] == set(), masks


def test_signals_reserved_by_the_c_library_are_left_alone() -> None:
    # `uv run` hands on glibc's 32 and 33 as ignored; signal.signal() refuses them (EINVAL),
    # so resetting them in the child would fail every spawn.
    from circus.process._sigreset import _mask_signals

    mask = (1 << 31) | (1 << 32) | (1 << (signal.SIGINT - 1))
    assert _mask_signals(mask) == (signal.SIGINT,)
