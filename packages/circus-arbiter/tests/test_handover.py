"""The daemon-reexec hand-over state: format, version, refusal of anything malformed, the
snapshot of a running arbiter, and a switch whose exec fails (the daemon carries on)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any

import pytest
from circus.arbiter import Arbiter
from circus.arbiter._authz import Policy, Refused, Right, authorize, needed_right
from circus.arbiter._handover import (
    FORMAT,
    VERSION,
    HandoverError,
    check_state,
    decode_state,
    encode_state,
    encode_value,
    watcher_spec,
    write_memfd,
)
from circus.arbiter._peers import PeerIdentity
from circus.arbiter._reexec import snapshot, switch


def _state(**changes: Any) -> dict[str, Any]:
    state: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "config_file": None,
        "sockets": [{"name": "web", "fd": 5}],
        "watchers": [
            {
                "name": "w",
                "status": "active",
                "options": {"cmd": "sleep 1", "numprocesses": 1},
                "custom": {},
                "processes": [
                    {
                        "pid": 10,
                        "wid": 1,
                        "start_time": 99,
                        "started": 1.5,
                        "stdout": 7,
                        "stderr": None,
                        "partial": {"stdout": {"stream": "YWI="}},
                    },
                ],  # fmt: skip
                "retiring": [],
            }
        ],
    }
    state.update(changes)
    return state


def _raw(state: Any) -> bytes:
    return json.dumps(state).encode()


def test_a_good_state_loads() -> None:
    state = decode_state(encode_state(_state()))
    assert state["watchers"][0]["processes"][0]["pid"] == 10
    check_state(state)  # builds the watcher with the installed code


@pytest.mark.parametrize("version", [0, 2, "1", True, None, 1.0])
def test_a_version_it_does_not_know_is_refused_by_name(version: Any) -> None:
    with pytest.raises(HandoverError) as info:
        decode_state(_raw(_state(version=version)))
    assert f"version {version!r} is not supported" in str(info.value)
    assert "nothing was changed" in str(info.value)


def _broken_process(**changes: Any) -> dict[str, Any]:
    state = _state()
    state["watchers"][0]["processes"][0].update(changes)
    return state


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"\xff\xfe", "not JSON"),
        (b'{"format": "circus-handover", "version": 1', "not JSON"),
        (b"[]", "not an object"),
        (_raw({"format": "other", "version": 1}), "not a circus-handover document"),
        (_raw(_state(watchers={})), "'watchers' must be a list"),
        (_raw(_state(sockets=None)), "'sockets' must be a list"),
        (_raw(_state(sockets=[{"name": "web", "fd": -1}])), "socket 'web': fd"),
        (_raw(_state(watchers=[{"name": 3}])), "a watcher without name"),
        (_raw(_state(watchers=[{"name": "w", "options": {}, "status": "weird"}])), "status"),
        (_raw(_broken_process(pid="10")), "process pid"),
        (_raw(_broken_process(wid=None)), "process wid"),
        (_raw(_broken_process(stdout=-3)), "stdout must be a descriptor"),
        (_raw(_broken_process(started="now")), "process started"),
        (_raw(_broken_process(partial={"stdout": {"stream": "***"}})), "partial"),
    ],
)
def test_a_malformed_state_is_refused_with_a_reason(data: bytes, words: str) -> None:
    with pytest.raises(HandoverError) as info:
        decode_state(data)
    assert words in str(info.value)


def test_twice_the_same_watcher_is_refused() -> None:
    state = _state()
    state["watchers"].append(dict(state["watchers"][0]))
    with pytest.raises(HandoverError, match="twice"):
        decode_state(_raw(state))


def test_a_watcher_the_installed_code_refuses_is_named() -> None:
    state = _state()
    state["watchers"][0]["options"]["numprocesses"] = "many"
    with pytest.raises(HandoverError, match="cannot load watcher 'w'"):
        check_state(decode_state(_raw(state)))


def test_values_without_an_import_path_are_refused() -> None:
    assert encode_value(os.getcwd, "x") == "posix.getcwd"
    assert encode_value(frozenset({2, 1}), "x") == [1, 2]
    assert encode_value({"a": (1, None)}, "x") == {"a": [1, None]}
    with pytest.raises(HandoverError, match="option 'hook' holds function"):
        encode_value(lambda: None, "option 'hook'")
    with pytest.raises(HandoverError, match="holds object"):
        encode_value(object(), "x")


def _dry_run(state: bytes) -> subprocess.CompletedProcess[str]:
    fd = write_memfd(state)
    try:
        return subprocess.run(
            [sys.executable, "-m", "circus.arbiter._handover", "--check", str(fd)],
            pass_fds=(fd,),
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        os.close(fd)


def test_the_dry_run_process_says_why_it_refuses() -> None:
    assert _dry_run(encode_state(_state())).returncode == 0
    refused = _dry_run(_raw(_state(version=7)))
    assert refused.returncode == 1
    assert "version 7 is not supported" in refused.stderr


def test_daemon_reexec_is_admin_only() -> None:
    assert needed_right("daemon-reexec", {}) is Right.ADMIN
    owner = PeerIdentity("ipc", uid=65534, gid=65534, pid=2)
    policy = Policy(unauthenticated="operate", owner_uid=65534, circusd_uid=0)
    with pytest.raises(Refused, match="'daemon-reexec' needs the admin right"):
        authorize(policy, owner, "daemon-reexec", {}, lambda name: None)
    authorize(policy, PeerIdentity("ipc", uid=0, gid=0, pid=1), "daemon-reexec", {}, None)


def test_snapshot_carries_the_running_state(run_arbiter, make_sleeper, tmp_path) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        assert (await c.call("incr", name="a", nb=1, waiting=True))["status"] == "ok"
        opts = {"graceful_timeout": 7, "env": {"TOKEN": "s3cret"}}
        assert (await c.call("set", name="a", options=opts, waiting=True))["status"] == "ok"
        assert (await c.call("stop", name="b", waiting=True))["status"] == "ok"
        state = decode_state(encode_state(snapshot(arbiter)))
        check_state(state)
        by_name = {w["name"]: w for w in state["watchers"]}
        a, b = by_name["a"], by_name["b"]
        assert a["status"] == "active" and b["status"] == "stopped" and not b["processes"]
        assert sorted(p["pid"] for p in a["processes"]) == sorted(arbiter.get_watcher("a").pids)
        wids = sorted(p.wid for p in arbiter.get_watcher("a").processes.values())
        assert sorted(p["wid"] for p in a["processes"]) == wids and len(wids) == 2
        spec = watcher_spec(a)
        assert spec["numprocesses"] == 2 and spec["graceful_timeout"] == 7
        assert spec["env"] == {"TOKEN": "s3cret"}
        watcher = arbiter.get_watcher("a")
        for proc in watcher.processes.values():
            entry = next(p for p in a["processes"] if p["pid"] == proc.pid)
            assert entry["stdout"] == proc.stdout and entry["start_time"] == proc.start_time

    run_arbiter([make_sleeper("a"), make_sleeper("b")], body)


def test_restart_counters_are_handed_over(run_arbiter, make_sleeper, waiter) -> None:
    from circus.arbiter._resume import _restore_counters
    from circus.arbiter._watchers import make_watcher

    async def body(arbiter: Arbiter, c: Any) -> None:
        watcher = arbiter.get_watcher("a")
        victim = watcher.pids[0]
        os.kill(victim, 9)
        await waiter(lambda: watcher.pids and watcher.pids[0] != victim, 30, "a respawn")
        state = decode_state(encode_state(snapshot(arbiter)))
        counters = state["watchers"][0]["counters"]
        assert counters["streak"] == 1 and len(counters["flapping_times"]) == 1
        fresh = make_watcher(watcher_spec(state["watchers"][0]))
        _restore_counters(fresh, counters)
        assert fresh._policy.streak == 1 and list(fresh._flapping._times) == list(
            watcher._flapping._times
        )

    flapping = {"flapping.active": True, "flapping.attempts": 5}
    run_arbiter([make_sleeper("a", **flapping)], body)


def test_a_failed_exec_leaves_the_daemon_running(run_arbiter, make_sleeper, tmp_path) -> None:
    seen: list[tuple[str, list[str], dict[str, str]]] = []

    def failing_exec(path: str, argv: list[str], env: dict[str, str]) -> None:
        handed = int(env["CIRCUS_HANDOVER_FD"])
        state = decode_state(os.pread(handed, 1 << 20, 0))
        for w in state["watchers"]:
            for p in w["processes"]:
                assert os.get_inheritable(p["stdout"]), "a handed pipe must survive the exec"
        assert os.get_inheritable(handed)
        seen.append((path, argv, env))
        raise OSError(8, "Exec format error")

    async def body(arbiter: Arbiter, c: Any) -> None:
        watcher = arbiter.get_watcher("a")
        pids = watcher.pids
        assert (await c.call("list", name="a"))["status"] == "ok"  # a client connected before
        await switch(arbiter, execve=failing_exec)
        assert seen and seen[0][0] == sys.executable
        assert watcher.pids == pids
        for proc in watcher.processes.values():
            assert not os.get_inheritable(proc.stdout)
        answer = await c.call("list", name="a")
        assert answer["status"] == "ok" and sorted(answer["pids"]) == sorted(pids)

    stream = {"class": "FileStream", "filename": str(tmp_path / "a.log")}  # not a temp file
    run_arbiter([make_sleeper("a", 2, stdout_stream=stream)], body)


def test_an_embedded_arbiter_refuses_daemon_reexec(run_arbiter, make_sleeper) -> None:
    async def body(arbiter: Arbiter, c: Any) -> None:
        pids = arbiter.get_watcher("a").pids
        answer = await c.call("daemon-reexec")
        assert answer["status"] == "error" and "needs circusd" in answer["reason"]
        assert arbiter.get_watcher("a").pids == pids

    run_arbiter([make_sleeper("a")], body)


def _ignores_sigterm(pid: int) -> bool:
    """True once ``pid`` ignores SIGTERM (its handler installed: a stop then lasts)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    except OSError:
        pass
    return False


