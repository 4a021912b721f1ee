"""Ceilings on counts and durations (README "Ceilings"): control commands against a real
arbiter, INI files, ``Arbiter(...)`` arguments. A refused value changes nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter import Arbiter
from circus.arbiter.config import ConfigError, load_config

PY = sys.executable
SLEEP = f"{PY} -c 'import time; time.sleep(300)'"
YEAR = "31536000"


class SpawnGuard:
    """A process factory that spawns real processes but refuses past ``most``: code without
    ceilings fails the test instead of forking thousands of children on a shared machine."""

    def __init__(self, most: int) -> None:
        self.most = most
        self.spawned = 0

    def __call__(self, watcher: Any, wid: int) -> Any:
        from circus.watcher._procs import make_process

        self.spawned += 1
        if self.spawned > self.most:
            raise RuntimeError(f"spawn guard: more than {self.most} processes")
        watcher._factory = None
        try:
            return make_process(watcher, wid)
        finally:
            watcher._factory = self


def guarded(name: str, n: int, guard: SpawnGuard, **options: Any) -> Any:
    from circus.watcher import Watcher

    return Watcher(name, SLEEP, numprocesses=n, graceful_timeout=5, max_retry=1,
                   process_factory=guard, **options)  # fmt: skip


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _refused(answer: dict[str, Any], *words: str) -> str:
    assert answer.get("status") == "error" and answer.get("errno") == 3, answer
    reason = str(answer["reason"])
    for word in words:
        assert word in reason, reason
    assert len(reason) < 400, reason[:500]
    return reason


def test_incr_decr_and_set_numprocesses_beyond_the_ceiling(run_arbiter) -> None:
    guard = SpawnGuard(most=8)

    async def body(arbiter: Arbiter, c: Any) -> None:
        w = arbiter.get_watcher("web")
        pids = sorted(w.pids)
        assert len(pids) == 2
        for command, nb in [("incr", 2**70), ("decr", 2**70), ("incr", 100_001)]:
            answer = await c.call(command, name="web", nb=nb, waiting=True)
            _refused(answer, "'nb'", "ceiling of 100000")
        # nb within its ceiling, but past the watcher's own
        _refused(await c.call("incr", name="web", nb=100_000, waiting=True), "100000")
        for value in (10**30, 100_001, 2**70):
            answer = await c.call("set", name="web", options={"numprocesses": value}, waiting=True)
            _refused(answer, "'numprocesses'", "ceiling of 100000")
        answer = await c.call("numprocesses", name="web")
        assert answer["numprocesses"] == 2
        assert w.numprocesses == 2 and sorted(w.pids) == pids
        assert all(_alive(pid) for pid in pids) and guard.spawned == 2

    run_arbiter([guarded("web", 2, guard)], body)


def test_set_beyond_a_ceiling_changes_no_option(run_arbiter) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        before = (await c.call("options", name="web"))["options"]
        attacks: list[tuple[dict[str, Any], str]] = [
            ({"max_retry": 2**70}, "1000000"),
            ({"graceful_timeout": 1e308}, YEAR),
            ({"warmup_delay": 10**20}, YEAR),
            ({"retry_in": 1e300}, YEAR),
            ({"max_age": 2**70}, YEAR),
            ({"max_age_variance": 2**70}, YEAR),
            ({"flapping.max_retry": 2**70}, "1000000"),
            ({"flapping.attempts": "1e30"}, "1000000"),
            ({"flapping.window": 1e308}, YEAR),
            ({"backoff_max": 1e308}, YEAR),
            ({"hook_timeout": 1e308}, YEAR),
            ({"rlimit_nofile": 2**64}, "9223372036854775807"),
            # the first key is valid: nothing at all is applied when a later one is not
            ({"graceful_timeout": 7, "max_retry": 2**70}, "1000000"),
            ({"numprocesses": 3, "graceful_timeout": 1e308}, YEAR),
        ]
        for options, ceiling in attacks:
            answer = await c.call("set", name="web", options=options, waiting=True)
            _refused(answer, "ceiling", ceiling)
        for value in (-1, -0.5):
            answer = await c.call("set", name="web", options={"graceful_timeout": value})
            _refused(answer, "'graceful_timeout'")
        after = (await c.call("options", name="web"))["options"]
        assert after == before
        assert len(arbiter.get_watcher("web").pids) == 1

    run_arbiter([guarded("web", 1, SpawnGuard(most=4))], body)


def test_kill_logs_and_add_beyond_their_ceilings(run_arbiter) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        (pid,) = arbiter.get_watcher("web").pids
        # circusctl sends graceful_timeout as a string
        for timeout in ("1e308", "inf", "nan", "-1", 1e308):
            answer = await c.call("kill", name="web", pid=str(pid), graceful_timeout=timeout,
                                  waiting=True)  # fmt: skip
            _refused(answer, "'graceful_timeout'")
        assert arbiter.get_watcher("web").pids == [pid] and _alive(pid)
        _refused(await c.call("logs", name="web", lines=10**30), "'lines'", "ceiling of 1000000")
        for options, words in [
            ({"numprocesses": 10**30}, ("'numprocesses'", "100000")),
            ({"max_retry": 2**70}, ("'max_retry'", "1000000")),
            ({"graceful_timeout": 1e308}, ("'graceful_timeout'", YEAR)),
            ({"rlimit_core": 2**64}, ("'rlimit_core'", "ceiling")),
        ]:
            answer = await c.call("add", name="big", cmd=SLEEP, options=options, start=True,
                                  waiting=True)  # fmt: skip
            _refused(answer, *words)
        assert (await c.call("list"))["watchers"] == ["web"]

    run_arbiter([guarded("web", 1, SpawnGuard(most=3))], body)


def test_total_processes_of_the_daemon_have_a_ceiling(run_arbiter) -> None:
    # Stopped watchers (autostart off): their numprocesses count, and nothing is spawned.
    async def body(arbiter: Arbiter, c: Any) -> None:
        ok = await c.call("add", name="big", cmd=SLEEP, options={"numprocesses": 60_000})
        assert ok["status"] == "ok"
        answer = await c.call("add", name="more", cmd=SLEEP, options={"numprocesses": 50_000})
        _refused(answer, "100000", "in total")
        assert (await c.call("list"))["watchers"] == ["big", "web"]
        _refused(await c.call("incr", name="big", nb=50_000, waiting=True), "in total")
        answer = await c.call("set", name="big", options={"numprocesses": 99_999}, waiting=True)
        _refused(answer, "in total")  # 99,999 + web's 2
        assert arbiter.get_watcher("big").numprocesses == 60_000
        # exactly at the ceiling is fine
        answer = await c.call("set", name="big", options={"numprocesses": 99_998}, waiting=True)
        assert answer["status"] == "ok", answer
        assert arbiter.get_watcher("big").pids == []
        answer = await c.call("incr", name="web", waiting=True)
        _refused(answer, "in total")
        assert len(arbiter.get_watcher("web").pids) == 2

    run_arbiter([guarded("web", 2, SpawnGuard(most=4))], body)


def test_echoed_values_and_keys_are_cut_short(run_arbiter) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        huge_key = "k" * 200_000
        _refused(await c.call("set", name="web", options={huge_key: 1}), "unknown key")
        _refused(await c.call("set", name="web", options={"graceful_timeout": 10**4000}))
        _refused(await c.call("incr", name="web", nb="9" * 100_000))
        _refused(await c.call("signal", name="web", signum="X" * 100_000))
        _refused(await c.call("signal", name="web", signum="9" * 5000))
        for command in ("kill", "signal", "stats"):
            key = "process" if command == "stats" else "pid"
            answer = await c.call(command, name="web", signum="HUP", **{key: 10**4000})
            _refused(answer, f"'{key}'", "4194304")

    run_arbiter([guarded("web", 1, SpawnGuard(most=3))], body)


@pytest.mark.parametrize(
    "options",
    [
        {"stats_interval": 0},
        {"stats_interval": float("nan")},
        {"check_delay": float("inf")},
        {"warmup_delay": 1e308},
        {"warmup_delay": -1},
        {"output_lines": 10**30},
    ],
)
def test_arbiter_arguments_beyond_their_ceilings(options: dict[str, Any]) -> None:
    (name,) = options
    with pytest.raises(ValueError, match=f"'{name}'"):
        Arbiter([], **options)


# ---------------------------------------------------------------- INI files


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "circus.ini"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("line", "ceiling"),
    [
        ("numprocesses = 1000000000000000000000000000000", "100000"),
        ("numprocesses = 100001", "100000"),
        ("max_retry = 1180591620717411303424", "1000000"),
        ("graceful_timeout = 1e308", YEAR),
        ("warmup_delay = 99999999999", YEAR),
        ("max_age = 99999999999", YEAR),
        ("max_age_variance = 99999999999", YEAR),
        ("priority = 99999999999", "2147483647"),
        ("flapping.max_retry = 1180591620717411303424", "1000000"),
        ("flapping.attempts = 1e30", "1000000"),
        ("flapping.window = 1e308", YEAR),
        ("flapping.retry_in = 1e308", YEAR),
        ("retry_in = 1e308", YEAR),
        ("backoff_max = 1e308", YEAR),
        ("backoff_factor = 1e308", "1000"),
        ("hook_timeout = 1e308", YEAR),
        ("rlimit_nofile = 18446744073709551616", "9223372036854775807"),
        ("uid = 99999999999", "4294967294"),
        ("stdout_stream.class = FileStream\nstdout_stream.filename = o.log\n"
         "stdout_stream.backup_count = 1000000000000000000000000000000", "10000"),
    ],
)  # fmt: skip
def test_watcher_options_beyond_their_ceilings_are_config_errors(
    tmp_path: Path, line: str, ceiling: str
) -> None:
    path = _write(tmp_path, f"[watcher:web]\ncmd = run\n{line}\n")
    option = line.splitlines()[-1].partition(" = ")[0]
    lineno = 2 + len(line.splitlines())
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert message.startswith(f"{path}:{lineno}: [watcher:web] {option} = "), message
    assert ceiling in message and "ceiling" in message, message
    assert info.value.option == option and info.value.lineno == lineno


@pytest.mark.parametrize(
    ("section", "line", "words"),
    [
        ("circus", "check_delay = 1e308", YEAR),
        ("circus", "warmup_delay = 1e308", YEAR),
        ("circus", "warmup_delay = -1", YEAR),
        ("socket:web", "backlog = 1099511627776", "1000000"),
        ("socket:web", "proto = 99999999999", "65535"),
        ("plugin:p", "priority = 1180591620717411303424", "2147483647"),
    ],
)
def test_daemon_socket_and_plugin_numbers_beyond_their_ceilings(
    tmp_path: Path, section: str, line: str, words: str
) -> None:
    extra = "use = a.b.C\n" if section.startswith("plugin") else ""
    path = _write(tmp_path, f"[{section}]\n{extra}{line}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    message = str(info.value)
    assert f"{path}:{2 + bool(extra)}: [{section}] {line.partition(' = ')[0]}" in message
    assert words in message, message


def test_total_processes_of_a_config_have_a_ceiling(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        [watcher:a]
        cmd = run
        numprocesses = 60000

        [watcher:b]
        cmd = run
        numprocesses = 40001
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert str(info.value).startswith(f"{path}:7: [watcher:b] numprocesses = '40001'")
    assert "100000" in str(info.value)


def test_echoed_config_values_are_cut_short(tmp_path: Path) -> None:
    path = _write(tmp_path, f"[watcher:web]\ncmd = run\nnumprocesses = {'9' * 100_000}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert len(str(info.value)) < 500
    assert info.value.value == "9" * 100_000  # the attribute keeps it whole


def test_values_a_circus_user_writes_still_load(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        [circus]
        check_delay = 5
        warmup_delay = 0

        [watcher:web]
        cmd = run
        numprocesses = 1000
        graceful_timeout = 3600
        max_age = 86400
        max_age_variance = 3600
        max_retry = -1
        priority = 100
        rlimit_nofile = 1048576
        rlimit_core = unlimited
        rlimit_as =
        rlimit_nproc = -1
        flapping.max_retry = -1
        flapping.attempts = 10
        flapping.window = 60
        stdout_stream.class = FileStream
        stdout_stream.filename = out.log
        stdout_stream.max_bytes = 1073741824
        stdout_stream.backup_count = 365

        [watcher:other]
        cmd = run
        numprocesses = 99000

        [socket:web]
        host = 127.0.0.1
        port = 8080
        backlog = 65535
        """,
    )
    config = load_config(path, environ={})
    web = next(w for w in config.watchers if w.name == "web").kwargs
    assert web["numprocesses"] == 1000 and web["max_age"] == 86400
    assert web["rlimits"] == {"nofile": 1048576, "core": -1, "as": -1, "nproc": -1}
    assert config.sockets[0].kwargs["backlog"] == 65535


