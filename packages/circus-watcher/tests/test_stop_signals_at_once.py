"""A stop signals the whole set before it reports any of it: every process already has its
stop signal when the first ``kill`` event is published, so they all end together."""

from __future__ import annotations

import shlex
import signal
import sys
from typing import Any

from circus.process.testing import async_wait_until

# Blocks SIGTERM, then says so by its blocked mask: the SIGTERM of the stop stays pending
# (visible in /proc) until the SIGKILL after graceful_timeout.
_HOLDS_TERM = "import signal, time; signal.pthread_sigmask(signal.SIG_BLOCK, {15}); time.sleep(300)"
_TERM_BIT = 1 << (signal.SIGTERM - 1)


def _mask(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def _term_pending(pid: int) -> bool:
    return bool((_mask(pid, "ShdPnd") | _mask(pid, "SigPnd")) & _TERM_BIT)


def test_every_process_has_its_stop_signal_before_the_first_kill_event(
    make: Any, recorder: Any, run_async: Any
) -> None:
    seen: list[dict[int, bool]] = []

    async def main() -> None:
        cmd = f"{shlex.quote(sys.executable)} -c {shlex.quote(_HOLDS_TERM)}"
        w = make(cmd, numprocesses=4, graceful_timeout=0.5)
        await w.start()
        pids = list(w.pids)
        await async_wait_until(
            lambda: all(_mask(pid, "SigBlk") & _TERM_BIT for pid in pids),
            30,
            "every process blocks SIGTERM",
        )

        def on_event(event: str, payload: dict[str, Any]) -> None:
            if event == "kill" and not seen:
                seen.append({pid: _term_pending(pid) for pid in pids})

        w.add_listener(on_event)
        await w.stop()
        assert seen == [dict.fromkeys(pids, True)]
        # the order and payloads of the events are those of a one-by-one stop
        names = recorder.names()
        assert names[-9:] == ["kill"] * 4 + ["reap"] * 4 + ["stop"]
        assert [p["process_pid"] for p in recorder.of("kill")][:4] == pids
        assert {p["exit_code"] for p in recorder.of("reap")} == {-9}

    run_async(main)
