"""Serialising answers: upstream's ``json.dumps`` style, never failing on odd values.

Answer shapes themselves come from :mod:`circus.ctl.protocol` (``ok_answer``/``error_answer``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = ["encode"]


def encode(answer: Mapping[str, Any]) -> bytes:
    """Serialise an answer as 0.19 does (``json.dumps`` default separators), UTF-8."""
    return json.dumps(answer, default=_fallback).encode("utf-8")


def _fallback(value: Any) -> Any:
    # Sets of pids, bytes from psutil... must never make an answer unserialisable.
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)
