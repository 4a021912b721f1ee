"""The hand-over state of ``daemon-reexec``: what one circusd image tells the next.

A JSON document (UTF-8) with a format name and a version; the circus-arbiter README
("Upgrading a running circusd") documents every field. It travels in a memfd (no path, so
never world-readable: environment values may be secrets) whose descriptor number the new
image finds in ``CIRCUS_HANDOVER_FD``. The other descriptors it names (children's output
pipes, listening sockets) are inherited at the same numbers.

Loading is all or nothing: :func:`decode_state` checks the whole structure and the version
before anything acts on it, and :func:`check_state` additionally builds every watcher (no
process is started) with the code installed now. ``python -m circus.arbiter._handover
--check FD`` runs both in a separate process: the dry run circusd does before it execs.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from ._errors import ArbiterError

__all__ = [
    "ENV_FD",
    "FORMAT",
    "SUPPORTED_VERSIONS",
    "VERSION",
    "HandoverError",
    "b64",
    "check_state",
    "decode_state",
    "encode_state",
    "read_fd",
    "unb64",
    "watcher_spec",
    "write_memfd",
]

FORMAT = "circus-handover"
VERSION = 1
#: The versions this code can load. A change that an older image could misread gets a new
#: version; the loader then refuses a state it does not know instead of half-applying it.
SUPPORTED_VERSIONS = frozenset({1})
ENV_FD = "CIRCUS_HANDOVER_FD"
MAX_STATE_BYTES = 256 << 20  # far above 1,000 watchers of 1,000 processes


class HandoverError(ArbiterError):
    """A hand-over state that cannot be written or loaded (the message says why)."""


# ---------------------------------------------------------------------- values


def encode_value(value: Any, where: str) -> Any:
    """An option value as JSON: containers become lists/objects, a function or class its
    dotted import path.

    Raises:
        HandoverError: a value that cannot be re-created from JSON (names ``where``).
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [encode_value(v, where) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(encode_value(v, where) for v in value)
    if isinstance(value, Mapping):
        return {str(k): encode_value(v, f"{where}.{k}") for k, v in value.items()}
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if callable(value) and module and qualname and "<" not in qualname:
        return f"{module}.{qualname}"
    raise HandoverError(
        f"{where} holds {type(value).__name__} object {value!r}, which cannot be handed to "
        "a new image (only values a config file can express can)"
    )


def unb64(text: str) -> bytes:
    """Bytes from the base64 text of a partial output line."""
    import base64

    return base64.b64decode(text.encode("ascii"), validate=True)


def b64(data: bytes) -> str:
    """The base64 text of a partial output line."""
    import base64

    return base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------- bytes


def encode_state(state: Mapping[str, Any]) -> bytes:
    """The state as UTF-8 JSON bytes."""
    return json.dumps(state, separators=(",", ":"), allow_nan=False).encode()


def write_memfd(data: bytes) -> int:
    """A memfd holding ``data`` (inheritable, read from offset 0); the caller closes it."""
    fd = os.memfd_create("circus-handover", 0)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_fd(fd: int) -> bytes:
    """Everything in the state descriptor ``fd``, from offset 0.

    Raises:
        HandoverError: the descriptor cannot be read, or holds more than the bound.
    """
    chunks = []
    offset = 0
    try:
        while True:
            chunk = os.pread(fd, 1 << 20, offset)
            if not chunk:
                break
            chunks.append(chunk)
            offset += len(chunk)
            if offset > MAX_STATE_BYTES:
                raise HandoverError(f"hand-over state larger than {MAX_STATE_BYTES} bytes")
    except OSError as exc:
        raise HandoverError(f"cannot read the hand-over state (fd {fd}): {exc}") from exc
    return b"".join(chunks)


# ---------------------------------------------------------------------- checking


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise HandoverError(f"hand-over state is malformed: {what}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_fd(value: Any, what: str) -> None:
    _need(value is None or (_is_int(value) and value >= 0), f"{what} must be a descriptor")


def decode_state(data: bytes) -> dict[str, Any]:
    """Parse and check a state: format, version, and the shape of every part.

    Raises:
        HandoverError: not JSON, another format, a version this code does not load (the
            message names it and the supported ones), or a malformed part.
    """
    try:
        state = json.loads(data.decode())
    except (UnicodeDecodeError, ValueError) as exc:
        raise HandoverError(f"hand-over state is not JSON: {exc}") from exc
    _need(isinstance(state, dict), "not an object")
    if state.get("format") != FORMAT:
        raise HandoverError(f"hand-over state is not a {FORMAT} document")
    version = state.get("version")
    if version not in SUPPORTED_VERSIONS or not _is_int(version):
        supported = ", ".join(str(v) for v in sorted(SUPPORTED_VERSIONS))
        raise HandoverError(
            f"hand-over state version {version!r} is not supported by the installed "
            f"circus-arbiter (it loads version {supported}); nothing was changed"
        )
    _need(isinstance(state.get("watchers"), list), "'watchers' must be a list")
    _need(isinstance(state.get("sockets"), list), "'sockets' must be a list")
    _need(state.get("config_file") is None or isinstance(state["config_file"], str), "config")
    names: set[str] = set()
    for w in state["watchers"]:
        _need(isinstance(w, dict) and isinstance(w.get("name"), str), "a watcher without name")
        _need(w["name"] not in names, f"watcher {w['name']!r} twice")
        names.add(w["name"])
        _need(isinstance(w.get("options"), dict), f"watcher {w['name']!r}: options")
        _need(w.get("status") in ("active", "stopped"), f"watcher {w['name']!r}: status")
        for key in ("processes", "retiring"):
            _need(isinstance(w.get(key), list), f"watcher {w['name']!r}: {key}")
            for p in w[key]:
                _check_process(w["name"], p)
    _need(isinstance(state.get("requests", []), list), "'requests' must be a list")
    for r in state.get("requests", []):
        _need(isinstance(r, dict) and isinstance(r.get("peer"), dict), "a request")
        _need(isinstance(r.get("identity"), str) and isinstance(r.get("payload"), str), "request")
        _need(set(r["peer"]) <= {"via", "uid", "gid", "pid", "key", "address"}, "request peer")
    for s in state["sockets"]:
        _need(isinstance(s, dict) and isinstance(s.get("name"), str), "a socket without name")
        _need(_is_int(s.get("fd")) and s["fd"] >= 0, f"socket {s.get('name')!r}: fd")
    checked: dict[str, Any] = state
    return checked


def _check_process(watcher: str, p: Any) -> None:
    _need(isinstance(p, dict), f"watcher {watcher!r}: a process is not an object")
    for key in ("pid", "wid", "start_time"):
        _need(_is_int(p.get(key)) and p[key] >= 0, f"watcher {watcher!r}: process {key}")
    _need(isinstance(p.get("started"), (int, float)), f"watcher {watcher!r}: process started")
    _check_fd(p.get("stdout"), "stdout")
    _check_fd(p.get("stderr"), "stderr")
    partial = p.get("partial", {})
    _need(isinstance(partial, dict), "partial")
    for value in partial.values():
        _need(isinstance(value, dict), "partial")
        for text in value.values():
            _need(isinstance(text, str), "partial")
            try:
                unb64(text)
            except ValueError as exc:
                raise HandoverError(f"hand-over state is malformed: partial: {exc}") from exc


def watcher_spec(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The ``make_watcher`` dict of one watcher entry of the state."""
    spec = dict(entry["options"])
    spec["name"] = entry["name"]
    spec["custom_options"] = dict(entry.get("custom") or {})
    return spec


def check_state(state: Mapping[str, Any]) -> None:
    """Load the config file the new image will read and build every watcher of a decoded
    state with the installed code (nothing starts).

    Raises:
        HandoverError: a config file that no longer loads, or a watcher the installed code
            refuses (the message names it).
    """
    import warnings

    from ._watchers import make_watcher
    from .config import ConfigError, load_config

    path = state.get("config_file")
    if path:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load_config(path)
        except ConfigError as exc:
            raise HandoverError(f"the config file does not load any more: {exc}") from exc
        except OSError as exc:
            raise HandoverError(f"cannot read the config file {path}: {exc}") from exc

    for entry in state["watchers"]:
        try:
            watcher = make_watcher(watcher_spec(entry))
        except Exception as exc:
            raise HandoverError(
                f"the installed code cannot load watcher {entry['name']!r}: {exc}"
            ) from exc
        close = getattr(watcher, "close", None)
        if callable(close):
            close()


def main(argv: list[str] | None = None) -> int:
    """``python -m circus.arbiter._handover --check FD``: exit 0 if the state in ``FD`` loads
    with the installed code, else print why on stderr and exit 1."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--check" or not args[1].isdigit():
        print("usage: python -m circus.arbiter._handover --check FD", file=sys.stderr)
        return 2
    try:
        check_state(decode_state(read_fd(int(args[1]))))
    except HandoverError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except Exception as exc:  # the installed code itself is broken: say so
        print(f"the installed code failed to load the state: {exc!r}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover - run by the dry run
    sys.exit(main())
