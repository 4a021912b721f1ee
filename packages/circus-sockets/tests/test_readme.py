"""The README example runs as written: 200 requests, 200 answers, several workers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def example_code() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    runnable = [block for block in blocks if "SocketManager()" in block]
    assert len(runnable) == 1, "expected exactly one runnable example in the README"
    return runnable[0]


def test_readme_example_serves_200_requests_from_several_workers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace: dict[str, object] = {"__name__": "readme_example"}
    exec(compile(example_code(), str(README), "exec"), namespace)
    answers = namespace["answers"]
    pids = namespace["pids"]
    workers = namespace["workers"]
    assert isinstance(answers, list) and isinstance(pids, set) and isinstance(workers, list)
    assert len(answers) == 200
    assert all(answer.startswith("hello from worker ") for answer in answers)
    assert pids <= {str(worker.pid) for worker in workers}
    assert len(pids) >= 2, f"only {pids} answered"
    assert all(worker.returncode is not None for worker in workers)
    out = capsys.readouterr().out
    assert out.count("serving hello:app on fd ") == 4
    assert "200 answers from" in out
