"""Everything a process wrote is read before its ``reap`` is reported.

circusd flushes a dead process's held partial line at its ``reap`` (the ``output.*`` topics,
``circusctl logs -f``). When the exit was handled before the pipes were drained (exits are
served first in a dispatch), the rest of the pipe came after the reap and a line that was
half read came apart in two messages, while the file got it whole.
"""

from __future__ import annotations

import fcntl
import struct
import sys
import termios
from pathlib import Path
from typing import Any

CHILD = r"""
import os
line = b"x" * 99 + b"\n"
block = line * 655
for _ in range(5):
    view = memoryview(block)
    while view:
        view = view[os.write(1, view):]
"""


def _unread(fd: int) -> int:
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def test_a_process_pipes_are_drained_before_its_reap(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)

    async def main() -> None:
        w = make(f"{sys.executable} {script}", respawn=False, numprocesses=4)
        procs: dict[int, Any] = {}
        unread: list[int] = []
        got = [0]

        def observe(pid: int, stream: str, data: bytes) -> None:
            got[0] += len(data)

        def on_event(event: str, payload: dict[str, Any]) -> None:
            if event == "spawn":
                pid = payload["process_pid"]
                procs[pid] = w.processes[pid]
            elif event == "reap":
                proc = procs.get(payload["process_pid"])
                if proc is not None and proc.stdout is not None:
                    unread.append(_unread(proc.stdout))

        w.add_output_observer(observe)
        w.add_listener(on_event)
        await w.start()
        await recorder.until(lambda: recorder.count("reap") == 4)
        assert unread == [0, 0, 0, 0], unread
        assert got[0] == 4 * 5 * 655 * 100

    run_async(main)
