"""Upstream-compatible import paths for plugins: ``circus.plugins.<module>.<Class>``.

Thin aliases of :mod:`circus.arbiter.plugins`, so Circus 0.19 configs (``use =
circus.plugins.flapping.Flapping``) and custom plugins (``from circus.plugins import
CircusPlugin``) keep working.
"""

from circus.arbiter.circus_plugin import main
from circus.arbiter.plugins import CircusPlugin

__all__ = ["CircusPlugin", "main"]
