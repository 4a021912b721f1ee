"""Spawns from several threads at once through the small-table spawn thread.

``Process`` spawns from any thread; the hand-over to the spawn thread is one request slot
and one answer, so two requesters at once swapped each other's commands and descriptors
(a child with another's argv and no stdout, or "malformed request").
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from circus.process import Process, _smalltable, _spawn


@pytest.fixture
def through_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(_spawn, "SMALL_TABLE_FROM", 0)
    yield
    _smalltable.shutdown()


def test_concurrent_spawns_each_get_their_own_command_and_pipes(
    spawn: Callable[..., Process], read_to_eof: Any, through_thread: None
) -> None:
    wrong: list[tuple[str, object]] = []

    def requester(tag: str) -> None:
        for i in range(60):
            word = f"{tag}-{i}"
            try:
                proc = spawn("echo", args=[word], exact_tree=False)
            except Exception as exc:  # noqa: BLE001 - recorded: the assertion says which
                wrong.append((word, repr(exc)))
                continue
            assert proc.stdout is not None
            out = read_to_eof(proc.stdout)
            if out != f"{word}\n".encode():
                wrong.append((word, out))
            proc.wait(30)

    threads = [threading.Thread(target=requester, args=(tag,), daemon=True) for tag in "abc"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert wrong == []
    assert _smalltable._spawner is not None  # the thread was used