def test_the_loader_and_the_socket_layer_agree_on_socket_ceilings() -> None:
    from circus.arbiter.config._socket import SOCKET_CEILINGS
    from circus.sockets._options import CEILINGS

    assert SOCKET_CEILINGS == CEILINGS


def test_reloadconfig_beyond_a_ceiling_changes_nothing(tmp_path: Path, endpoints) -> None:
    text = "[watcher:web]\ncmd = {cmd}\nnumprocesses = {n}\ngraceful_timeout = 5\n{extra}"
    path = tmp_path / "circus.ini"
    # autostart off for the attacked watcher: code without ceilings only records the value
    path.write_text(text.format(cmd=SLEEP, n=1, extra="") + "\n[watcher:idle]\ncmd = x\n"
                    "autostart = false\n")  # fmt: skip

    async def main() -> None:
        arbiter = Arbiter.load_from_config(str(path), **endpoints)
        await arbiter.start_async()
        try:
            from circus.ctl import AsyncCircusClient

            async with AsyncCircusClient(endpoints["endpoint"], timeout=10, check=False) as c:
                (pid,) = arbiter.get_watcher("web").pids
                path.write_text(
                    text.format(cmd=SLEEP, n=1, extra="max_retry = 1180591620717411303424\n")
                    + "\n[watcher:idle]\ncmd = x\nautostart = false\nnumprocesses = 10000000\n"
                )
                answer = await c.call("reloadconfig", waiting=True)
                assert answer["status"] == "error", answer
                assert f"{path}:5" in answer["reason"] and "ceiling" in answer["reason"]
                assert arbiter.get_watcher("web").pids == [pid]
                assert arbiter.get_watcher("web").get_opt("max_retry") == 5
                assert arbiter.get_watcher("idle").numprocesses == 1
        finally:
            await arbiter.stop()

    asyncio.run(main())


def test_circusd_refuses_to_start_with_a_value_beyond_a_ceiling(tmp_path: Path) -> None:
    config = _write(
        tmp_path,
        f"""
        [circus]
        endpoint = ipc://{tmp_path}/ctl
        pubsub_endpoint = ipc://{tmp_path}/pub

        [watcher:web]
        cmd = {SLEEP}
        flapping.max_retry = 1180591620717411303424
        """,
    )
    proc = subprocess.Popen(
        [PY, "-m", "circus.arbiter.circusd", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("circusd started with flapping.max_retry = 2**70") from None
    assert proc.returncode == 1, err
    assert f"{config}:7: [watcher:web] flapping.max_retry" in err and "ceiling" in err, err
