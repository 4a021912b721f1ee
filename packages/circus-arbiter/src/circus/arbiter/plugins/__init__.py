"""Plugins shipped with circusd, and the :class:`CircusPlugin` base class.

Configured as ``[plugin:NAME]`` with ``use = <dotted path>``; upstream's paths
(``circus.plugins.flapping.Flapping``...) work too. circusd runs each plugin as upstream does:
a ``plugin:NAME`` watcher whose process is ``circus-plugin``. Other distributions can register
plugins in the ``circus.plugins`` entry-point group and name them in ``use``.
"""

from __future__ import annotations

from ._base import CircusPlugin
from ._host import ENTRY_POINT_GROUP, load_plugin_class

__all__ = ["CircusPlugin", "ENTRY_POINT_GROUP", "load_plugin_class"]
