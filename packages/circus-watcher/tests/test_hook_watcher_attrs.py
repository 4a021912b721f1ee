"""The watcher a hook receives has Circus 0.19's attributes, and ``watcher.env`` set in
``before_spawn`` reaches the process spawned next (upstream's example10 hook)."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.process.testing import async_wait_until
from circus.watcher import UPSTREAM_OPTION_KEYS, OptionError
from circus.watcher._upstream_attrs import UPSTREAM_ATTRIBUTES


def set_var(watcher: Any, arbiter: Any, hook_name: str) -> bool:
    """Upstream example10's hook, in its shape: a fresh value for each spawn."""
    watcher.env["myvar"] = str(random.randint(10, 100))
    return True


def test_example10_hook_sets_env_for_the_spawn(
    make: Any, recorder: Any, run_async: Any, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    # upstream's example10 command, writing to a file: the value the process was given
    cmd = f'{sys.executable} -c \'import sys; open(sys.argv[1], "a").write(sys.argv[2] + "\\n")\''
    seen: list[str] = []

    def hook(watcher: Any, arbiter: Any, hook_name: str) -> bool:
        assert set_var(watcher, arbiter, hook_name)
        seen.append(watcher.env["myvar"])
        return True

    async def main() -> None:
        w = make(
            cmd, args=f"{out} $(circus.env.myvar)", respawn=False, hooks={"before_spawn": hook}
        )
        await w.start()
        await async_wait_until(lambda: out.exists() and out.read_text(), 20, "the first line")
        assert recorder.count("hook_failure") == 0
        assert out.read_text().split() == seen[:1]
        assert w.options()["env"] == {"myvar": seen[0]}  # the option itself changed
        await w.stop()
        await w.start()  # a second spawn: the hook's new value, not the first one
        await async_wait_until(lambda: len(out.read_text().split()) == 2, 20, "a second line")
        assert out.read_text().split() == seen[:2]

    run_async(main)


def test_env_write_reaches_the_child_environment(make: Any, run_async: Any, tmp_path: Path) -> None:
    out = tmp_path / "env"
    code = "import os, sys; open(sys.argv[1], 'w').write(os.environ.get('FROM_HOOK', '-'))"

    def hook(watcher: Any, arbiter: Any, hook_name: str) -> bool:
        watcher.env["FROM_HOOK"] = "yes"
        del watcher.env["DROPPED"]
        return True

    async def main() -> None:
        w = make(
            f'{sys.executable} -c "{code}" {out}',
            env={"DROPPED": "x"},
            respawn=False,
            hooks={"before_spawn": hook},
        )
        await w.start()
        await async_wait_until(lambda: out.exists() and out.read_text(), 20, "the child's env")
        assert out.read_text() == "yes"
        assert dict(w.settings.env) == {"FROM_HOOK": "yes"}

    run_async(main)


def test_every_upstream_attribute_is_readable_from_a_hook(make: Any, run_async: Any) -> None:
    read: dict[str, Any] = {}

    def hook(watcher: Any, arbiter: Any, hook_name: str, pid: int) -> bool:
        for name in UPSTREAM_ATTRIBUTES:
            read[name] = getattr(watcher, name)
        proc = watcher.processes[pid]
        read["process"] = (proc.pid, proc.wid, proc.started)
        return True

    async def main() -> None:
        w = make(
            "sleep 300",
            numprocesses=2,
            custom_options={"stats_base_port": "8090"},
            hooks={"after_spawn": hook},
        )
        await w.start()
        assert set(read) == {*UPSTREAM_ATTRIBUTES, "process"}
        for key in UPSTREAM_OPTION_KEYS:  # the same values and types as the options answer
            value = read[key]
            assert value == w.options()[key] or key == "env", key
        assert read["args"] == "" and read["respawn"] is True and read["cmd"] == "sleep 300"
        assert read["_options"]["stats_base_port"] == "8090"
        assert read["res_name"] == "w" and read["is_active"]() in (True, False)
        pid, wid, started = read["process"]
        assert pid in w.pids and wid in (1, 2) and started > 0
        assert w.get_active_pids() == w.pids
        with pytest.raises(AttributeError):
            w.cmd = "other"  # options change through set_opt, which knows the cost

    run_async(main)


def test_send_signal_reaches_one_process(make: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300", numprocesses=2, respawn=False)
        await w.start()
        first, second = w.pids
        w.send_signal(first, "KILL")
        await async_wait_until(lambda: w.pids == [second], 20, "the signalled process to go")
        with pytest.raises(OptionError):
            w.send_signal(second, "NOPE")

    run_async(main)


@pytest.mark.parametrize(("key", "value"), [("A=B", "1"), ("A", "x\0y"), ("", "v"), ("A", 1)])
def test_env_writes_are_checked_as_the_option_is(key: Any, value: Any) -> None:
    from circus.watcher import Watcher

    w = Watcher("w", "sleep 1", env={"KEEP": "1"})
    with pytest.raises(OptionError, match="'env'"):
        w.env[key] = value
    assert dict(w.settings.env) == {"KEEP": "1"}  # nothing changed
    with pytest.raises(OptionError, match="'env'"):
        Watcher("w", "sleep 1", env={"A": "x\0y"})  # execve could never pass it
