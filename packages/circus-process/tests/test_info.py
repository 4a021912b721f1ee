"""info(): upstream's stats keys and formats, via psutil."""

from __future__ import annotations

import os
import re

import pytest
from circus.process import INFO_KEYS, ProcessError, bytes2human
from circus.process._info import format_cpu_time

UPSTREAM_KEYS = {
    "mem_info1",
    "mem_info2",
    "cpu",
    "mem",
    "ctime",
    "pid",
    "username",
    "nice",
    "create_time",
    "age",
    "started",
    "cmdline",
    "children",
    "wid",
}
HUMAN = re.compile(r"^\d+B$|^\d+\.\d\d[KMGTPEZY]$")


def test_info_has_upstreams_keys_and_formats(pysnippet) -> None:
    code = (
        "import os, time\n"
        "kid = os.fork()\n"
        "if kid == 0:\n"
        "    time.sleep(60); os._exit(0)\n"
        "print(kid, flush=True)\n"
        "time.sleep(60)"
    )
    proc = pysnippet(code, wid=3)
    kid = int(os.read(proc.stdout, 100))
    info = proc.info()
    assert set(info) == UPSTREAM_KEYS == set(INFO_KEYS)
    assert info["pid"] == proc.pid and info["wid"] == 3
    assert info["cmdline"] == os.path.basename(proc.argv[0])
    assert HUMAN.match(info["mem_info1"]) and HUMAN.match(info["mem_info2"])
    assert isinstance(info["cpu"], float) and isinstance(info["mem"], float)
    assert re.match(r"^\d+:\d\d\.\d+$", info["ctime"])
    assert info["started"] == proc.started and 0 <= info["age"] < 60
    assert isinstance(info["create_time"], float) and isinstance(info["nice"], int)
    assert info["username"]
    [child] = info["children"]
    assert child["pid"] == kid
    assert set(child) == UPSTREAM_KEYS - {"age", "started", "wid", "children"}
    assert proc.children() == [kid]


def test_info_of_a_gone_process_raises_upstreams_message(spawn) -> None:
    proc = spawn("true")
    proc.wait(10)
    with pytest.raises(ProcessError, match=r"No such process \(stopped\?\)"):
        proc.info()
    assert proc.children() == []


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0B"), (1023, "1023B"), (1024, "1.00K"), (1457664, "1.39M"), (3 * 1024**3, "3.00G")],
)
def test_bytes2human(n: int, text: str) -> None:
    assert bytes2human(n) == text


def test_cpu_time_format() -> None:
    assert format_cpu_time(0.0) == "0:00.0"
    assert format_cpu_time(61.25) == "1:01.25"
