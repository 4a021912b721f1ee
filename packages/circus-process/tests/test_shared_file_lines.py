"""A FileStream shared by several processes gets whole lines: one process's half-written
line is never cut by another's (it used to be, by splice and by the read path alike)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from circus.process import OutputRedirector
from circus.process.streams import FileStream
from circus.process.testing import async_wait_until

# Writes half a line, waits for one byte on stdin, then finishes the line.
HALF_THEN_REST = (
    "import os, sys\n"
    "os.write(1, b'A first half ')\n"
    "sys.stdin.buffer.read(1)\n"
    "os.write(1, b'second half\\n')\n"
)
# Waits for one byte on stdin, then writes a whole line and an unterminated one.
WHOLE_LINE = "import os, sys\nsys.stdin.buffer.read(1)\nos.write(1, b'B whole line\\nB tail')\n"


def test_a_half_written_line_is_not_cut_by_another_process(spawn, py, tmp_path: Path) -> None:
    target = tmp_path / "shared.log"
    a_in, a_go = os.pipe()
    b_in, b_go = os.pipe()
    try:
        a = spawn(py, args=["-c", HALF_THEN_REST], pipe_stderr=False, stdin_fd=a_in)
        b = spawn(py, args=["-c", WHOLE_LINE], pipe_stderr=False, stdin_fd=b_in)
    finally:
        os.close(a_in)
        os.close(b_in)

    async def main() -> tuple[bool, bool]:
        stream = FileStream(str(target))
        redirector = OutputRedirector()
        got: dict[int, bytes] = {}
        redirector.add_observer(lambda pid, name, data: got.update({pid: got.get(pid, b"") + data}))
        redirector.add(a, stream)
        redirector.add(b, stream)
        shared = stream.can_splice
        await async_wait_until(lambda: got.get(a.pid) == b"A first half ", 10, "A's half read")
        os.write(b_go, b"x")
        await async_wait_until(
            lambda: got.get(b.pid) == b"B whole line\nB tail", 10, "B's line read"
        )
        assert await asyncio.wait_for(b.wait_async(), 10) == 0
        # B's EOF is read: its unterminated last line was held until then, and is written now
        await async_wait_until(lambda: b not in redirector.processes, 10, "B's EOF read")
        os.write(a_go, b"x")
        assert await asyncio.wait_for(a.wait_async(), 10) == 0
        for proc in (a, b):
            redirector.remove(proc)
        alone = stream.can_splice
        stream.close()
        return shared, alone

    try:
        shared, alone = asyncio.run(main())
    finally:
        os.close(a_go)
        os.close(b_go)
    assert target.read_bytes() == b"B whole line\nB tailA first half second half\n"
    assert not shared  # splice would move the half line as it is
    assert alone  # both gone: the next lone process splices again
