"""Reading the sockets systemd hands over (socket activation: LISTEN_PID/FDS/FDNAMES)."""

from __future__ import annotations

import os
from collections.abc import Mapping, MutableMapping

from ._errors import SocketError

#: The first fd systemd passes (sd_listen_fds(3)).
LISTEN_FDS_START = 3

_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def listen_fds(
    environ: Mapping[str, str] | None = None,
    *,
    pid: int | None = None,
    unset: bool = False,
) -> list[tuple[str, int]]:
    """The (name, fd) pairs systemd passed to this process, in fd order.

    Empty unless ``LISTEN_PID`` equals *pid* (default: our pid), so a child that inherited the
    variables ignores them. Names come from ``LISTEN_FDNAMES``; when it is missing or does not
    have one name per fd, each fd is named ``fd<N>``. A repeated name (one socket unit with
    several ``Listen*=`` lines) gets ``_1``, ``_2``... appended to its later occurrences.
    With *unset*, the three variables are removed from *environ* (default ``os.environ``)
    so they do not leak into processes started later. A malformed ``LISTEN_FDS`` raises
    SocketError.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    expected_pid = os.getpid() if pid is None else pid
    try:
        raw_pid = env.get("LISTEN_PID")
        if raw_pid is None or not raw_pid.strip().isdigit():
            return []
        if int(raw_pid) != expected_pid:
            return []
        raw_count = env.get("LISTEN_FDS", "0").strip()
        if not raw_count.isdigit():
            raise SocketError(
                f"LISTEN_FDS must be a number of fds, got {raw_count!r}", address="systemd"
            )
        count = int(raw_count)
        names = env.get("LISTEN_FDNAMES", "").split(":") if env.get("LISTEN_FDNAMES") else []
        if len(names) != count:
            names = [f"fd{LISTEN_FDS_START + i}" for i in range(count)]
        result: list[tuple[str, int]] = []
        seen: dict[str, int] = {}
        for index, name in enumerate(names):
            name = name or f"fd{LISTEN_FDS_START + index}"
            if name in seen:
                seen[name] += 1
                name = f"{name}_{seen[name]}"
            else:
                seen[name] = 0
            result.append((name, LISTEN_FDS_START + index))
        return result
    finally:
        if unset and isinstance(env, MutableMapping):
            for key in _VARIABLES:
                env.pop(key, None)
