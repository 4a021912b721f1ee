"""Alias of circus.arbiter.plugins.statsd (upstream import path)."""

from circus.arbiter.plugins.statsd import BaseObserver, FullStats, StatsdEmitter

__all__ = ["StatsdEmitter", "FullStats", "BaseObserver"]
