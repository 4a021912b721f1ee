"""Alias of circus.arbiter.plugins.flapping (upstream import path)."""

from circus.arbiter.plugins.flapping import Flapping

__all__ = ["Flapping"]
