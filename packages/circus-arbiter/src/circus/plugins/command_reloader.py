"""Alias of circus.arbiter.plugins.command_reloader (upstream import path)."""

from circus.arbiter.plugins.command_reloader import CommandReloader

__all__ = ["CommandReloader"]
