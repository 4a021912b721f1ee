"""Spawn-time substitution of ``$(circus.KEY)`` tokens in cmd and args (spec/config.md §7.2)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping

__all__ = ["substitute"]

# Both upstream syntaxes, ``$(circus.KEY)`` and ``((circus.KEY))``, matched case-insensitively.
_TOKEN = re.compile(
    r"\$\(\s*circus\.([\w.\-]+)\s*\)|\(\(\s*circus\.([\w.\-]+)\s*\)\)", re.IGNORECASE
)
_LEGACY_WID = re.compile(r"\$WID\b")


def substitute(
    text: str,
    *,
    wid: int,
    env: Mapping[str, str],
    sockets: Mapping[str, int],
    template_vars: Mapping[str, object],
) -> str:
    """Replace circus tokens in ``text``; unknown tokens are left verbatim.

    ``$(circus.wid)``, ``$(circus.env.NAME)`` (from the child's env), ``$(circus.sockets.NAME)``
    (the fd number) and ``$(circus.KEY)`` from ``template_vars``. Keys are matched
    case-insensitively; the legacy ``$WID`` is replaced too (with a DeprecationWarning).
    """
    if "circus" in text.lower():
        lower_env = {k.lower(): v for k, v in env.items()}
        lower_vars = {str(k).lower(): v for k, v in template_vars.items()}
        lower_socks = {k.lower(): v for k, v in sockets.items()}

        def repl(match: re.Match[str]) -> str:
            key = (match.group(1) or match.group(2)).lower()
            value: object | None
            if key == "wid":
                value = wid
            elif key.startswith("env."):
                value = lower_env.get(key[4:])
            elif key.startswith("sockets."):
                value = lower_socks.get(key[8:])
            else:
                value = lower_vars.get(key)
            return match.group(0) if value is None else str(value)

        text = _TOKEN.sub(repl, text)
    if "$WID" in text:
        warnings.warn("$WID is deprecated, use $(circus.wid)", DeprecationWarning, stacklevel=3)
        text = _LEGACY_WID.sub(str(wid), text)
    return text
