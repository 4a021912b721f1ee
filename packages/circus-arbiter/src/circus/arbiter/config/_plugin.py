"""``[plugin:NAME]`` → :class:`PluginConfig` (spec/config.md §8). The class is not imported."""

from __future__ import annotations

from ._convert import EXPECTED_BOOL, EXPECTED_DOTTED, capped, check_dotted, to_bool, to_int
from ._model import PluginConfig
from ._section import SectionView

__all__ = ["parse_plugin"]


_PRIORITY = capped("priority", to_int)


def parse_plugin(view: SectionView, name: str) -> PluginConfig:
    """Validate one plugin section: ``use`` is required and dotted; ``priority`` an int
    (default 1); ``active`` a bool (default true); every other key is kept as written.

    Raises:
        ConfigError: an empty name, a missing or malformed ``use``, a bad priority/active.
    """
    if not name:
        raise view.error(None, "expected a plugin name after 'plugin:'")
    if "use" not in view:
        raise view.error(None, "expected a 'use = package.module.Class' option")
    use = view.get("use", check_dotted, "", EXPECTED_DOTTED)
    priority = view.get("priority", _PRIORITY[0], 1, _PRIORITY[1])
    active = view.get("active", to_bool, True, EXPECTED_BOOL)
    options = {key: raw.value for key, raw in view.options.items() if key != "use"}
    return PluginConfig(
        name=name,
        use=use,
        options=options,
        priority=priority,
        active=active,
        filename=view.filename,
        lineno=view.lineno,
    )
