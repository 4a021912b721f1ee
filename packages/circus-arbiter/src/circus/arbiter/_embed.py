"""``get_arbiter``: upstream's embedding entry point (spec/features.md §10)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ._arbiter import Arbiter
from ._threaded import ThreadedArbiter

__all__ = ["get_arbiter"]


def get_arbiter(
    watchers: Iterable[Mapping[str, Any] | Any] = (),
    controller: str | None = None,
    pubsub_endpoint: str | None = None,
    stats_endpoint: str | None = None,
    statsd: bool = False,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    context: Any = None,
    background: bool = False,
    stream_backend: str = "thread",
    plugins: Iterable[Mapping[str, Any]] | None = None,
    debug: bool = False,
    proc_name: str = "circusd",
    loop: Any = None,
    check_delay: float = 1.0,
    **kwargs: Any,
) -> Arbiter | ThreadedArbiter:
    """Create an arbiter for ``watchers`` (dicts of Watcher arguments, or Watcher objects).

    Upstream's defaults are kept (control on ``tcp://127.0.0.1:5555``, events on ``:5556``),
    except that multicast discovery is off. With ``background=True`` the arbiter is a
    :class:`ThreadedArbiter`: ``start()`` returns once it serves and ``stop()`` joins it;
    otherwise ``start()`` blocks until ``quit``.

    Each watcher dict needs ``name`` and ``cmd``; a top-level ``env`` is merged into watchers
    that do not define their own.
    """
    specs: list[Any] = []
    for watcher in watchers:
        if isinstance(watcher, Mapping):
            spec = dict(watcher)
            if env and "env" not in spec:
                spec["env"] = dict(env)
            specs.append(spec)
        else:
            specs.append(watcher)
    arbiter = Arbiter(
        specs,
        endpoint=controller or "tcp://127.0.0.1:5555",
        pubsub_endpoint=pubsub_endpoint or "tcp://127.0.0.1:5556",
        stats_endpoint=stats_endpoint if (statsd or stats_endpoint) else None,
        statsd=statsd,
        context=context,
        plugins=plugins,
        debug=debug,
        proc_name=proc_name,
        loop=loop,
        check_delay=check_delay,
        **kwargs,
    )
    return ThreadedArbiter(arbiter) if background else arbiter
