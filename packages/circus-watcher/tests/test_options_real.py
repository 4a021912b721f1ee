"""Each watcher option, observed in real children."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from circus.watcher import OptionError, SpawnFailedError, WatcherError

PY = sys.executable


async def run_once(make: Any, recorder: Any, cmd: str, **options: Any) -> str:
    """Start a one-shot watcher, wait for it to stop by itself, return its stdout."""
    options.setdefault("respawn", False)
    w = make(cmd, **options)
    chunks: list[bytes] = []
    w.add_output_observer(lambda pid, name, data: chunks.append(data) if name == "stdout" else None)
    await w.start()
    await recorder.until(w.is_stopped)
    return b"".join(chunks).decode()


def test_env_and_no_inherited_env(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        os.environ["CIRCUS_TEST_OUTER"] = "outer"
        try:
            out = await run_once(
                make, recorder, f"{PY} -c \"import os; print(sorted(os.environ.items()))\"",
                env={"FOO": "bar", "EXP": "$CIRCUS_TEST_OUTER/x"},
            )  # fmt: skip
        finally:
            del os.environ["CIRCUS_TEST_OUTER"]
        env = dict(eval(out))
        assert env["FOO"] == "bar" and env["EXP"] == "outer/x"
        assert "CIRCUS_TEST_OUTER" not in env and "HOME" not in env

    run_async(main)


def test_copy_env_and_copy_path(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        os.environ["CIRCUS_TEST_OUTER"] = "outer"
        try:
            out = await run_once(
                make, recorder, f"{PY} -c \"import os; print(os.environ['CIRCUS_TEST_OUTER'], "
                "os.environ['PYTHONPATH'])\"",
                copy_env=True, copy_path=True, env={"PYTHONPATH": "/extra"},
            )  # fmt: skip
        finally:
            del os.environ["CIRCUS_TEST_OUTER"]
        value, pythonpath = out.split()
        assert value == "outer"
        parts = pythonpath.split(os.pathsep)
        assert parts[-1] == "/extra" and [p for p in sys.path if p][0] in parts

    run_async(main)


def test_virtualenv(make: Any, recorder: Any, tmp_path: Path, run_async: Any) -> None:
    async def main() -> None:
        ver = f"{sys.version_info.major}.{sys.version_info.minor}"
        site = tmp_path / "venv" / "lib" / f"python{ver}" / "site-packages"
        site.mkdir(parents=True)
        (site / "extra.pth").write_text("../../../other\n")
        out = await run_once(
            make, recorder, f"{PY} -c \"import os; print(os.environ['PYTHONPATH']); "
            "print(os.environ['PATH'])\"",
            copy_env=True, virtualenv=str(tmp_path / "venv"),
        )  # fmt: skip
        pythonpath, path = out.split()
        assert pythonpath.split(os.pathsep)[0] == str(site)
        assert str(tmp_path / "venv" / "other") in pythonpath
        assert path.startswith(str(tmp_path / "venv" / "bin"))
        broken = make("true", name="w2", copy_env=True, virtualenv=str(tmp_path / "nope"))
        with pytest.raises(OptionError, match="virtualenv"):
            await broken.start()
        assert broken.status() == "stopped" and recorder.count("spawn") == 1

    run_async(main)


def test_working_dir_args_shell_wid_and_options(
    make: Any, recorder: Any, tmp_path: Path, run_async: Any
) -> None:
    async def main() -> None:
        out = await run_once(
            make, recorder, "echo $(circus.wid) $(circus.numprocesses) $(circus.team) `pwd`",
            args="--and more", shell=True, working_dir=str(tmp_path), custom_options={"team": "a"},
        )  # fmt: skip
        assert out.split() == ["1", "1", "a", str(tmp_path), "--and", "more"]

    run_async(main)


def test_executable(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        out = await run_once(make, recorder, "whatever -c 'import sys; print(sys.argv[0])'",
                             executable=PY)  # fmt: skip
        assert out.strip() == "-c"

    run_async(main)


def test_rlimits_and_umask(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        out = await run_once(
            make, recorder, "sh -c 'ulimit -n; umask'", rlimits={"nofile": 123}, umask="027"
        )
        nofile, umask = out.split()
        assert nofile == "123" and int(umask, 8) == 0o027

    run_async(main)


def test_close_child_streams(make: Any, recorder: Any, tmp_path: Path, run_async: Any) -> None:
    async def main() -> None:
        out = await run_once(
            make, recorder, f"{PY} -c \"import os; print(os.readlink('/proc/self/fd/0'), "
            "os.readlink('/proc/self/fd/2'))\"",
            close_child_stdin=True, close_child_stderr=True,
        )  # fmt: skip
        assert out.split() == ["/dev/null", "/dev/null"]
        out = await run_once(make, recorder, "sh -c 'echo hidden; echo shown >&2'", name="w2",
                             close_child_stdout=True)  # fmt: skip
        assert out == ""
        assert recorder.of("reap")[-1]["exit_code"] == 0

    run_async(main)


def test_stdout_and_stderr_streams(
    make: Any, recorder: Any, tmp_path: Path, run_async: Any
) -> None:
    async def main() -> None:
        log = tmp_path / "out.log"
        got: list[dict] = []
        w = make(
            "sh -c 'echo to-out; echo to-err >&2'",
            respawn=False,
            stdout_stream={"class": "FileStream", "filename": str(log)},
            stderr_stream=got.append,
        )
        await w.start()
        await recorder.until(lambda: recorder.count("stop") == 1)
        assert log.read_text() == "to-out\n"
        assert b"".join(c["data"] for c in got) == b"to-err\n"
        assert (
            got[0]["name"] == "stderr" and got[0]["pid"] == recorder.of("spawn")[0]["process_pid"]
        )

    run_async(main)


def test_output_observer_sees_both_streams(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sh -c 'echo a; echo b >&2'", respawn=False)
        seen: list[tuple[str, bytes]] = []
        w.add_output_observer(lambda pid, name, data: seen.append((name, data)))
        await w.start()
        await recorder.until(lambda: recorder.count("stop") == 1)
        assert sorted(seen) == [("stderr", b"b\n"), ("stdout", b"a\n")]

    run_async(main)


def test_use_sockets_and_stdin_socket(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.set_inheritable(True)
            code = (
                "import socket,sys,os; s=socket.socket(fileno=int(sys.argv[1])); "
                "print(s.getsockname()[1], "
                "os.fstat(0).st_ino == os.fstat(int(sys.argv[1])).st_ino); "
                "s.detach()"
            )
            w = make(f'{PY} -c "{code}" $(circus.sockets.web)', use_sockets=True,
                     stdin_socket="web", respawn=False)  # fmt: skip
            w.sockets = {"web": listener}
            chunks: list[bytes] = []
            w.add_output_observer(lambda pid, name, data: chunks.append(data))
            await w.start()
            await recorder.until(lambda: recorder.count("stop") == 1)
            port, same = b"".join(chunks).decode().split()
            assert int(port) == listener.getsockname()[1] and same == "True"

    run_async(main)


def test_on_demand_starts_on_first_connection(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            listener.setblocking(False)
            w = make("sleep 300", on_demand=True)
            w.sockets = {"web": listener}
            await w.start()
            assert w.status() == "stopped" and w.pids == []
            with socket.create_connection(listener.getsockname()):
                await recorder.until(lambda: w.status() == "active")
            assert len(w.pids) == 1
            with pytest.raises(WatcherError, match="no socket to wait on"):
                await make("true", name="lonely", on_demand=True).start()

    run_async(main)


def test_warmup_delay_spaces_spawns(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300", numprocesses=3, warmup_delay=0.2)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        await w.start()
        assert loop.time() - begin >= 0.38
        times = [p["time"] for p in recorder.of("spawn")]
        assert all(b - a >= 0.18 for a, b in zip(times, times[1:], strict=False))

    run_async(main)


def test_max_age_recycles_processes(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300", numprocesses=2, max_age=0.3, max_age_variance=0)
        await w.start()
        first = set(w.pids)
        await recorder.until(lambda: not first & set(w.pids) and len(w.pids) == 2)
        assert recorder.count("kill") >= 2
        assert all(p["exit_code"] == -15 for p in recorder.of("reap"))

    run_async(main)


def test_max_retry_stops_a_watcher_that_cannot_spawn(
    make: Any, recorder: Any, run_async: Any
) -> None:
    async def main() -> None:
        w = make("/nonexistent/program", max_retry=3)
        with pytest.raises(SpawnFailedError, match="3 attempts"):
            await w.start()
        assert w.status() == "stopped"

    run_async(main)


def test_respawn_never_and_on_failure(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sh -c 'exit 3'", respawn="on-failure", success_exit_codes=[3], numprocesses=2)
        await w.start()
        await recorder.until(lambda: recorder.count("stop") == 1)
        assert recorder.count("spawn") == 2  # exit 3 is a success: not replaced
        w2 = make("sh -c 'exit 4'", name="w2", respawn="on-failure", success_exit_codes=[3],
                  backoff_initial=0, **{"flapping.active": False})  # fmt: skip
        await w2.start()
        await recorder.until(lambda: recorder.count("spawn") >= 6)
        await w2.stop()

    run_async(main)


@pytest.mark.root
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_uid_gid(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        out = await run_once(make, recorder, "id -u -n", uid="nobody")
        assert out.strip() == "nobody"
        out = await run_once(make, recorder, "id -g", name="w2", uid=65534, gid=65534)
        assert out.strip() == "65534"

    run_async(main)


def test_priority_autostart_are_kept_for_the_arbiter(make: Any) -> None:
    w = make("true", priority=5, autostart=False)
    assert w.priority == 5 and w.autostart is False


def test_max_retry_forever_waits_for_the_fix(make: Any, tmp_path: Path, run_async: Any) -> None:
    async def main() -> None:
        later = tmp_path / "later"
        w = make("sleep 300", working_dir=str(later), max_retry=-1, backoff_initial=0.05,
                 backoff_max=0.1)  # fmt: skip
        starting = asyncio.ensure_future(w.start())
        await asyncio.sleep(0.4)  # several failed attempts happen meanwhile
        assert not starting.done() and w.status() == "starting"
        later.mkdir()
        info = await asyncio.wait_for(starting, 10)
        assert w.status() == "active" and len(info["started"]) == 1

    run_async(main)


def test_prereload_fn_runs_before_reload(make: Any, run_async: Any) -> None:
    async def main() -> None:
        seen: list[Any] = []
        w = make("sleep 300", prereload_fn=seen.append)
        await w.start()
        await w.reload()
        assert seen == [w]

    run_async(main)


def test_max_age_variance_bounds(make: Any, recorder: Any, run_async: Any) -> None:
    async def main() -> None:
        w = make("sleep 300", max_age=0.2, max_age_variance=0.3)
        await w.start()
        born = recorder.of("spawn")[0]["time"]
        await recorder.until(lambda: recorder.count("kill") >= 1)
        age = recorder.of("kill")[0]["time"] - born
        assert 0.18 <= age <= 0.5 + 1.0, age

    run_async(main)
