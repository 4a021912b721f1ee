"""``stdout_stream.*`` / ``stderr_stream.*`` options → an upstream-style stream dict.

The result is what ``circus.process.streams.load_stream`` / the ``Watcher`` accept:
``{'class': 'FileStream', 'filename': 'out.log', 'max_bytes': 1048576, ...}``. Selection
follows spec/config.md §6: ``class`` given (bare built-in name or dotted path), else
``filename`` implies ``FileStream``. Options of the built-in classes are typed here
(ints, bools; ``rotate_when`` upper-cased) so mistakes fail at load time; options of a
custom (dotted) class are passed as the strings written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._convert import EXPECTED_BOOL, capped, to_bool, to_int
from ._section import SectionView

__all__ = ["parse_stream", "STREAM_CLASSES"]

_ROTATE_WHEN = ("S", "M", "H", "D", "MIDNIGHT", *(f"W{day}" for day in range(7)))
_MAX_BYTES = capped("*_stream.max_bytes", to_int)
_BACKUPS = capped("*_stream.backup_count", to_int)
_INTERVAL = capped("*_stream.rotate_interval", to_int)
_STR: tuple[Callable[[str], Any], str] = (str.strip, "")
_WHEN = (
    lambda text: _rotate_when(text),
    "expected one of " + ", ".join(_ROTATE_WHEN) + " (any case)",
)

# Built-in classes and the typed options each one takes.
STREAM_CLASSES: dict[str, dict[str, tuple[Callable[[str], Any], str]]] = {
    "FileStream": {
        "filename": _STR,
        "max_bytes": _MAX_BYTES,
        "backup_count": _BACKUPS,
        "time_format": (str, ""),
    },
    "WatchedFileStream": {"filename": _STR, "time_format": (str, "")},
    "TimedRotatingFileStream": {
        "filename": _STR,
        "backup_count": _BACKUPS,
        "time_format": (str, ""),
        "rotate_when": _WHEN,
        "rotate_interval": _INTERVAL,
        "utc": (to_bool, EXPECTED_BOOL),
    },
    "StdoutStream": {},
    "FancyStdoutStream": {"color": _STR, "time_format": (str, "")},
    "QueueStream": {},
}
_LOWER_CLASSES = {name.lower(): name for name in STREAM_CLASSES}
# Upstream's own module paths name the same built-ins.
_UPSTREAM_MODULES = ("circus.stream.", "circus.stream.file_stream.")
_LEGACY_KEYS = frozenset({"refresh_time"})


def _rotate_when(text: str) -> str:
    # Upstream compares case-sensitively and so rejects the documented "midnight"; we accept
    # any case and hand the stream the canonical upper-case spelling.
    value = text.strip().upper()
    if value not in _ROTATE_WHEN:
        raise ValueError(text)
    return value


def _class_name(view: SectionView, key: str, text: str) -> str:
    name = text.strip()
    for module in _UPSTREAM_MODULES:
        if name.startswith(module) and name[len(module) :] in STREAM_CLASSES:
            return name[len(module) :]
    if "." in name or ":" in name:
        return name
    if name.lower() in _LOWER_CLASSES:
        return _LOWER_CLASSES[name.lower()]
    raise view.error(
        key, "expected a built-in stream class (" + ", ".join(STREAM_CLASSES) + ") or a dotted path"
    )


def parse_stream(view: SectionView, prefix: str) -> dict[str, Any] | None:
    """Build the stream dict for ``prefix`` (``stdout_stream`` or ``stderr_stream``).

    Returns ``None`` when the section has no ``prefix.*`` option.

    Raises:
        ConfigError: no ``class`` and no ``filename``, an unknown bare class name, a bad
            typed value, or ``TimedRotatingFileStream`` without ``rotate_when``.
    """
    dotted = prefix + "."
    keys = [key for key in view.names() if key.startswith(dotted)]
    if not keys:
        return None
    class_key = dotted + "class"
    if class_key in view:
        cls = _class_name(view, class_key, view.text(class_key) or "")
    elif dotted + "filename" in view:
        cls = "FileStream"
    else:
        raise view.error(keys[0], f"expected {class_key} or {dotted}filename to be set")

    stream: dict[str, Any] = {"class": cls}
    typed = STREAM_CLASSES.get(cls)
    for key in keys:
        option = key[len(dotted) :]
        if option == "class" or option in _LEGACY_KEYS:
            continue
        if typed is None:  # a custom class gets exactly what was written
            stream[option] = view.options[key].value
        elif option in typed:
            convert, expected = typed[option]
            stream[option] = view.get(key, convert, None, f"{expected} for {cls}")
        elif not view.check_unknown(key, typed, "stream option", name=option):
            view.warn(key, f"{cls} takes no option {option!r}; ignored")
    if cls == "TimedRotatingFileStream" and "rotate_when" not in stream:
        raise view.error(
            keys[0], f"TimedRotatingFileStream needs {dotted}rotate_when (e.g. MIDNIGHT)"
        )
    return stream
