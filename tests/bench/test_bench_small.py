"""Smoke tests of the benchmark harness: ``bench/run.py --small`` really measures and reports.

No speed is asserted (timed tests are banned: figures belong in bench/, as ratios); what is
asserted is that every row is there with a number, in the table and in the JSON.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "bench" / "README.md"
sys.path.insert(0, str(ROOT / "bench"))

from benchkit import venvs  # noqa: E402 - bench/ is not a package

# Every row a backend with a daemon fills in a --small run (N=10 is also the metrics N).
DAEMON_ROWS = [
    "start.10",
    "stop.10",
    "rss.10",
    "idle_cpu",
    "rtt.status",
    "rtt.list",
    "cli.status",
    "respawn",
    "stdout",
    "launch.10",
]
RAW_ROWS = ["start.10", "stop.10", "respawn", "stdout", "stdout.cat", "stdout.direct"]
# The chatty rows (a C writer built with cc): every daemon, and ours followed by logs -f.
CHATTY_ROWS = ["chatty.cpu", "chatty.lost", "chatty.status", "chatty.status_max"]
OURS_CHATTY_ROWS = [
    *CHATTY_ROWS,
    "chatty.follow.cpu",
    "chatty.follow.missed",
    "chatty.follow.seq",
    "chatty.follow.unexplained",
    "chatty.follow.torn",
    "chatty.follow.kept_up",
]


def run_bench(argv: list[str], tmp_path: Path) -> tuple[str, dict[str, Any]]:
    """Run the bench with ``argv`` (plus a private JSON path); return (stdout, JSON)."""
    out = tmp_path / "latest.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *argv, "--json", str(out), "--no-plot"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, json.loads(out.read_text())


def assert_rows(stdout: str, doc: dict[str, Any], backend: str, rows: list[str]) -> None:
    """Each row has a median for ``backend`` with no failed run, and is printed in the table."""
    assert doc["backends"][backend]["available"], doc["backends"][backend]
    for key in rows:
        value = doc["metrics"][key]["values"][backend]
        assert value["errors"] == [], (key, value)
        assert value["median"] is not None and value["median"] >= 0, (key, value)
        assert doc["metrics"][key]["label"] in stdout, key
    assert doc["table"] in stdout


def readme_command() -> list[str]:
    """The smoke command bench/README.md shows (``$ python bench/run.py --small ...``)."""
    found = re.search(r"^\$ python (bench/run\.py --small[^\n]*)$", README.read_text(), re.M)
    assert found, "bench/README.md lost its smoke example"
    return shlex.split(found.group(1))[1:]


def test_readme_smoke_example_measures_every_raw_row(tmp_path: Path) -> None:
    argv = readme_command()
    assert "raw" in argv[argv.index("--peers") + 1]
    stdout, doc = run_bench(argv, tmp_path)
    assert_rows(stdout, doc, "raw", RAW_ROWS)
    # raw has no daemon: its daemon-only rows stay empty rather than invented
    assert "raw" not in doc["metrics"].get("rtt.list", {}).get("values", {})
    assert "raw" not in doc["metrics"].get("launch.10", {}).get("values", {})


@pytest.mark.slow
def test_small_run_against_ours_fills_every_row(tmp_path: Path) -> None:
    if importlib.util.find_spec("circus.arbiter.circusd") is None:
        pytest.skip("our circusd (circus.arbiter.circusd) is not importable yet")
    stdout, doc = run_bench(["--small", "--peers", "raw,ours"], tmp_path)
    assert_rows(stdout, doc, "raw", RAW_ROWS)
    assert_rows(stdout, doc, "ours", DAEMON_ROWS)
    if shutil.which("cc"):
        assert_rows(stdout, doc, "ours", OURS_CHATTY_ROWS)
        assert "raw" not in doc["metrics"]["chatty.cpu"]["values"]  # no daemon, no row
        # 20 writers: nothing lost or torn, in the file or by the follower
        assert doc["metrics"]["chatty.lost"]["values"]["ours"]["median"] == 0
        assert doc["metrics"]["chatty.follow.missed"]["values"]["ours"]["median"] == 0
        assert doc["metrics"]["chatty.follow.kept_up"]["values"]["ours"]["median"] == 1
    for key in ("start.10", "stop.10", "respawn", "stdout"):
        assert doc["metrics"][key]["ratios"]["ours/raw"] > 0
    assert {t["metric"] for t in doc["targets"]} >= {"start.1000", "respawn", "stdout"}
    assert {"launch.200", "launch.1000"} <= {t["metric"] for t in doc["targets"]}


@pytest.mark.interop
@pytest.mark.skipif(
    not (venvs.upstream_circus_ready() and venvs.is_cached(venvs.SUPERVISOR)),
    reason="peer venvs not cached (a `make bench` run builds them; CI does not)",
)
def test_small_run_against_the_peers_fills_every_row(tmp_path: Path) -> None:
    stdout, doc = run_bench(
        [
            "--small",
            "--peers",
            "circus,supervisor",
            "--only",
            "start,stop,rss,rtt,cli,stdout,launch",
        ],
        tmp_path,
    )
    rows = [r for r in DAEMON_ROWS if r not in ("idle_cpu", "respawn")]
    assert_rows(stdout, doc, "circus", rows)
    assert_rows(stdout, doc, "supervisor", rows)
    assert doc["metrics"]["start.10"]["ratios"] == {}  # no raw, no ours: nothing to divide


def test_chatty_row_without_a_compiler_says_why(tmp_path: Path) -> None:
    # A PATH without cc (and nothing else the chatty row needs before its compiler check)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    out = tmp_path / "latest.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--small", "--peers", "ours"]
        + ["--only", "chatty", "--json", str(out), "--no-plot"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=100,
        env={**os.environ, "PATH": str(bin_dir)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ours chatty: skipped: no C compiler (cc)" in done.stderr
    doc = json.loads(out.read_text())
    value = doc["metrics"]["chatty.cpu"]["values"]["ours"]
    assert value["median"] is None and "no C compiler" in value["errors"][0]


def test_unknown_peer_is_refused_with_the_valid_ones(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--peers", "raw,pm2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "pm2" in done.stderr and "raw,ours,circus,supervisor" in done.stderr
