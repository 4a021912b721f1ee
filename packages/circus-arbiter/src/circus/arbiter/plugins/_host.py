"""Running plugins: each in its own thread with its own event loop, inside circusd.

A plugin class is named by ``use``: a dotted path (``circus.plugins.flapping.Flapping`` and
our ``circus.arbiter.plugins.flapping.Flapping`` both work) or the name of an entry point in
the ``circus.plugins`` group, so other distributions can ship plugins.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections.abc import Iterable, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from .._errors import ArbiterError

if TYPE_CHECKING:
    from .._arbiter import Arbiter

__all__ = ["PluginHost", "PluginThread", "load_plugin_class", "ENTRY_POINT_GROUP"]

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
    """One plugin on its own thread and event loop (tornado's IOLoop over asyncio), as the
    daemon's plugin host and the standalone ``circus-plugin`` command both run it."""

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


class PluginHost:
    """Starts and stops the arbiter's plugins."""

    def __init__(self, arbiter: Arbiter) -> None:
        self.arbiter = arbiter
        self._running: dict[str, PluginThread] = {}

    def names(self) -> list[str]:
        """Names of the running plugins."""
        return sorted(self._running)

    def get(self, name: str) -> Any:
        """The plugin object called ``name``."""
        return self._running[name].plugin

    def start_all(self, specs: Iterable[Mapping[str, Any]]) -> None:
        """Start every plugin, by ascending-then-name order; a failing one is logged."""
        for spec in sorted(specs, key=lambda s: (-int(s.get("priority", 1)), s["name"])):
            try:
                self.start(spec)
            except Exception as exc:
                log.error("plugin %s not started: %s", spec.get("name"), exc)

    def start(self, spec: Mapping[str, Any]) -> Any:
        """Create and start one plugin from ``{"name", "use", **options}``."""
        options = dict(spec)
        name = str(options.pop("name"))
        use = str(options.pop("use"))
        options.pop("priority", None)
        if options.pop("active", True) in (False, "false", "0", "no", "off"):
            return None
        cls = load_plugin_class(use)
        plugin = cls(
            self.arbiter.endpoint,
            self.arbiter.pubsub_endpoint,
            self.arbiter.check_delay,
            self.arbiter.ssh_server,
            **{k: str(v) if not isinstance(v, str) else v for k, v in options.items()},
        )
        plugin.name = name
        running = PluginThread(name, plugin)
        self._running[name] = running
        # Not waited for: a plugin's initialize() may call the daemon, whose loop is this one.
        running.thread.start()
        log.info("plugin %s (%s) started", name, use)
        return plugin

    async def stop(self, name: str) -> None:
        """Stop one plugin (no-op if it is not running)."""
        running = self._running.pop(name, None)
        if running is not None:
            await asyncio.to_thread(running.stop)

    async def stop_all(self) -> None:
        """Stop every plugin."""
        for name in list(self._running):
            await self.stop(name)
