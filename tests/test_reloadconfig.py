"""reloadconfig and SIGHUP: unchanged watchers keep their pids, the rest follows the file."""

from __future__ import annotations

import signal
import sys

import pytest

SLEEP = f"{sys.executable} -c 'import time; time.sleep(300)'"


def _config(keep_n: int = 2, change_cmd: bool = False, with_old: bool = True,
            with_new: bool = False, resize: int = 1) -> str:  # fmt: skip
    body = f"""
[watcher:keep]
cmd = {SLEEP}
numprocesses = {keep_n}
graceful_timeout = 5

[watcher:change]
cmd = {SLEEP}{" # changed" if change_cmd else ""}
graceful_timeout = 5

[watcher:resize]
cmd = {SLEEP}
numprocesses = {resize}
graceful_timeout = 5
"""
    if with_old:
        body += f"\n[watcher:old]\ncmd = {SLEEP}\ngraceful_timeout = 5\n"
    if with_new:
        body += f"\n[watcher:new]\ncmd = {SLEEP}\ngraceful_timeout = 5\n"
    return body


@pytest.mark.parametrize("how", ["command", "sighup"])
def test_reloadconfig_applies_only_the_difference(circusd, e2e, how) -> None:
    daemon = circusd(_config())
    e2e.wait(lambda: all(daemon.pids(n) for n in ("keep", "change", "resize", "old")))
    keep = daemon.pids("keep")
    change = daemon.pids("change")
    resize = daemon.pids("resize")
    old = daemon.pids("old")
    daemon.write(_config(change_cmd=True, with_old=False, with_new=True, resize=2))
    if how == "command":
        assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    else:
        daemon.signal(signal.SIGHUP)
        e2e.wait(lambda: "new" in daemon.call("list")["watchers"], message="new watcher")
    e2e.wait(lambda: daemon.pids("new") and len(daemon.pids("resize")) == 2)
    assert daemon.pids("keep") == keep  # untouched: same processes
    assert set(resize) <= set(daemon.pids("resize"))  # resized in place
    e2e.wait(lambda: daemon.pids("change") and not set(daemon.pids("change")) & set(change))
    assert daemon.call("list")["watchers"] == ["change", "keep", "new", "resize"]
    e2e.wait(lambda: not any(e2e.alive(p) for p in old + change), message="old processes gone")
    assert daemon.call("get", name="change", keys=["cmd"])["options"]["cmd"].endswith("changed")


def test_reloadconfig_with_a_broken_file_keeps_running(circusd, e2e) -> None:
    daemon = circusd(_config())
    e2e.wait(lambda: daemon.pids("keep"))
    keep = daemon.pids("keep")
    daemon.config.write_text(daemon.config.read_text() + "\n[watcher:bad]\nnumprocesses = x\n")
    answer = daemon.call("reloadconfig", waiting=True)
    assert answer["status"] == "error"
    assert "circus.ini" in answer["reason"]
    assert daemon.pids("keep") == keep
    assert daemon.call("status")["status"] == "ok"


def test_changed_socket_is_rebound_and_its_watchers_recreated(circusd, e2e) -> None:
    def config(backlog: int) -> str:
        return f"""
[socket:web]
host = 127.0.0.1
port = 0
backlog = {backlog}

[watcher:server]
cmd = {SLEEP} $(circus.sockets.web)
use_sockets = true
graceful_timeout = 5

[watcher:bystander]
cmd = {SLEEP}
graceful_timeout = 5
"""

    daemon = circusd(config(16))
    e2e.wait(lambda: daemon.pids("server") and daemon.pids("bystander"))
    server, bystander = daemon.pids("server"), daemon.pids("bystander")
    [before] = daemon.call("listsockets")["sockets"]
    daemon.write(config(32))
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    [after] = daemon.call("listsockets")["sockets"]
    assert after["backlog"] == 32 and before["backlog"] == 16
    e2e.wait(lambda: daemon.pids("server") and not set(daemon.pids("server")) & set(server))
    assert daemon.pids("bystander") == bystander


def test_changed_endpoints_are_rebound_without_touching_watchers(circusd, e2e, tmp_path) -> None:
    from circus.ctl import CircusClient

    daemon = circusd(_config())
    e2e.wait(lambda: daemon.pids("keep"))
    keep = daemon.pids("keep")
    new_ctl, new_pub = f"ipc://{tmp_path}/ctl2", f"ipc://{tmp_path}/pub2"
    text = daemon.config.read_text()
    text = text.replace(daemon.endpoint, new_ctl).replace(daemon.pubsub, new_pub)
    daemon.config.write_text(text)
    # the answer still comes back on the old endpoint...
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    daemon.close_client()
    # ...which then goes away, while the new one serves the same watchers
    e2e.wait(lambda: not (tmp_path / "ctl").exists(), 20, "old control socket removed")
    with CircusClient(new_ctl, timeout=10) as client:
        assert client.call("list", name="keep")["pids"] == keep
        options = client.call("globaloptions")["options"]
    assert options["endpoint"] == new_ctl and options["pubsub_endpoint"] == new_pub
    daemon.endpoint = new_ctl