def test_daemon_reexec_waits_for_commands_still_working(
    run_arbiter, make_sleeper, waiter, monkeypatch
) -> None:
    from circus.arbiter import _reexec

    switched: list[Any] = []

    async def no_switch(arbiter: Any, execve: Any = None) -> None:
        switched.append(arbiter)  # never exec the test's own process

    monkeypatch.setattr(_reexec, "switch", no_switch)
    monkeypatch.setattr(_reexec, "_enabled", True)
    stubborn = (
        f"{sys.executable} -c 'import signal, time; "
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(300)'"
    )

    async def body(arbiter: Arbiter, c: Any) -> None:
        watcher = arbiter.get_watcher("a")
        await waiter(
            lambda: watcher.pids and _ignores_sigterm(watcher.pids[0]), 30, "SIGTERM ignored"
        )
        assert (await c.call("stop", name="a"))["status"] == "ok"  # answered, still stopping
        answer = await c.call("daemon-reexec")
        assert answer["status"] == "error" and "still working" in answer["reason"], answer
        await waiter(watcher.is_stopped, 60, "the stop done")
        answer = await c.call("daemon-reexec", timeout=60)
        assert answer["status"] == "ok" and answer["processes"] == 0, answer
        assert switched == [arbiter]

    # the stop lasts graceful_timeout (SIGTERM ignored): long enough that the next request
    # still finds it working on a loaded machine
    run_arbiter([make_sleeper("a", cmd=stubborn, graceful_timeout=5)], body)
