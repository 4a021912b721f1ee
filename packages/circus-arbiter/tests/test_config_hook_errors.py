"""A hook that does not import is reported like any config error: file:line, section, option.

The loader keeps hooks as dotted strings (nothing is imported at load); the daemon imports
them when it creates the watcher, and that failure names where the config wrote the hook,
never the ``('path', False)`` pair handed to the watcher.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from circus.arbiter import Arbiter
from circus.arbiter.config import load_config
from circus.ctl import AsyncCircusClient

CIRCUSD = str(Path(sys.executable).with_name("circusd"))
SLEEP = f"{sys.executable} -c 'import time; time.sleep(300)'"


def _write(tmp_path: Path, hook: str, extra: str = "") -> Path:
    path = tmp_path / "hooks.ini"
    path.write_text(
        f"[circus]\nendpoint = ipc://{tmp_path}/ctl\npubsub_endpoint = ipc://{tmp_path}/pub\n\n"
        f"[watcher:w]\ncmd = {SLEEP}\ngraceful_timeout = 5\n# the hook:\n{hook}\n{extra}"
    )
    return path


def test_the_loader_keeps_the_pair_and_where_it_was_written(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "hooks.before_start = nosuchmod.hook, true"))
    spec = config.watcher("w").kwargs["hooks"]["before_start"]
    assert spec == ("nosuchmod.hook", True)  # what the watcher and a config diff see
    assert (spec.lineno, spec.option, spec.section) == (9, "hooks.before_start", "watcher:w")


def test_circusd_reports_file_line_section_option(tmp_path: Path) -> None:
    path = _write(tmp_path, "hooks.before_start = nosuchmod.hook")
    done = subprocess.run(
        [CIRCUSD, str(path)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert done.returncode == 1
    assert done.stderr == (
        f"circusd: {path}:9: [watcher:w] hooks.before_start = 'nosuchmod.hook': "
        "expected an importable callable (No module named 'nosuchmod')\n"
    )


def test_reloadconfig_names_the_line_too(tmp_path: Path) -> None:
    path = _write(tmp_path, "")

    async def main() -> dict:
        arbiter = Arbiter.load_from_config(str(path))
        await arbiter.start_async()
        try:
            path.write_text(
                path.read_text() + "\n[watcher:x]\ncmd = true\nhooks.after_start = os.nope\n"
            )
            async with AsyncCircusClient(f"ipc://{tmp_path}/ctl", timeout=30, check=False) as c:
                return await c.call("reloadconfig", waiting=True)
        finally:
            await arbiter.stop()

    answer = asyncio.run(main())
    assert answer["status"] == "error", answer
    assert (
        f"{path}:13: [watcher:x] hooks.after_start = 'os.nope': expected an importable"
        in (answer["reason"])
    )
