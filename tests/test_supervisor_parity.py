"""The corpus of supervisord.conf files read by Supervisor 4.3.0 itself (in its own venv) and
by our loader: the same processes (supervisorctl names), start order, commands, directories,
environments, users, restart and stop settings, and log files."""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
from circus.arbiter.supervisor import load_supervisor

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from benchkit.procs import BenchError  # noqa: E402 - bench/ is not a package
from benchkit.settings import CACHE_DIR  # noqa: E402
from benchkit.venvs import ensure_venv  # noqa: E402

pytestmark = pytest.mark.slow

CORPUS = Path(__file__).resolve().parents[1] / "packages/circus-arbiter/tests/configs/supervisor"
ENV = {"APP_PYTHON": "/usr/bin/python3", "APP_PORT": "8000"}

# Run by Supervisor's own Python: its parsed view of a config file, as JSON.
DUMP = r"""
import json, sys
from supervisor.options import ServerOptions, make_namespec
from supervisor.datatypes import Automatic, RestartUnconditionally
opts = ServerOptions()
opts.configfile = sys.argv[1]
opts.process_config(do_usage=False)
out = []
for group in sorted(opts.process_group_configs):
    for p in sorted(group.process_configs):
        log = lambda v: None if v is None else ("AUTO" if v is Automatic else v)
        out.append({
            "namespec": make_namespec(group.name, p.name), "group": group.name,
            "command": p.command, "directory": p.directory, "environment": p.environment,
            "uid": p.uid, "autostart": p.autostart,
            "autorestart": "never" if p.autorestart is False else
                "always" if p.autorestart is RestartUnconditionally else "on-failure",
            "startsecs": p.startsecs, "startretries": p.startretries,
            "exitcodes": list(p.exitcodes), "stopsignal": p.stopsignal,
            "stopwaitsecs": p.stopwaitsecs, "killasgroup": p.killasgroup,
            "redirect_stderr": p.redirect_stderr, "umask": p.umask,
            "stdout_logfile": log(p.stdout_logfile), "stderr_logfile": log(p.stderr_logfile),
            "stdout_logfile_maxbytes": p.stdout_logfile_maxbytes,
        })
print(json.dumps(out))
"""


SUPERVISOR = ("supervisor-superlance", ("supervisor==4.3.0", "superlance==2.0.0"))


def supervisor_venv() -> Path:
    """Supervisor 4.3.0 in its own venv (the one the supervisorctl tests use, built once
    under their lock)."""
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / "supervisor-superlance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return ensure_venv(SUPERVISOR)
        except BenchError as exc:
            pytest.skip(f"cannot build the Supervisor venv: {exc}")
    raise AssertionError("unreachable")


def _supervisor_view(path: Path) -> list[dict[str, Any]]:
    python = supervisor_venv() / "bin" / "python"
    done = subprocess.run(
        [str(python), "-c", DUMP, str(path)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **ENV},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def _argv(kwargs: dict[str, Any]) -> list[str]:
    if kwargs["cmd"] == "/bin/sh" and kwargs["args"]:
        return shlex.split(kwargs["args"])[3:]  # -c 'exec "$@" 2>&1' argv0 argv...
    return shlex.split(kwargs["cmd"]) + shlex.split(kwargs["args"] or "")


@pytest.mark.parametrize("name", ["django", "laravel", "docker", "fcgi"])
def test_supervisor_and_we_read_the_corpus_alike(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = CORPUS / name / "supervisord.conf"
    theirs = _supervisor_view(path)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = load_supervisor(path)
    # the same processes, started in the same order
    assert [p.namespec for p in ours.processes] == [t["namespec"] for t in theirs]
    for t in theirs:
        proc = ours.process(t["namespec"])
        kwargs = ours.config.watcher(t["namespec"]).kwargs
        assert proc.group == t["group"]
        assert _argv(kwargs) == shlex.split(t["command"])
        assert kwargs["working_dir"] == t["directory"]
        assert t["environment"].items() <= kwargs["env"].items()
        uid = kwargs["uid"]
        assert (None if uid is None else __import__("pwd").getpwnam(uid).pw_uid) == t["uid"]
        assert kwargs["autostart"] == t["autostart"]
        assert (proc.autorestart, proc.startsecs, proc.startretries) == (
            t["autorestart"], t["startsecs"], t["startretries"]
        )  # fmt: skip
        assert list(proc.exitcodes) == t["exitcodes"]
        assert kwargs["stop_signal"] == t["stopsignal"]
        assert kwargs["graceful_timeout"] == t["stopwaitsecs"]
        assert kwargs["stop_children"] == t["killasgroup"]
        assert proc.redirect_stderr == t["redirect_stderr"]
        assert kwargs["umask"] == t["umask"]
        for stream in ("stdout", "stderr"):
            logfile = t[f"{stream}_logfile"]
            conf = kwargs[f"{stream}_stream"]
            if logfile is None or logfile == "AUTO":
                assert getattr(proc, f"{stream}_logfile") is None
            elif logfile in ("/dev/stdout", "/dev/fd/1"):
                assert conf == {"class": "StdoutStream"}
            else:
                assert conf["filename"] == os.path.normpath(logfile) or conf["filename"] == logfile
