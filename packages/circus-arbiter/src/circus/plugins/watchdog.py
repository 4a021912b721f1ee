"""Alias of circus.arbiter.plugins.watchdog (upstream import path)."""

from circus.arbiter.plugins.watchdog import WatchDog

__all__ = ["WatchDog"]
