"""Running a supervisord.conf: the right processes, names, argv, directory and environment;
autorestart=unexpected with exitcodes; startsecs/startretries giving up (FATAL);
redirect_stderr; stopasgroup; nodaemon=false daemonizing."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import pytest
from circus.arbiter import Arbiter
from circus.arbiter.supervisor import load_supervisor
from circus.ctl import AsyncCircusClient, CircusClient
from circus.process.testing import async_wait_until, wait_until

CORPUS = Path(__file__).parent / "configs" / "supervisor"
PY = sys.executable
CIRCUSD = str(Path(PY).with_name("circusd"))
# A program that counts its starts in <dir>/<name>.starts, then exits with the given code
# after the given number of seconds (or sleeps until stopped when the code is "wait").
COUNTER = (
    "import sys, time; d, name, code = sys.argv[1:4];"
    "open(f'{d}/{name}.starts', 'a').write('x');"
    "time.sleep(300) if code == 'wait' else sys.exit(int(code))"
)


def _run(
    path: Path, tmp_path: Path, body: Callable[[Arbiter, AsyncCircusClient], Awaitable[Any]]
) -> Any:
    config = load_supervisor(path).config
    endpoint = f"ipc://{tmp_path}/ctl"

    async def main() -> Any:
        arbiter = Arbiter.from_config(
            config, endpoint=endpoint, pubsub_endpoint=f"ipc://{tmp_path}/pub", pidfile=None
        )
        await arbiter.start_async()
        try:
            async with AsyncCircusClient(endpoint, timeout=10, check=False) as client:
                return await body(arbiter, client)
        finally:
            await arbiter.stop()

    return asyncio.run(main())


async def _status(client: AsyncCircusClient, name: str) -> str:
    answer = await client.call("status", {"name": name})
    return str(answer.get("status"))


def _stopped(arbiter: Arbiter, name: str) -> bool:
    return bool(arbiter.get_watcher(name).status() == "stopped")


def _starts(tmp_path: Path, name: str) -> int:
    try:
        return len((tmp_path / f"{name}.starts").read_text())
    except FileNotFoundError:
        return 0


def test_container_config_runs_the_right_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_PYTHON", PY)
    monkeypatch.setenv("APP_PORT", "8123")
    monkeypatch.setenv("APP_RECORD_DIR", str(tmp_path))
    here = str(CORPUS / "docker")
    names = ("app", "worker-1", "worker-2")

    async def body(arbiter: Arbiter, client: AsyncCircusClient) -> dict[str, Any]:
        await async_wait_until(
            lambda: all((tmp_path / f"{n}.json").exists() for n in names), 30, "3 records"
        )
        listed = await client.call("list", {})
        pids = {
            name: (await client.call("list", {"name": name}))["pids"]
            for name in ("app", "worker:worker-1", "worker:worker-2")
        }
        # a group is a glob away: circusctl stop 'worker:*'
        answer = await client.call("stop", {"name": "worker:*", "waiting": True})
        assert answer["status"] == "ok", answer
        statuses = {
            n: await _status(client, n) for n in ("app", "worker:worker-1", "worker:worker-2")
        }
        assert statuses == {
            "app": "active",
            "worker:worker-1": "stopped",
            "worker:worker-2": "stopped",
        }
        return {"watchers": listed["watchers"], "pids": pids}

    seen = _run(CORPUS / "docker" / "supervisord.conf", tmp_path, body)
    assert seen["watchers"] == ["app", "worker:worker-1", "worker:worker-2"]
    records = {n: json.loads((tmp_path / f"{n}.json").read_text()) for n in names}
    app = records["app"]
    assert app["argv"] == ["--port", "8123"] and app["cwd"] == here
    assert app["env"]["APP_GREETING"] == "hello, world" and app["env"]["APP_ROLE"] == "web"
    assert app["env"]["SUPERVISOR_PROCESS_NAME"] == "app"
    assert app["env"]["SUPERVISOR_GROUP_NAME"] == "app"
    assert seen["pids"]["app"] == [app["pid"]]  # redirect_stderr's sh exec'ed the command
    for n in (1, 2):
        worker = records[f"worker-{n}"]
        assert worker["argv"] == ["--worker", str(n)] and worker["cwd"] == here
        assert worker["env"]["APP_ROLE"] == f"worker-{n}"
        assert worker["env"]["SUPERVISOR_GROUP_NAME"] == "worker"
        assert seen["pids"][f"worker:worker-{n}"] == [worker["pid"]]
    out, err = capfd.readouterr()
    assert "worker-1 to stderr" in err  # stderr_logfile=/dev/stderr


def _conf(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "supervisord.conf"
    path.write_text("[supervisord]\nnodaemon=true\n" + body)
    return path


def test_autorestart_unexpected_respawns_only_unexpected_exit_codes(tmp_path: Path) -> None:
    conf = _conf(
        tmp_path,
        f'[program:expected]\ncommand={PY} -c "{COUNTER}" {tmp_path} expected 3\n'
        "autorestart=unexpected\nexitcodes=0,3\nstartsecs=0\n"
        f'[program:unexpected]\ncommand={PY} -c "{COUNTER}" {tmp_path} unexpected 4\n'
        "autorestart=unexpected\nexitcodes=0,3\nstartsecs=0\n",
    )

    async def body(arbiter: Arbiter, client: AsyncCircusClient) -> None:
        await async_wait_until(lambda: _starts(tmp_path, "unexpected") >= 3, 30, "3 starts")
        await async_wait_until(
            lambda: _starts(tmp_path, "expected") == 1, 30, "the expected program's start"
        )
        # the watcher stops itself once its process exited as expected
        await async_wait_until(lambda: _stopped(arbiter, "expected"), 30, "expected: stopped")
        assert await _status(client, "expected") == "stopped"
        assert _starts(tmp_path, "expected") == 1

    _run(conf, tmp_path, body)


@pytest.mark.parametrize("code", [1, 0])  # 0: a program that daemonizes and exits at once
def test_startretries_exhausted_is_fatal_after_startretries_plus_one_starts(
    tmp_path: Path, code: int
) -> None:
    conf = _conf(
        tmp_path,
        f'[program:broken]\ncommand={PY} -c "{COUNTER}" {tmp_path} broken {code}\n'
        "autorestart=true\nstartsecs=2\nstartretries=2\n",
    )

    async def body(arbiter: Arbiter, client: AsyncCircusClient) -> None:
        await async_wait_until(lambda: _starts(tmp_path, "broken") >= 3, 60, "3 starts")
        # FATAL: given up, as Supervisor does after startretries
        await async_wait_until(lambda: _stopped(arbiter, "broken"), 60, "broken: stopped")
        assert await _status(client, "broken") == "stopped"
        assert _starts(tmp_path, "broken") == 3

    _run(conf, tmp_path, body)


def test_redirect_stderr_and_stopasgroup(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen(['sleep', '300'])\n"
        f"open({str(tmp_path / 'child.pid')!r} + '.tmp', 'w').write(str(child.pid))\n"
        f"os.replace({str(tmp_path / 'child.pid')!r} + '.tmp', {str(tmp_path / 'child.pid')!r})\n"
        "print('to stdout', flush=True)\n"
        "print('to stderr', file=sys.stderr, flush=True)\n"
        "time.sleep(300)\n"
    )
    conf = _conf(
        tmp_path,
        f"[program:tree]\ncommand={PY} {script}\nstopasgroup=true\nstopwaitsecs=20\n"
        "redirect_stderr=true\nstdout_logfile=%(here)s/tree.log\nstdout_logfile_maxbytes=0\n",
    )
    log = tmp_path / "tree.log"

    async def body(arbiter: Arbiter, client: AsyncCircusClient) -> int:
        await async_wait_until(
            lambda: log.exists() and "to stderr" in log.read_text(), 30, "both lines in the log"
        )
        pid = (await client.call("list", {"name": "tree"}))["pids"][0]
        assert psutil.Process(pid).cmdline()[:2] == [PY, str(script)]  # sh exec'ed it
        child = int((tmp_path / "child.pid").read_text())
        await client.call("stop", {"name": "tree", "waiting": True})
        return child

    child = _run(conf, tmp_path, body)
    assert sorted(log.read_text().splitlines()) == ["to stderr", "to stdout"]

    def gone() -> bool:
        try:
            return psutil.Process(child).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_until(gone, 30, "the program's child stopped with it (stopasgroup)")


@pytest.mark.slow
def test_nodaemon_false_daemonizes_like_circusd_daemon(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/ctl"
    pidfile = tmp_path / "supervisord.pid"
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        f"[circus]\nendpoint = {endpoint}\npubsub_endpoint = ipc://{tmp_path}/pub\n"
        f"[supervisord]\nnodaemon=false\npidfile={pidfile}\nlogfile=%(here)s/d.log\n"
        f'[program:sleeper]\ncommand={PY} -c "import time; time.sleep(300)"\n'
    )
    done = subprocess.run([CIRCUSD, str(conf)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    pid = int(pidfile.read_text())
    try:
        with CircusClient(endpoint, timeout=10) as client:
            assert client.call("list", {})["watchers"] == ["sleeper"]
        assert pid != done.returncode and psutil.Process(pid).ppid() != os.getpid()
    finally:
        os.kill(pid, signal.SIGTERM)
        wait_until(lambda: not psutil.pid_exists(pid), 30, "the daemon to exit")


def test_reloadconfig_rereads_the_supervisord_conf(tmp_path: Path) -> None:
    sleep = f'{PY} -c "import time; time.sleep(300)"'
    conf = _conf(
        tmp_path,
        f"[program:w]\ncommand={sleep}\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)d\n",
    )

    async def body(arbiter: Arbiter, client: AsyncCircusClient) -> None:
        before = {n: (await client.call("list", {"name": n}))["pids"] for n in ("w:w_0", "w:w_1")}
        conf.write_text(conf.read_text().replace("numprocs=2", "numprocs=3"))
        answer = await client.call("reloadconfig", {"waiting": True})
        assert answer["status"] == "ok", answer
        listed = (await client.call("list", {}))["watchers"]
        assert listed == ["w:w_0", "w:w_1", "w:w_2"]
        for name, pids in before.items():  # untouched: same processes
            assert (await client.call("list", {"name": name}))["pids"] == pids
        assert arbiter.loaded_config is not None and arbiter.loaded_config.supervisor is not None

    _run(conf, tmp_path, body)


def test_fcgi_program_processes_get_the_socket_as_stdin(tmp_path: Path) -> None:
    script = tmp_path / "fcgi.py"
    script.write_text(
        "import json, os, socket, stat, sys, time\n"
        "st = os.fstat(0)\n"
        "s = socket.socket(fileno=os.dup(0))\n"
        "rec = {'sock': stat.S_ISSOCK(st.st_mode), 'addr': s.getsockname(),\n"
        "       'name': os.environ['SUPERVISOR_PROCESS_NAME']}\n"
        "path = sys.argv[1] + '/' + rec['name'] + '.json'\n"
        "open(path + '.tmp', 'w').write(json.dumps(rec))\n"
        "os.replace(path + '.tmp', path)\n"
        "time.sleep(300)\n"
    )
    sock = tmp_path / "app.sock"
    conf = _conf(
        tmp_path,
        f"[fcgi-program:app]\ncommand={PY} {script} {tmp_path}\nsocket=unix://{sock}\n"
        "socket_mode=0660\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)d\n",
    )

    async def body(arbiter: Arbiter, client: AsyncCircusClient) -> None:
        await async_wait_until(
            lambda: all((tmp_path / f"app_{n}.json").exists() for n in (0, 1)), 30, "2 records"
        )
        assert os.stat(sock).st_mode & 0o777 == 0o660  # socket_mode

    _run(conf, tmp_path, body)
    for n in (0, 1):
        record = json.loads((tmp_path / f"app_{n}.json").read_text())
        assert record == {"sock": True, "addr": str(sock), "name": f"app_{n}"}


def test_nodaemon_flag_keeps_circusd_in_the_foreground(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/ctl"
    pidfile = tmp_path / "supervisord.pid"
    conf = tmp_path / "supervisord.conf"
    conf.write_text(
        f"[circus]\nendpoint = {endpoint}\npubsub_endpoint = ipc://{tmp_path}/pub\n"
        f"[supervisord]\npidfile={pidfile}\nlogfile=%(here)s/d.log\n"  # nodaemon=false
        f'[program:sleeper]\ncommand={PY} -c "import time; time.sleep(300)"\n'
    )
    daemon = subprocess.Popen([CIRCUSD, "-n", str(conf)], cwd=tmp_path)
    try:
        wait_until(pidfile.exists, 30, "the pidfile")
        assert int(pidfile.read_text()) == daemon.pid  # not forked away
        wait_until((tmp_path / "ctl").exists, 30, "the control socket")
        with CircusClient(endpoint, timeout=10) as client:
            assert client.call("list", {})["watchers"] == ["sleeper"]
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
