"""``httpd = true`` in [circus]: circusd serves the dashboard as a watcher on its own socket."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from circus.ctl import CircusClient
from circus.ctl.errors import CallTimeout, DaemonUnreachable
from circus.ctl.keys import generate

pytest.importorskip("prometheus_client", reason="the dashboard needs circus-ctl[web]")

from circus.ctl.web.testing import Circushttpd  # noqa: E402


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=2) as answer:
        return answer.status, answer.read().decode()


def test_httpd_true_serves_the_dashboard_and_metrics(circusd, wait) -> None:
    daemon = circusd(
        "[circus]\nhttpd = true\nhttpd_host = 127.0.0.1\nhttpd_port = 0\n"
        f"[watcher:sleeper]\ncmd = {sys.executable} -c 'import time; time.sleep(300)'\n"
    )
    try:
        assert "circushttpd" in daemon.call("list")["watchers"]
        sockets = daemon.call("listsockets")["sockets"]
        (row,) = [s for s in sockets if s["name"] == "circushttpd"]
        assert row["port"] > 0, row
        base = f"http://127.0.0.1:{row['port']}"

        def page() -> str | None:
            try:
                status, body = _get(base + "/")
            except OSError:
                return None
            return body if status == 200 else None

        assert "Circus" in wait(page, 30, "the dashboard to answer")

        def metrics() -> str | None:
            try:
                body = _get(base + "/metrics")[1]
            except OSError:
                return None
            return body if 'watcher="sleeper"' in body else None

        assert "circus_" in wait(metrics, 30, "metrics naming the sleeper watcher")
    finally:
        assert daemon.stop() == 0


class Keys:
    """circusd's key pair, the dashboard's (authorized) pair and a stranger's pair."""

    def __init__(self, root: Path) -> None:
        folder = root / "keys"
        self.server_public, self.server_secret = generate(folder, "server")
        self.dashboard_public, self.dashboard_secret = generate(folder, "dashboard")
        self.stranger_public, self.stranger_secret = generate(folder, "stranger")
        self.authorized = root / "authorized"
        self.authorized.mkdir()
        (self.authorized / "dashboard.key").write_bytes(self.dashboard_public.read_bytes())

    def circus_section(self) -> str:
        return (
            f"[circus]\ncurve_secret_key = {self.server_secret}\n"
            f"curve_authorized_keys = {self.authorized}\n"
        )


def curve_daemon(circusd: Any, keys: Keys, wait: Any, body: str) -> Any:
    """A CURVE-enabled circusd, returned once it answers a keyed client."""
    daemon = circusd(keys.circus_section() + body, start=False)
    daemon.start(wait=False)
    with CircusClient(
        daemon.endpoint,
        timeout=1,
        curve_key=keys.dashboard_secret,
        curve_server_key=keys.server_public,
    ) as client:

        def answers() -> bool:
            try:
                return client.call("numwatchers")["status"] == "ok"
            except (CallTimeout, DaemonUnreachable):
                assert daemon.proc.poll() is None, daemon.output()
                return False

        wait(answers, 30, "circusd to answer over CURVE")
    return daemon


def _state(base: str) -> dict[str, Any]:
    with urllib.request.urlopen(base + "api/state", timeout=5) as answer:
        return json.loads(answer.read())["daemons"][0]


def test_httpd_true_on_a_curve_daemon_uses_its_own_keys(
    circusd: Any, wait: Any, tmp_path: Path
) -> None:
    keys = Keys(tmp_path)
    daemon = curve_daemon(
        circusd,
        keys,
        wait,
        "httpd = true\nhttpd_host = 127.0.0.1\nhttpd_port = 0\n"
        f"[watcher:sleeper]\ncmd = {sys.executable} -c 'import time; time.sleep(300)'\n",
    )
    try:
        with CircusClient(
            daemon.endpoint,
            timeout=10,
            curve_key=keys.dashboard_secret,
            curve_server_key=keys.server_public,
        ) as client:
            sockets = client.call("listsockets")["sockets"]
        (row,) = [s for s in sockets if s["name"] == "circushttpd"]
        base = f"http://127.0.0.1:{row['port']}"

        def metrics() -> str | None:
            try:
                body = _get(base + "/metrics")[1]
            except OSError:
                return None
            return body if 'watcher="sleeper"' in body else None

        body = wait(metrics, 30, "metrics naming the sleeper watcher (over CURVE)")
        assert f'circus_daemon_up{{endpoint="{daemon.endpoint}"}} 1.0' in body
        assert "refused a client" not in daemon.output()
    finally:
        assert daemon.stop() == 0


