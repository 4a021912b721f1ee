"""The crash state file: private, atomic, batched, refused when untrustworthy, and a full disk
logged without harm to the daemon."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter import Arbiter, ArbiterError
from circus.arbiter._crashstate import MIN_INTERVAL, CrashState, parse_state, state_key
from circus.arbiter._settings import ArbiterSettings
from circus.ctl import AsyncCircusClient
from circus.process.testing import async_wait_until

ROOT = os.geteuid() == 0


def _snapshot(n: int = 3) -> Any:
    def snap() -> dict[str, tuple[str, list[str]]]:
        procs = [
            json.dumps({"pid": 1000 + i, "wid": i + 1, "start_time": 5000 + i, "started": 1.5})
            for i in range(n)
        ]
        return {"web": ("cmd\0args", procs)}

    return snap


@pytest.fixture
def rundir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir(mode=0o700)
    return path


def test_a_burst_of_changes_is_one_write(rundir: Path) -> None:
    crash = CrashState(str(rundir), state_key("/etc/circus.ini", "ipc:///x"), _snapshot())
    assert crash.acquire()

    async def main() -> None:
        for _ in range(1000):  # a thousand spawns in one loop pass
            crash.changed()
        await async_wait_until(lambda: crash.writes == 1, 10, "the first write")
        crash.changed()  # the next change waits out MIN_INTERVAL, then one more write
        await async_wait_until(lambda: crash.writes == 2, 10, "the second write")
        await asyncio.sleep(MIN_INTERVAL * 2)  # nothing changed since: nothing written
        assert crash.writes == 2

    try:
        asyncio.run(main())
        state = Path(crash.path)
        assert state.stat().st_mode & 0o777 == 0o600
        parsed = parse_state(state.read_bytes())
        assert [p.pid for p in parsed.processes] == [1000, 1001, 1002]
        assert parsed.commands == {"web": "cmd\0args"}
        assert parsed.daemon_pid == os.getpid()
        assert [p.name for p in rundir.iterdir() if p.name.endswith(".tmp")] == []
    finally:
        crash.close()
    assert list(rundir.iterdir()) == []  # a clean exit leaves nothing to find


def test_a_write_cut_short_leaves_nothing_for_long(rundir: Path) -> None:
    crash = CrashState(str(rundir), "k", _snapshot())
    (rundir / "circusd-k.state.4242.tmp").write_bytes(b'{"format": 1, "wat')  # killed mid-write
    (rundir / "other.tmp").write_bytes(b"not ours")
    assert crash.acquire()
    try:
        assert sorted(p.name for p in rundir.iterdir()) == ["circusd-k.lock", "other.tmp"]
    finally:
        crash.close()


def test_the_lock_refuses_a_second_holder(rundir: Path) -> None:
    key = state_key("/etc/circus.ini", "ipc:///x")
    first = CrashState(str(rundir), key, _snapshot(), "ipc:///x")
    assert first.acquire()
    try:
        second = CrashState(str(rundir), key, _snapshot(), "ipc:///x")
        with pytest.raises(ArbiterError, match=rf"another circusd \(pid {os.getpid()}\)"):
            second.acquire()
    finally:
        first.close()
    third = CrashState(str(rundir), key, _snapshot(), "ipc:///x")
    assert third.acquire()  # released at close (and by the kernel when a daemon dies)
    third.close()


def test_a_directory_others_can_write_is_not_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    crash = CrashState(str(shared), "k", _snapshot())
    with caplog.at_level(logging.ERROR, "circus.arbiter"):
        assert not crash.acquire()
    assert "writable by others" in caplog.text
    assert list(shared.iterdir()) == []


@pytest.mark.skipif(not ROOT, reason="needs root to give the file to another user")
def test_a_state_file_not_ours_is_ignored(rundir: Path, caplog: pytest.LogCaptureFixture) -> None:
    writer = CrashState(str(rundir), "k", _snapshot())
    assert writer.acquire()
    assert writer.write()
    os.chown(writer.path, 65534, 65534)  # as if another user had planted it
    reader = CrashState(str(rundir), "k", _snapshot())
    with caplog.at_level(logging.WARNING, "circus.arbiter"):
        assert reader.previous() is None
    assert "not a private file of ours" in caplog.text
    os.chown(writer.path, 0, 0)
    os.chmod(writer.path, 0o644)
    assert reader.previous() is None
    os.chmod(writer.path, 0o600)
    assert reader.previous() is not None
    writer.close()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, unmounted at the end (needs root)."""
    if not ROOT:
        pytest.skip("needs root to mount a small filesystem")
    mnt = tmp_path / "tiny"
    mnt.mkdir(mode=0o700)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mnt)],
        capture_output=True,
        timeout=30,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace')}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=30)


