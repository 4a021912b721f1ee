"""Running a plugin: on its own thread with its own event loop, in ``circus-plugin``.

circusd runs each ``[plugin:NAME]`` as a ``plugin:NAME`` watcher whose process is
``circus-plugin`` (see :mod:`circus.arbiter._plugin_watchers`).

A plugin class is named by ``use``: a dotted path (``circus.plugins.flapping.Flapping`` and
our ``circus.arbiter.plugins.flapping.Flapping`` both work) or the name of an entry point in
the ``circus.plugins`` group, so other distributions can ship plugins.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from importlib.metadata import entry_points
from typing import Any

from .._errors import ArbiterError

__all__ = ["PluginThread", "load_plugin_class", "ENTRY_POINT_GROUP"]

log = logging.getLogger("circus.plugins")

ENTRY_POINT_GROUP = "circus.plugins"


def load_plugin_class(use: str) -> type:
    """The class named by ``use`` (dotted path, ``module:attr`` or an entry-point name).

    Raises:
        ArbiterError: nothing importable by that name.
    """
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == use:
            return ep.load()  # type: ignore[no-any-return]
    module_name, sep, attr = use.partition(":")
    if not sep:
        module_name, _, attr = use.rpartition(".")
    if not module_name or not attr:
        raise ArbiterError(f"plugin {use!r}: expected a dotted path or a plugin entry point")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, attr)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as exc:
        raise ArbiterError(f"plugin {use!r} cannot be loaded: {exc}") from exc


class PluginThread:
    """One plugin on its own thread and event loop (tornado's IOLoop over asyncio), as
    ``circus-plugin`` runs it."""

    def __init__(self, name: str, plugin: Any) -> None:
        self.name = name
        self.plugin = plugin
        self.loop: Any = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._main, name=f"plugin:{name}", daemon=True)

    def _main(self) -> None:
        async def main() -> None:
            from tornado.ioloop import IOLoop

            self.loop = IOLoop.current()
            stopped = asyncio.Event()
            self.plugin.loop = self.loop
            try:
                self.plugin.handle_init()
                self.plugin.initialize()
                self.plugin.running = True
                # Upstream plugins end by calling loop.stop(); here the loop is asyncio's,
                # run by this thread, so stopping means letting main() return.
                self.loop.stop = stopped.set
                self.ready.set()
                await stopped.wait()
            finally:
                self.plugin.running = False
                try:
                    self.plugin.close()
                except Exception:  # pragma: no cover - best effort
                    log.debug("closing plugin %s failed", self.name, exc_info=True)

        try:
            asyncio.run(main())
        except Exception:
            log.exception("plugin %s crashed", self.name)
        finally:
            self.ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        loop = self.loop
        if loop is not None and self.thread.is_alive():
            loop.add_callback(self.plugin.stop)
        self.thread.join(timeout)
