"""Alias of circus.arbiter.plugins.resource_watcher (upstream import path)."""

from circus.arbiter.plugins.resource_watcher import ResourceWatcher

__all__ = ["ResourceWatcher"]
