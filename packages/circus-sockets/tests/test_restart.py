"""Restarting every worker while a client keeps connecting refuses no connection."""

from __future__ import annotations

import select
import threading
from collections.abc import Callable

from circus.sockets import SocketManager


def test_full_restart_refuses_no_connection(
    manager: SocketManager,
    start_workers: Callable[..., list],
    get: Callable[..., str],
    waiter: Callable[..., None],
) -> None:
    web = manager.add("web", host="127.0.0.1", port=0)
    manager.bind_all()
    fd = manager.fd_map()["web"]
    answered: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set():
            try:
                answered.append(get(("127.0.0.1", web.port)).split()[-1])
            except BaseException as exc:  # any failure is what this test is about
                errors.append(exc)
                return

    thread = threading.Thread(target=client)
    thread.start()
    try:
        old = start_workers(fd, 2)
        waiter(lambda: len(answered) >= 20 or errors, message="answers from the first workers")
        for worker in old:
            worker.terminate()
        for worker in old:
            worker.wait(timeout=10)
        # No worker runs now: the client's next connection waits in the accept queue, which
        # the manager's still-open socket shows as readable.
        waiter(lambda: select.select([web], [], [], 0)[0], message="a queued connection")
        assert not errors
        new = start_workers(fd, 2)
        new_pids = {str(worker.pid) for worker in new}
        waiter(
            lambda: sum(pid in new_pids for pid in answered) >= 20 or errors,
            message="answers from the restarted workers",
        )
    finally:
        stop.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert errors == []
    old_pids = {str(worker.pid) for worker in old}
    assert set(answered) <= old_pids | new_pids
    assert set(answered) & old_pids and set(answered) & new_pids
