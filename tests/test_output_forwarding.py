"""Worker output without a stream reaches circusd's own stdout/stderr, as upstream's children
inheriting them would write it; a stream class keeps it off; a stuck stdout never stalls
circusd. Each test runs its own circusd with stdout, stderr and its log in separate files."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from circus.ctl import CircusClient
from circus.process.testing import wait_until

PY = sys.executable
CIRCUSD = str(Path(sys.executable).with_name("circusd"))
WORKER = "sh -c 'echo hello-from-worker; echo err-from-worker >&2; exec sleep 300'"


class Circusd:
    """circusd on ``body`` with its stdout, stderr and log each in its own place."""

    def __init__(
        self, tmp_path: Path, body: str, stdout: Any = None, log_to_stdout: bool = False
    ) -> None:
        self.dir = tmp_path
        self.endpoint = f"ipc://{tmp_path}/ctl"
        self.config = tmp_path / "circus.ini"
        self.out = tmp_path / "stdout"
        self.err = tmp_path / "stderr"
        self.log = tmp_path / "circusd.log"
        self.config.write_text(
            f"[circus]\nendpoint = {self.endpoint}\npubsub_endpoint = ipc://{tmp_path}/pub\n" + body
        )
        self._files: list[IO[bytes]] = []
        if stdout is None:
            stdout = open(self.out, "wb")  # noqa: SIM115 - closed in stop()
            self._files.append(stdout)
        stderr = open(self.err, "wb")  # noqa: SIM115
        self._files.append(stderr)
        log_args = [] if log_to_stdout else ["--log-output", str(self.log)]
        self.proc = subprocess.Popen(
            [CIRCUSD, str(self.config), *log_args, "--log-level", "debug"],
            stdout=stdout,
            stderr=stderr,
            cwd=tmp_path,
        )
        self.client = CircusClient(self.endpoint, timeout=10, check=False)

    def call(self, command: str, timeout: float = 10.0, **props: Any) -> dict[str, Any]:
        """One command; the raw answer."""
        self.client.timeout = timeout
        return self.client.call(command, props)

    def answers(self) -> bool:
        """True once the control channel answers (fails if circusd exited)."""
        if self.proc.poll() is not None:
            raise AssertionError(f"circusd exited {self.proc.returncode}: {self.text(self.log)}")
        if not os.path.exists(self.endpoint[len("ipc://") :]):
            return False
        try:
            return self.call("numwatchers", timeout=1).get("status") == "ok"
        except Exception:
            self.client.close()
            self.client = CircusClient(self.endpoint, timeout=10, check=False)
            return False

    @staticmethod
    def text(path: Path) -> str:
        """A file's text ('' while missing)."""
        return path.read_text(errors="replace") if path.exists() else ""

    def quit(self, timeout: float = 30.0) -> int:
        """``quit``, then wait for the exit; its status."""
        self.call("quit")
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """End circusd and whatever it left (by pid), close the files."""
        self.client.close()
        if self.proc.poll() is None:
            kids = _descendants(self.proc.pid)
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            for pid in kids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
        for fh in self._files:
            fh.close()


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Any]:
    """``daemon(body, stdout=None)``: a started :class:`Circusd`, stopped after the test."""
    made: list[Circusd] = []

    def make(body: str, stdout: Any = None, log_to_stdout: bool = False) -> Circusd:
        d = Circusd(tmp_path, body, stdout, log_to_stdout)
        made.append(d)
        wait_until(d.answers, 20, "circusd to answer")
        return d

    yield make
    for d in made:
        d.stop()


def test_output_without_stream_goes_to_circusd_stdio(daemon: Any) -> None:
    d = daemon(f"[watcher:e]\ncmd = {WORKER}\n")
    wait_until(lambda: d.text(d.out) == "hello-from-worker\n", 15, "the stdout line")
    wait_until(lambda: d.text(d.err) == "err-from-worker\n", 15, "the stderr line")
    assert d.quit() == 0
    # exactly the worker's lines, unchanged, no prefix; circusd's own log went elsewhere
    assert d.text(d.out) == "hello-from-worker\n"
    assert d.text(d.err) == "err-from-worker\n"
    assert "Arbiter exiting" in d.text(d.log)
    assert "hello-from-worker" not in d.text(d.log)


def test_logs_command_still_answers_forwarded_lines(daemon: Any) -> None:
    d = daemon(f"[watcher:e]\ncmd = {WORKER}\n")
    wait_until(lambda: d.text(d.out) == "hello-from-worker\n", 15, "the stdout line")

    def logged() -> set[str]:
        return {line["data"] for line in d.call("logs", name="e", lines=10)["logs"]}

    wait_until(
        lambda: logged() == {"hello-from-worker\n", "err-from-worker\n"}, 15, "the logs answer"
    )


