"""circus.process.testing: the deadline waits fail saying what they waited for, and the leak
check catches leftover processes (running or zombie) and descriptors, exactly."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil
import pytest
from circus.process.testing import (
    LeakCheck,
    LeakError,
    async_wait_until,
    leak_check,
    wait_until,
)


def test_wait_until_returns_the_first_truthy_value() -> None:
    calls = iter([0, "", None, "ready", "later"])
    assert wait_until(lambda: next(calls), timeout=5, interval=0.001) == "ready"


def test_wait_until_says_what_it_waited_for_and_the_last_value() -> None:
    with pytest.raises(AssertionError, match=r"0\.1 s waiting for the moon \(last value: \[\]\)"):
        wait_until(list, timeout=0.1, message="the moon")


def test_wait_until_names_a_lambda_by_its_source() -> None:
    with pytest.raises(AssertionError, match=r"lambda: os\.path\.exists"):
        wait_until(lambda: os.path.exists("/nonexistent/x"), timeout=0.05)


def test_wait_until_tries_once_more_at_the_deadline() -> None:
    seen = []

    def predicate() -> bool:
        seen.append(1)
        return len(seen) == 2

    # the first call fails, the sleep is cut to the deadline, the second call succeeds
    assert wait_until(predicate, timeout=0.05, interval=10) is True


def test_a_predicate_exception_ends_the_wait() -> None:
    def predicate() -> bool:
        raise ValueError("daemon died")

    with pytest.raises(ValueError, match="daemon died"):
        wait_until(predicate, timeout=30)


def test_async_wait_until_takes_plain_and_awaitable_predicates() -> None:
    async def main() -> tuple[int, int]:
        box = [0]

        def bump() -> int:
            box[0] += 1
            return box[0] if box[0] >= 3 else 0

        async def abump() -> int:
            await asyncio.sleep(0)
            return bump()

        first = await async_wait_until(bump, timeout=5, interval=0.001)
        second = await async_wait_until(abump, timeout=5, interval=0.001)
        return first, second

    assert asyncio.run(main()) == (3, 4)


def test_async_wait_until_fails_with_the_message() -> None:
    async def main() -> None:
        await async_wait_until(lambda: False, timeout=0.05, message="the flag")

    with pytest.raises(AssertionError, match="waiting for the flag"):
        asyncio.run(main())


def test_leak_check_passes_a_block_that_cleans_up() -> None:
    with leak_check():
        proc = subprocess.Popen(["sleep", "60"])
        proc.kill()
        proc.wait()
        r, w = os.pipe()
        os.close(r)
        os.close(w)


def test_a_running_child_left_behind_fails_and_is_killed() -> None:
    with pytest.raises(LeakError, match=r"process pid \d+ \(sleeping.*sleep 60"):
        with leak_check(grace=0.2):
            proc = subprocess.Popen(["sleep", "60"])
    assert proc.poll() is not None  # killed and reaped by the check
    assert not psutil.pid_exists(proc.pid)


def test_an_unreaped_child_is_a_leak_even_once_dead() -> None:
    with pytest.raises(LeakError, match=r"\(zombie"):
        with leak_check(grace=0.2):
            proc = subprocess.Popen(["true"])
            wait_until(lambda: psutil.Process(proc.pid).status() == psutil.STATUS_ZOMBIE)
    assert not psutil.pid_exists(proc.pid)
    proc.wait()  # nothing left to collect: no error either


def test_a_grandchild_under_a_new_child_counts(tmp_path: Path) -> None:
    marker = tmp_path / "grandchild"
    script = (
        "import subprocess, sys, time; subprocess.Popen(['sleep', '61']); "
        "open(sys.argv[1], 'w'); time.sleep(60)"
    )
    with pytest.raises(LeakError) as failed:
        with leak_check(grace=0.2):
            proc = subprocess.Popen([sys.executable, "-c", script, str(marker)])
            wait_until(marker.exists)
    assert "sleep 61" in str(failed.value) and str(proc.pid) in str(failed.value)
    proc.wait()


def test_what_an_older_child_starts_is_not_the_blocks_leak(tmp_path: Path) -> None:
    # a daemon started before the block (a module-scoped fixture) respawns a worker inside it
    script = (
        "import subprocess, sys; sys.stdin.readline(); subprocess.Popen(['sleep', '62']).wait()"
    )
    daemon = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE)
    try:
        with leak_check():
            assert daemon.stdin is not None
            daemon.stdin.write(b"go\n")
            daemon.stdin.flush()
            wait_until(lambda: psutil.Process(daemon.pid).children())
    finally:
        for worker in psutil.Process(daemon.pid).children():
            worker.kill()
        daemon.communicate(timeout=30)


def test_an_open_pipe_is_a_leak_from_the_first_one() -> None:
    with pytest.raises(LeakError, match=r"fd (\d+) -> pipe:.*\n.*fd \d+ -> pipe:") as failed:
        with leak_check(fd_allowance=100):
            r, w = os.pipe()
    os.close(r)
    os.close(w)
    assert f"fd {r} " in str(failed.value)


def test_event_machinery_is_allowed_up_to_the_allowance_per_process() -> None:
    check = LeakCheck(fd_allowance=2)
    kept = []
    for _ in range(2):  # two blocks each keep an eventfd: within the allowance
        check.start()
        kept.append(os.eventfd(0))
        check.finish()
    check.start()
    kept.append(os.eventfd(0))
    try:
        with pytest.raises(LeakError, match="eventfd"):
            check.finish()
        check.start()  # reported once: the next block is not blamed for it
        check.finish()
    finally:
        for fd in kept:
            os.close(fd)


def test_a_failing_block_is_cleaned_up_and_keeps_its_own_error() -> None:
    with pytest.raises(ZeroDivisionError):
        with leak_check(grace=0.1):
            proc = subprocess.Popen(["sleep", "60"])
            1 / 0  # noqa: B018
    assert proc.poll() is not None


def test_the_fixture_reports_a_leak_at_teardown(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        "from circus.process.testing import leak_check_fixture\n"
        "no_leaks = leak_check_fixture(grace=0.5)\n"
    )
    (tmp_path / "test_it.py").write_text(
        textwrap.dedent(
            """
            import os, subprocess

            def test_clean():
                subprocess.run(["true"], check=True)

            def test_leaks_a_child():
                subprocess.Popen(["sleep", "60"])

            def test_leaks_a_pipe():
                os.pipe()

            def test_after_the_leaks_is_clean():
                pass
            """
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rE"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert "4 passed, 2 errors" in out, out  # a test with a teardown error also passed
    assert "ERROR test_it.py::test_leaks_a_child" in out, out
    assert "ERROR test_it.py::test_leaks_a_pipe" in out, out
    assert "sleep 60" in out and "-> pipe:" in out, out
