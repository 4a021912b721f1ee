"""Processes that end while circusd re-executes itself: reaped (no zombie), their last
output kept, and replaced by whichever image sees them go."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from circus.process.testing import wait_until

DIER = """\
import os, sys, time
flag = sys.argv[1]
while not os.path.exists(flag):
    time.sleep(0.002)
os.write(1, b"last words of %d\\n" % os.getpid())
"""


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "during"])
def test_deaths_during_the_switch_are_reaped_and_replaced(circusd, tmp_path, when) -> None:
    script = tmp_path / "dier.py"
    script.write_text(DIER)
    flag = tmp_path / "go"
    daemon = circusd(f"""
[watcher:dier]
cmd = {sys.executable} {script} {flag}
numprocesses = 3
stdout_stream.class = FileStream
stdout_stream.filename = {tmp_path}/dier.log
graceful_timeout = 5
""")
    wait_until(lambda: len(daemon.pids("dier")) == 3, 30, "3 processes")
    first = daemon.pids("dier")
    if when == "before":
        flag.touch()  # they end as the switch is prepared
    answer = daemon.call("daemon-reexec", timeout=60)
    assert answer["status"] == "ok", answer
    if when == "during":
        flag.touch()  # they end while the old image closes or the new one starts
    wait_until(lambda: "generation 1 serving" in daemon.output(), 60, "the new image serving")
    flag.unlink()
    wait_until(lambda: len(set(daemon.pids("dier")) - set(first)) == 3, 30, "3 replacements")
    assert [pid for pid in first if _zombie(pid)] == []
    log = Path(tmp_path / "dier.log").read_text()
    for pid in first:
        assert log.count(f"last words of {pid}\n") == 1, log