@pytest.mark.slow
def test_circushttpd_with_and_without_curve_keys(circusd: Any, wait: Any, tmp_path: Path) -> None:
    keys = Keys(tmp_path)
    daemon = curve_daemon(
        circusd,
        keys,
        wait,
        f"[watcher:sleeper]\ncmd = {sys.executable} -c 'import time; time.sleep(300)'\n",
    )
    common = ("--endpoint", daemon.endpoint, "--interval", "0.2", "--timeout", "1")
    env = dict(
        os.environ,
        CIRCUSCTL_CURVE_KEY=str(keys.dashboard_secret),
        CIRCUSCTL_CURVE_SERVER_KEY=str(keys.server_public),
    )
    plain_env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCUSCTL_CURVE_")}
    stranger = (
        "--curve-key",
        str(keys.stranger_secret),
        "--curve-server-key",
        str(keys.server_public),
    )
    try:
        with (
            Circushttpd(*common, env=env) as keyed,
            Circushttpd(*common, env=plain_env) as plain,
            Circushttpd(*common, *stranger, env=plain_env) as unknown,
        ):
            state = wait(
                lambda: (s := _state(keyed.url))["connected"] and s["watchers"] and s,
                30,
                "the keyed dashboard to show the watchers",
            )
            assert [w["name"] for w in state["watchers"]] == ["sleeper"]
            assert state["watchers"][0]["numprocesses"] == 1

            # Without a key: disconnected, saying CURVE may be needed; not a hang.
            started = time.monotonic()
            state = wait(
                lambda: (s := _state(plain.url))["error"] and s, 30, "the plain one's error"
            )
            assert time.monotonic() - started < 10
            assert not state["connected"] and not state["watchers"]
            assert "CURVE" in state["error"] and "--curve-key" in state["error"]

            # With a key circusd does not know: refused, and said so.
            state = wait(
                lambda: (s := _state(unknown.url))["error"] and s, 30, "the stranger's error"
            )
            assert not state["connected"]
            assert "refused our CURVE key" in state["error"], state
    finally:
        assert daemon.stop() == 0


DAEMON_README = Path(__file__).resolve().parents[1] / "packages/circus-daemon/README.md"


def test_daemon_readme_securing_recipe_runs(tmp_path: Path, wait: Any) -> None:
    """circus-daemon's "Securing circusd" recipe, run as written (ipc endpoints in tmp_path
    for its tcp ones, tmp_path for /etc/circus and /run): both ``status`` answer."""
    section = DAEMON_README.read_text().split("## Securing circusd", 1)[1].split("\n## ", 1)[0]
    scripts = re.findall(r"```sh\n(.*?)```", section, re.S)
    ini = re.search(r"```ini\n(.*?)```", section, re.S)
    assert len(scripts) == 2 and ini is not None

    def local(text: str) -> str:
        for public, here in (
            ("tcp://0.0.0.0:5555", f"ipc://{tmp_path}/ctl"),
            ("tcp://127.0.0.1:5555", f"ipc://{tmp_path}/ctl"),
            ("tcp://0.0.0.0:5556", f"ipc://{tmp_path}/pub"),
            ("/etc/circus", f"{tmp_path}/etc"),
            ("/run/", f"{tmp_path}/"),
        ):
            text = text.replace(public, here)
        return text

    env = {k: v for k, v in os.environ.items() if not k.startswith(("CIRCUSCTL_", "CIRCUSHTTPD_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}"
    pidfile = tmp_path / "circusd.pid"

    def run(script: str) -> str:
        result = subprocess.run(
            ["bash", "-e", "-c", local(script)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    run(scripts[0])
    (tmp_path / "etc" / "circus.ini").write_text(local(ini.group(1)))
    try:
        out = run(scripts[1])
        assert out.count("sleeper: active") == 2, out
        wait(lambda: not pidfile.exists(), 30, "circusd to quit (its pidfile removed)")
    finally:
        if pidfile.exists():  # the recipe failed half-way: end that circusd by its pid
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
            wait(lambda: not pidfile.exists(), 30, "circusd to stop")


def test_httpd_watcher_passes_circusd_key_files_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from circus.arbiter import CurveSettings
    from circus.arbiter._httpd import httpd_curve_files, httpd_watcher

    monkeypatch.chdir(tmp_path)
    assert httpd_curve_files(None) is None
    settings = CurveSettings.make("keys/server.key_secret", None, "clients")
    secret = str(tmp_path / "keys/server.key_secret")
    assert httpd_curve_files(SimpleNamespace(settings=settings)) == (secret, secret)
    settings = CurveSettings.make("keys/server.key_secret", "keys/server.key", "clients")
    files = httpd_curve_files(SimpleNamespace(settings=settings))
    assert files == (secret, str(tmp_path / "keys/server.key"))
    args = httpd_watcher("ipc://c", "ipc://p", None, files)["args"]
    assert f"--curve-key {secret} --curve-server-key {files[1]}" in args
    assert "--curve" not in httpd_watcher("ipc://c", "ipc://p")["args"]
