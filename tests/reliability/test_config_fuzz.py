"""Random and truncated config files: a clear ConfigError (or a valid config), never a
traceback — against ``load_config`` (hypothesis, many examples) and the ``circusd`` command
line (a few examples: each is a process start)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from circus.arbiter.config import ConfigError, load_config
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
CIRCUSD = str(Path(sys.executable).with_name("circusd"))
SAMPLES = [
    (ROOT / "examples" / "circus.ini").read_text(),
    (ROOT / "examples" / "upstream-0.19.ini").read_text(),
    (ROOT / "packages" / "circus-arbiter" / "tests" / "configs" / "quirks.ini").read_text(),
]
# CIRCUS_FUZZ_EXAMPLES=5000 for a deeper run than CI's
EXAMPLES = int(os.environ.get("CIRCUS_FUZZ_EXAMPLES", "150"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

SECTIONS = ["circus", "watcher:w", "watcher:W", "socket:s", "env", "env:w", "plugin:p", "x"]
OPTIONS = [
    "cmd",
    "args",
    "numprocesses",
    "endpoint",
    "pubsub_endpoint",
    "stats_endpoint",
    "statsd",
    "warmup_delay",
    "graceful_timeout",
    "stop_signal",
    "uid",
    "gid",
    "umask",
    "host",
    "port",
    "path",
    "family",
    "use",
    "include",
    "include_dir",
    "hooks.before_start",
    "rlimit_nofile",
    "stdout_stream.class",
    "stdout_stream.filename",
    "stdout_stream.max_bytes",
    "singleton",
    "use_sockets",
    "respawn",
    "copy_env",
    "virtualenv",
    "stdin_socket",
    "working_dir",
    "env",
    "priority",
    "max_age",
    "on_demand",
    "rotate_when",
    "flapping.attempts",
    "PATH",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "",
            "0",
            "-1",
            "1.5",
            "true",
            "no",
            "TERM",
            "99",
            "abc",
            "tcp://0.0.0.0:0",
            "ipc://",
            "$(circus.sockets.s)",
            "$(circus.env.HOME)",
            "((circus.env.X))",
            "FileStream",
            "nosuch.module.Class",
            "*.ini",
            "/nonexistent",
            "0777",
            "root",
            "\t",
            "%(x)s",
        ]
    ),
    st.text(max_size=30),
)


def load(text: str) -> None:
    """Load ``text`` as a config file: fine, or a ConfigError with a located message."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "circus.ini"
        path.write_text(text, encoding="utf-8", errors="surrogateescape")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                load_config(str(path))
            except ConfigError as exc:
                message = str(exc)
                assert message and "Traceback" not in message
                assert "circus.ini" in message, message


@SETTINGS
@given(text=st.text(max_size=400))
def test_random_text(text: str) -> None:
    load(text)


@SETTINGS
@given(data=st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    load(data.decode("utf-8", errors="surrogateescape"))


@SETTINGS
@given(sample=st.sampled_from(SAMPLES), cut=st.floats(0, 1))
def test_truncated_configs(sample: str, cut: float) -> None:
    load(sample[: int(len(sample) * cut)])


@st.composite
def ini_files(draw: st.DrawFn) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 5))):
        lines.append(f"[{draw(st.sampled_from(SECTIONS))}]")
        for _ in range(draw(st.integers(0, 6))):
            lines.append(f"{draw(st.sampled_from(OPTIONS))} = {draw(VALUES)}")
    return "\n".join(lines) + "\n"


@SETTINGS
@given(text=ini_files())
def test_structured_random_ini(text: str) -> None:
    load(text)


@SETTINGS
@given(sample=st.sampled_from(SAMPLES), data=st.data())
def test_mutated_configs(sample: str, data: st.DataObject) -> None:
    lines = sample.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        if not lines:
            break
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["drop", "dup", "garble", "value"]))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "garble":
            lines[i] = data.draw(st.text(max_size=40))
        elif "=" in lines[i]:
            lines[i] = lines[i].split("=", 1)[0] + "= " + data.draw(VALUES)
    load("\n".join(lines) + "\n")


def _rejected(text: str) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "circus.ini"
        path.write_text(text)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                load_config(str(path))
            except ConfigError:
                return True
    return False


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=ini_files() | st.sampled_from(SAMPLES).map(lambda s: s[: len(s) // 3] + "\n[x\n"))
def test_circusd_command_line_on_broken_config(text: str) -> None:
    # only files the loader rejects: a valid one would start a daemon
    assume(_rejected(text))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "circus.ini"
        path.write_text(text)
        result = subprocess.run(
            [CIRCUSD, str(path)], capture_output=True, text=True, timeout=60, cwd=tmp
        )
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.startswith("circusd: ") and "circus.ini" in result.stderr


@settings(max_examples=6, deadline=None)
@given(
    args=st.lists(
        st.sampled_from(["--log-level", "--log-output", "--logger-config", "--pidfile", "-x"])
        | st.text(alphabet="abc./-", max_size=8),
        max_size=4,
    )
)
def test_circusd_command_line_random_arguments(args: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        # the config named last never exists: circusd must fail cleanly, whatever came before
        result = subprocess.run(
            [CIRCUSD, *args, "missing.ini"], capture_output=True, text=True, timeout=60, cwd=tmp
        )
    assert "Traceback" not in result.stderr + result.stdout
    if result.returncode == 0:
        # an option swallowed the file name: no config given prints the usage, as upstream
        assert result.stdout.startswith("usage: circusd"), result
    else:
        assert result.returncode in (1, 2), result
        assert result.stderr.strip(), result
