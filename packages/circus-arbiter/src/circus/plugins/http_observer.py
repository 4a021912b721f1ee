"""Alias of circus.arbiter.plugins.http_observer (upstream import path)."""

from circus.arbiter.plugins.http_observer import HttpObserver

__all__ = ["HttpObserver"]
