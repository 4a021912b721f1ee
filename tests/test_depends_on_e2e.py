"""``depends_on`` in a real circusd: config errors, cascades over the control channel, and
``reloadconfig`` changing the graph without restarting what did not change."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PY = sys.executable
SLEEP = f"{PY} -c 'import time; time.sleep(300)'"


def _watchers(deps: dict[str, str], cmd: dict[str, str] | None = None) -> str:
    body = ""
    for name in ("a", "b", "c"):
        body += f"\n[watcher:{name}]\ncmd = {(cmd or {}).get(name, SLEEP)}\ngraceful_timeout = 5\n"
        if deps.get(name):
            body += f"depends_on = {deps[name]}\n"
    return body


def _all_pids(daemon: Any) -> dict[str, list[int]]:
    return {name: daemon.pids(name) for name in ("a", "b", "c")}


def test_a_cycle_stops_circusd_with_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "circus.ini"
    config.write_text(_watchers({"a": "c", "b": "a", "c": "b"}))
    circusd = str(Path(sys.executable).with_name("circusd"))
    result = subprocess.run(
        [circusd, str(config)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 1
    assert f"{config}:" in result.stderr and "depends_on" in result.stderr
    assert "cycle" in result.stderr and "a (" in result.stderr, result.stderr


def test_chain_cascades_over_the_control_channel(circusd: Callable[..., Any]) -> None:
    daemon = circusd(_watchers({"b": "a", "c": "b"}))
    daemon.track()
    pids = _all_pids(daemon)
    assert all(len(p) == 1 for p in pids.values()), pids
    # stop b: c goes first, a stays
    assert daemon.call("stop", name="b", waiting=True)["status"] == "ok"
    assert daemon.pids("b") == [] and daemon.pids("c") == [] and daemon.pids("a") == pids["a"]
    statuses = daemon.call("status")["statuses"]
    assert statuses == {"a": "active", "b": "stopped", "c": "stopped"}
    # start c: b first (a already runs)
    assert daemon.call("start", name="c", waiting=True)["status"] == "ok"
    assert len(daemon.pids("b")) == 1 and len(daemon.pids("c")) == 1
    # restart a: b and c (running) come back after it, with new processes
    before = _all_pids(daemon)
    assert daemon.call("restart", name="a", waiting=True)["status"] == "ok"
    after = _all_pids(daemon)
    assert all(len(after[n]) == 1 and after[n] != before[n] for n in after), (before, after)
    daemon.track()


def test_reloadconfig_changes_the_graph_in_place(circusd: Callable[..., Any]) -> None:
    daemon = circusd(_watchers({"b": "a"}))
    daemon.track()
    before = _all_pids(daemon)
    # b no longer needs a; c now does: nothing restarts
    daemon.write(_watchers({"c": "a"}))
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    assert _all_pids(daemon) == before
    # the new graph rules: stopping a stops c, not b
    assert daemon.call("stop", name="a", waiting=True)["status"] == "ok"
    assert daemon.pids("c") == [] and daemon.pids("b") == before["b"]
    assert daemon.call("start", name="c", waiting=True)["status"] == "ok"
    running = _all_pids(daemon)
    # a cycle in the new file is refused whole, with its line: nothing moves
    daemon.write(_watchers({"a": "c", "c": "a"}))
    answer = daemon.call("reloadconfig", waiting=True)
    assert answer["status"] == "error" and "cycle" in answer["reason"]
    assert "circus.ini:" in answer["reason"]
    assert _all_pids(daemon) == running
    # a's command changes: a is re-created, c (which requires it) restarts after it, b stays
    daemon.write(_watchers({"c": "a"}, cmd={"a": SLEEP + " # v2"}))
    assert daemon.call("reloadconfig", waiting=True)["status"] == "ok"
    after = _all_pids(daemon)
    assert after["b"] == running["b"]
    assert len(after["a"]) == 1 and after["a"] != running["a"]
    assert len(after["c"]) == 1 and after["c"] != running["c"]
    daemon.track()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_the_readme_example_runs(circusd: Callable[..., Any]) -> None:
    example = Path(__file__).resolve().parents[1] / "examples" / "depends_on" / "circus.ini"
    text = example.read_text().replace("python3", PY)
    text = text.replace("8701", str(_free_port())).replace("8702", str(_free_port()))
    daemon = circusd(text)
    daemon.track()

    def up() -> bool:
        return all(len(daemon.pids(n)) == 1 for n in ("db", "web", "worker"))

    from circus.process.testing import wait_until

    wait_until(up, 60, "db, web and worker running")
    status = daemon.call("status")["statuses"]
    assert status == {"db": "active", "web": "active", "worker": "active"}
    daemon.track()
    assert daemon.call("stop", name="db", waiting=True)["status"] == "ok"
    assert daemon.call("status")["statuses"] == dict.fromkeys(("db", "web", "worker"), "stopped")