def test_a_stream_class_keeps_output_off_circusd_stdout(daemon: Any, tmp_path: Path) -> None:
    out_file = tmp_path / "worker.out"
    d = daemon(
        f"[watcher:e]\ncmd = {WORKER}\n"
        f"stdout_stream.class = FileStream\nstdout_stream.filename = {out_file}\n"
    )
    wait_until(lambda: d.text(d.err) == "err-from-worker\n", 15, "the stderr line")
    wait_until(lambda: d.text(out_file) == "hello-from-worker\n", 15, "the stream file")
    assert d.quit() == 0
    assert d.text(d.out) == ""
    assert d.text(d.err) == "err-from-worker\n"


def test_reloadconfig_without_the_stream_starts_forwarding(daemon: Any, tmp_path: Path) -> None:
    out_file = tmp_path / "worker.out"
    body = f"[watcher:e]\ncmd = {WORKER}\n"
    d = daemon(body + f"stdout_stream.class = FileStream\nstdout_stream.filename = {out_file}\n")
    wait_until(lambda: d.text(out_file) == "hello-from-worker\n", 15, "the stream file")
    assert d.text(d.out) == ""
    d.config.write_text(d.config.read_text().split("stdout_stream.class")[0])
    assert d.call("reloadconfig", waiting=True)["status"] == "ok"
    wait_until(lambda: d.text(d.out) == "hello-from-worker\n", 15, "the forwarded line")
    assert d.text(out_file) == "hello-from-worker\n"


FLOOD = (
    f"{PY} -c \"import sys, time; line = b'z' * 99 + b'\\n'; w = sys.stdout.buffer; "
    "[w.write(line) for _ in range(200000)]; w.flush(); "
    "sys.stderr.write('flood-done\\n'); sys.stderr.flush(); time.sleep(300)\""
)


@pytest.mark.slow
def test_a_stdout_nobody_reads_never_stalls_circusd(daemon: Any) -> None:
    read_end, write_end = os.pipe()
    worst: list[float] = []
    errors: list[str] = []
    done = threading.Event()
    try:
        d = daemon(f"[watcher:flood]\ncmd = {FLOOD}\nautostart = false\n", stdout=write_end)
        os.close(write_end)
        write_end = -1

        def probe() -> None:
            # status round trips from before the flood starts until it is over
            try:
                with CircusClient(d.endpoint, timeout=1.0) as client:
                    while not done.is_set():
                        started = time.monotonic()
                        answer = client.call("status")
                        worst.append(time.monotonic() - started)
                        if answer["status"] != "ok":
                            errors.append(repr(answer))
                        time.sleep(0.01)
            except Exception as exc:  # a timeout: circusd stalled
                errors.append(repr(exc))

        prober = threading.Thread(target=probe, daemon=True)
        prober.start()
        wait_until(lambda: len(worst) >= 3, 15, "the first status answers")
        assert d.call("start", name="flood")["status"] == "ok"
        wait_until(lambda: "flood-done" in d.text(d.err), 60, "the 20 MB flood")
        wait_until(lambda: "bytes of worker output" in d.text(d.log), 15, "the drop warning")
        count = len(worst)
        wait_until(lambda: len(worst) >= count + 3, 15, "status answers after the flood")
        done.set()
        prober.join(15)
        assert not prober.is_alive()
        assert not errors
        assert max(worst) < 1.0, f"{max(worst):.3f}s"
        assert "not read fast enough" in d.text(d.log)
        started = time.monotonic()
        assert d.quit(timeout=20) == 0
        assert time.monotonic() - started < 20
    finally:
        done.set()
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


@pytest.mark.slow
def test_circusd_logging_to_a_stdout_nobody_reads_never_stalls(daemon: Any) -> None:
    """circusd's own log lines (default: stdout) go through the same writer thread as the
    forwarded worker output: once that pipe is full, log lines are dropped, not waited for."""
    read_end, write_end = os.pipe()
    try:
        d = daemon(
            f"[watcher:flood]\ncmd = {FLOOD}\nautostart = false\n",
            stdout=write_end,
            log_to_stdout=True,
        )
        os.close(write_end)
        write_end = -1
        assert d.call("start", name="flood")["status"] == "ok"
        wait_until(lambda: "flood-done" in d.text(d.err), 60, "the 20 MB flood")
        # the pipe is full and circusd logs at debug level on every command: each of these
        # would block forever if a log line were written from the loop
        for _ in range(20):
            started = time.monotonic()
            assert d.call("status", timeout=2.0)["status"] == "ok"
            assert time.monotonic() - started < 1.0
        assert d.quit(timeout=20) == 0
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)