def _fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # ENOSPC: full
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_is_logged_and_the_old_file_kept(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    crash = CrashState(str(tiny_disk), "k", _snapshot(3))
    assert crash.acquire()
    try:
        assert crash.write()
        before = Path(crash.path).read_bytes()
        filler = _fill(tiny_disk)
        crash._snapshot = _snapshot(400)  # a bigger file than the disk has room for
        with caplog.at_level(logging.INFO, "circus.arbiter"):
            assert not crash.write()
            assert not crash.write()
            assert caplog.text.count("cannot write the crash state file") == 1  # once a streak
            assert Path(crash.path).read_bytes() == before  # never a half-written file
            assert [p.name for p in tiny_disk.iterdir() if p.name.endswith(".tmp")] == []
            filler.unlink()
            assert crash.write()
            assert "is written again" in caplog.text
        assert len(parse_state(Path(crash.path).read_bytes()).processes) == 400
    finally:
        crash.close()


def test_a_daemon_on_a_full_disk_carries_on(tiny_disk: Path, tmp_path: Path) -> None:
    settings = ArbiterSettings(
        endpoint=f"ipc://{tmp_path}/ctl",
        pubsub_endpoint=f"ipc://{tmp_path}/pub",
        runtime_dir=str(tiny_disk),
    )
    sleeper = {"name": "s", "cmd": "sleep 300", "numprocesses": 1, "graceful_timeout": 5}

    async def main() -> None:
        arbiter = Arbiter.from_settings(settings, [sleeper])
        await arbiter.start_async()
        try:
            crash = arbiter.crash_state
            assert crash is not None
            await async_wait_until(lambda: crash.writes >= 1, 10, "the state file")
            _fill(tiny_disk)
            async with AsyncCircusClient(settings.endpoint, timeout=10, check=False) as client:
                answer = await client.call("incr", {"name": "s", "nb": 3})
                assert answer["status"] == "ok", answer
                listed = await client.call("list", {"name": "s"})
                assert len(listed["pids"]) == 4
            with open(crash.path, "rb") as fh:  # noqa: ASYNC230 - a small local file
                state = json.loads(fh.read())
            assert len(state["watchers"]["s"]["processes"]) == 1  # the last good write
        finally:
            await arbiter.stop()

    asyncio.run(main())


def _valid() -> dict[str, Any]:
    return {
        "format": 1,
        "boot_id": "b",
        "written": 1.0,
        "daemon": {"pid": 10, "start_time": 5},
        "watchers": {
            "web": {
                "command": "c",
                "processes": [
                    {"pid": 11, "wid": 1, "start_time": 6, "started": 2.0, "cgroup": "/x/1"},
                    {"pid": 12, "wid": 2, "start_time": 7, "started": 2.0, "pipes": {"stdout": 3}},
                ],
            }
        },
    }


_ODD: list[Any] = [None, True, -1, 0, 2**70, 1.5, float("inf"), "", "x", [], {}, [1], {"a": 1}]


def _mutations(doc: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _mutations(value, (*path, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _mutations(value, (*path, index))


def _replaced(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copy: Any = json.loads(json.dumps(doc))
    node = copy
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return copy


def test_any_malformed_state_is_a_value_error() -> None:
    """Every field of a valid file replaced by every odd value, plus truncations and deep
    nesting: parse_state accepts or raises ValueError, never anything else."""
    doc = _valid()
    assert len(parse_state(json.dumps(doc).encode()).processes) == 2
    tried = 0
    for path in _mutations(doc):
        for odd in _ODD:
            try:
                data = json.dumps(_replaced(doc, path, odd), allow_nan=True).encode()
            except ValueError:
                continue
            try:
                parse_state(data)
            except ValueError:
                pass
            tried += 1
    text = json.dumps(doc).encode()
    for cut in range(len(text)):
        with pytest.raises(ValueError):
            parse_state(text[:cut])
    for nasty in (b"[" * 100_000, b'{"a":' * 100_000, b"\xff\xfe", b"null", b"1e999"):
        with pytest.raises(ValueError):
            parse_state(nasty)
    assert tried > 300


def test_state_key_is_stable_across_versions() -> None:
    # a daemon finds the state file of the one before it (maybe an older version) by this
    # name: SHA-256 of the absolute config path and the endpoint, whatever computes it
    ident = b"/etc/circus.ini\0ipc:///x"
    assert state_key("/etc/circus.ini", "ipc:///x") == hashlib.sha256(ident).hexdigest()[:20]
    assert state_key(None, "tcp://127.0.0.1:5555") == "28919379d4ce3dce7e2c"
