"""Watcher-name patterns from clients, bounded so that matching one cannot stall circusd.

Python's regular expressions backtrack: ``(a+)+b`` against a 40-character name takes
minutes, with the event loop (every other request, every exit) waiting. A ``regex`` pattern
is therefore refused when it nests one repetition inside another, repeats an alternation,
or holds more than :data:`MAX_REPEATS` unbounded repetitions; with names of at most
:data:`MAX_PATTERN` characters what is left matches in linear to cubic time of a short name.
Globs are translated by :mod:`fnmatch`, which never backtracks exponentially.
"""

from __future__ import annotations

import importlib
import re
from typing import Any

from ._errors import MessageError

__all__ = ["MAX_PATTERN", "MAX_REPEATS", "compile_regex", "check_pattern"]

MAX_PATTERN = 256
"""The longest name or pattern a command may name a watcher by."""

MAX_REPEATS = 3
"""How many unbounded repetitions (``*``, ``+``, ``{n,}``) a regex pattern may hold."""


def check_pattern(pattern: str) -> None:
    """Refuse a name or pattern longer than :data:`MAX_PATTERN` characters.

    Raises:
        MessageError: errno 3, the length and the limit named (never the pattern itself).
    """
    if len(pattern) > MAX_PATTERN:
        raise MessageError(
            f"name or pattern of {len(pattern)} characters: at most {MAX_PATTERN} allowed"
        )


def compile_regex(pattern: str) -> re.Pattern[str]:
    """Compile a client's ``regex`` pattern once it is known to match in bounded time.

    Raises:
        MessageError: too long, not a regular expression, or a shape that can backtrack
            without bound (nested or alternated repetition, too many repetitions).
    """
    check_pattern(pattern)
    try:
        compiled = re.compile(pattern)
        # the parsed tree is the only reliable view of the shape (re's own parser)
        tree = importlib.import_module("re._parser").parse(pattern)
    except (re.error, RecursionError, OverflowError) as exc:
        raise MessageError(f"invalid regex {pattern!r}: {exc}") from None
    unbounded = _walk(list(tree), inside_repeat=False)
    if unbounded > MAX_REPEATS:
        raise MessageError(
            f"regex {pattern!r} has {unbounded} unbounded repetitions: at most {MAX_REPEATS}"
        )
    return compiled


def _walk(items: list[Any], inside_repeat: bool) -> int:
    """Count unbounded repetitions, refusing the shapes that backtrack exponentially."""
    c: Any = importlib.import_module("re._constants")
    count = 0
    for op, arg in items:
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, high, body = arg
            if inside_repeat and high != low:
                raise MessageError("regex with a repetition inside a repetition is refused")
            if high == c.MAXREPEAT:
                count += 1
            count += _walk(list(body), inside_repeat=high != low or inside_repeat)
        elif op == c.BRANCH:
            if inside_repeat:
                raise MessageError("regex with an alternation inside a repetition is refused")
            for branch in arg[1]:
                count += _walk(list(branch), inside_repeat)
        elif op == c.SUBPATTERN:
            count += _walk(list(arg[-1]), inside_repeat)
        elif op in (c.ASSERT, c.ASSERT_NOT):
            count += _walk(list(arg[1]), inside_repeat)
        elif op == c.ATOMIC_GROUP:
            count += _walk(list(arg), inside_repeat)
        elif op == c.GROUPREF_EXISTS:
            for part in arg[1:]:
                if part is not None:
                    count += _walk(list(part), inside_repeat)
    return count
