"""The Circus wire protocol: the single source of truth for message shapes.

Used by both sides: clients build requests and read answers with it, the daemon validates
requests and builds answers and pub/sub messages with it. Shapes are those of Circus 0.19
(``spec/protocol.md``), plus our ``output.*`` topic and ``logs`` command. This module only
needs the standard library (no ZeroMQ import), so it can be used anywhere.

Control channel (spec §1): a DEALER client sends one frame of UTF-8 JSON
``{"command", "properties", "id"[, "msg_type": "cast"]}`` to the daemon's ROUTER; the daemon
answers one frame ``{"status": "ok", "time", <fields>, "id"}`` or
``{"status": "error", "reason", "tb", "time", "errno", "id"}``, echoing ``id`` verbatim and
never answering a ``cast``. :class:`Errno` is the table of ``errno`` values and what each means.

Pub/sub channel (spec §2): two frames, topic ``watcher.<name>.<event>`` and a JSON payload.
Our extension: topic ``output.<watcher>.<stdout|stderr>`` with payload
``{"watcher", "pid", "stream", "time", "data", "seq"}``: ``data`` is decoded text, one or
more complete lines of one process's stream as one read delivered them (or one unterminated
piece), ``seq`` the number of lines published on that topic before this message's first
line, so a subscriber sees how many it missed (:mod:`._outputseq`).

Stats channel (spec §3): two frames, topic ``stat.<watcher>[.<pid>]`` and a JSON payload.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ._commands import COMMANDS, CommandSpec, Prop, get_command, validate_properties
from ._errno import Errno
from ._outputseq import OutputGaps, output_line_count, split_output
from .errors import ProtocolError

__all__ = [
    "COMMANDS",
    "DEFAULT_ENDPOINT",
    "DEFAULT_PUBSUB_ENDPOINT",
    "DEFAULT_STATS_ENDPOINT",
    "DEFAULT_TIMEOUT",
    "EVENTS",
    "EVENT_FIELDS",
    "MAX_DEPTH",
    "MAX_REASON",
    "MAX_TRACEBACK",
    "CommandSpec",
    "Errno",
    "OutputGaps",
    "Prop",
    "Request",
    "cast_request",
    "check_request_text",
    "decode",
    "decode_answer",
    "decode_pubsub",
    "decode_request",
    "encode",
    "error_answer",
    "event_message",
    "event_topic",
    "get_command",
    "logs_answer_entry",
    "make_request",
    "new_id",
    "ok_answer",
    "output_line_count",
    "output_message",
    "output_payload",
    "output_topic",
    "parse_event_topic",
    "parse_output_topic",
    "parse_stat_topic",
    "resource_name",
    "shorten",
    "split_output",
    "stat_topic",
    "validate_properties",
]

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_PUBSUB_ENDPOINT = "tcp://127.0.0.1:5556"
DEFAULT_STATS_ENDPOINT = "tcp://127.0.0.1:5557"
DEFAULT_TIMEOUT = 5.0


# --------------------------------------------------------------------------- framing


def encode(message: Mapping[str, Any]) -> bytes:
    """Serialise a message as 0.19 does: ``json.dumps`` default separators, UTF-8."""
    return json.dumps(message).encode("utf-8")


MAX_DEPTH = 32
"""How deeply arrays and objects may nest in a request (a real one nests three levels)."""

MAX_REASON = 1000
"""The longest ``reason`` an error answer carries; longer ones are cut and say so."""

MAX_TRACEBACK = 16384
"""The longest ``tb`` an error answer carries."""


def decode(frame: bytes | str) -> Any:
    """Parse one JSON frame.

    Raises:
        ProtocolError: errno 1 ``json invalid`` if the frame is not valid UTF-8 JSON, or
            nests deeper than the interpreter can parse.
    """
    try:
        return json.loads(frame)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError("json invalid", Errno.INVALID_JSON) from None


def check_request_text(message: Any) -> None:
    """Refuse what no request needs and what would break on the way out.

    Arrays and objects nested deeper than :data:`MAX_DEPTH`, and strings (keys included)
    holding a lone UTF-16 surrogate (``"\\ud800"``): such a string can be parsed but
    never encoded again, so a watcher named with one would exist and then fail every event
    and answer that names it.

    Raises:
        ProtocolError: errno 3, saying which rule the message broke.
    """
    stack: list[tuple[Any, int]] = [(message, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if not value.isascii():
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise ProtocolError(
                        "message invalid: a string holds a lone UTF-16 surrogate",
                        Errno.MESSAGE_ERROR,
                    ) from None
            continue
        if isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                raise ProtocolError(
                    f"message invalid: nested deeper than {MAX_DEPTH} levels",
                    Errno.MESSAGE_ERROR,
                )
            if isinstance(value, dict):
                stack.extend((key, depth + 1) for key in value)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)


def shorten(text: str, limit: int = MAX_REASON) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was when cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def new_id() -> str:
    """Return a fresh request id: 32 lowercase hex digits, like circusctl's."""
    import uuid  # only clients make ids; the daemon never loads uuid

    return uuid.uuid4().hex


# --------------------------------------------------------------------------- requests


def make_request(
    command: str,
    properties: Mapping[str, Any] | None = None,
    id: Any = None,
    *,
    cast: bool = False,
) -> dict[str, Any]:
    """Build a request object, keys in circusctl's order: command, properties, id.

    ``id`` defaults to a fresh :func:`new_id`. With ``cast`` the request carries
    ``msg_type: "cast"`` and the daemon executes it without answering.
    """
    message: dict[str, Any] = {
        "command": command,
        "properties": dict(properties or {}),
        "id": new_id() if id is None else id,
    }
    if cast:
        message["msg_type"] = "cast"
    return message


def cast_request(command: str, properties: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build a request that the daemon must execute without answering (``msg_type: cast``)."""
    return make_request(command, properties, cast=True)


@dataclass(frozen=True)
class Request:
    """A decoded, validated control request, as the daemon sees it.

    ``command`` is lowercased; ``properties`` has the table's defaults filled in; ``id`` is
    echoed verbatim (``None`` when absent); ``cast`` is True for ``msg_type: "cast"``.
    """

    command: str
    properties: dict[str, Any]
    id: Any
    cast: bool
    spec: CommandSpec


def decode_request(frame: bytes | str) -> Request:
    """Decode and validate one request frame on the daemon side.

    Raises:
        ProtocolError: with the errno to answer (1 invalid JSON, 2 unknown command,
            3 invalid message). ``exc.request_id`` holds the id when one could be read, and
            ``exc.cast`` tells whether the sender asked for no answer.
    """
    message = decode(frame)
    if not isinstance(message, dict):
        raise ProtocolError("message invalid: not a JSON object", Errno.MESSAGE_ERROR)
    request_id = message.get("id")
    cast = message.get("msg_type") == "cast"
    try:
        check_request_text(message)
        if "command" not in message:
            raise ProtocolError("message invalid 'command' is missing", Errno.MESSAGE_ERROR)
        spec = get_command(message["command"])
        if not spec.control:
            raise ProtocolError("invalid message. use a pub/sub socket", Errno.MESSAGE_ERROR)
        props = validate_properties(spec, message.get("properties"))
    except ProtocolError as exc:
        exc.request_id = request_id
        exc.cast = cast
        raise
    return Request(spec.name, props, request_id, cast, spec)


# --------------------------------------------------------------------------- answers


def ok_answer(
    request_id: Any = None, fields: Mapping[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    """Build a success answer: ``status``, ``time``, the fields, then ``id`` last.

    As in 0.19, fields are merged after ``status``: a ``status`` field (the ``status NAME``
    command's state) replaces ``"ok"``.
    """
    answer: dict[str, Any] = {"status": "ok", "time": time.time()}
    if fields:
        answer.update(fields)
    answer.update(more)
    answer["id"] = request_id
    return answer


def error_answer(
    request_id: Any, reason: str, errno: int = Errno.NOT_SPECIFIED, tb: str | None = None
) -> dict[str, Any]:
    """Build an error answer with 0.19's keys: status, reason, tb, time, errno, id.

    ``reason`` and ``tb`` are cut to :data:`MAX_REASON` and :data:`MAX_TRACEBACK`
    characters: a reason quoting a 10 MB name never comes back as a 10 MB answer.
    """
    return {
        "status": "error",
        "reason": shorten(reason),
        "tb": None if tb is None else shorten(tb, MAX_TRACEBACK),
        "time": time.time(),
        "errno": int(errno),
        "id": request_id,
    }


def decode_answer(frame: bytes | str) -> dict[str, Any]:
    """Decode an answer frame on the client side.

    Raises:
        ProtocolError: if the frame is not a JSON object with a ``status``.
    """
    answer = decode(frame)
    if not isinstance(answer, dict) or "status" not in answer:
        raise ProtocolError(f"not a circus answer: {frame!r:.200}", Errno.MESSAGE_ERROR)
    return answer


# --------------------------------------------------------------------------- events

EVENTS: tuple[str, ...] = (
    "spawn",
    "reap",
    "kill",
    "start",
    "stop",
    "reload",
    "updated",
    "add",
    "remove",
    "hook_success",
    "hook_failure",
)
"""Watcher events published on the pub/sub channel (spec §2.2)."""

EVENT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "spawn": ("process_pid", "time"),
    "reap": ("process_pid", "time", "exit_code"),
    "kill": ("process_pid", "time"),
    "start": ("time",),
    "stop": ("time",),
    "reload": ("time",),
    "updated": ("time",),
    "add": ("time",),
    "remove": ("time",),
    "hook_success": ("name", "time"),
    "hook_failure": ("name", "time", "error"),
}
"""Payload keys of each event, in 0.19's order."""


def resource_name(watcher: str) -> str:
    """Return the name 0.19 uses in topics: lowercased, spaces replaced by ``_``."""
    return watcher.lower().replace(" ", "_")


def event_topic(watcher: str, event: str) -> str:
    """Return the pub/sub topic of a watcher event: ``watcher.<name>.<event>``."""
    return f"watcher.{resource_name(watcher)}.{event}"


def parse_event_topic(topic: bytes | str) -> tuple[str, str]:
    """Split ``watcher.<name>.<event>`` into (name, event).

    Splits on the *last* dot, so watcher names containing dots survive (0.19's consumers
    get this wrong, spec §2.1).

    Raises:
        ProtocolError: if the topic is not a watcher event topic.
    """
    text = topic.decode() if isinstance(topic, bytes) else topic
    prefix, _, rest = text.partition(".")
    name, dot, event = rest.rpartition(".")
    if prefix != "watcher" or not dot or not name:
        raise ProtocolError(f"not a watcher event topic: {text!r}", Errno.MESSAGE_ERROR)
    return name, event


def event_message(watcher: str, event: str, payload: Mapping[str, Any]) -> list[bytes]:
    """Return the two frames of an event: topic and JSON payload."""
    return [event_topic(watcher, event).encode(), encode(payload)]


def decode_pubsub(frames: Iterable[bytes]) -> tuple[str, dict[str, Any]]:
    """Decode a two-frame pub/sub message (event, output or stat) into (topic, payload).

    Raises:
        ProtocolError: if there are not two frames or the payload is not a JSON object.
    """
    parts = list(frames)
    if len(parts) != 2:
        raise ProtocolError(f"expected 2 frames, got {len(parts)}", Errno.MESSAGE_ERROR)
    payload = decode(parts[1])
    if not isinstance(payload, dict):
        raise ProtocolError("pub/sub payload is not a JSON object", Errno.MESSAGE_ERROR)
    return parts[0].decode("utf-8", "replace"), payload


# --------------------------------------------------------------------------- output (ours)

OUTPUT_STREAMS = ("stdout", "stderr")


def output_topic(watcher: str, stream: str) -> str:
    """Return our output topic: ``output.<watcher>.<stdout|stderr>``."""
    if stream not in OUTPUT_STREAMS:
        raise ValueError(f"stream must be 'stdout' or 'stderr', not {stream!r}")
    return f"output.{resource_name(watcher)}.{stream}"


def parse_output_topic(topic: bytes | str) -> tuple[str, str]:
    """Split ``output.<watcher>.<stream>`` into (watcher, stream).

    Raises:
        ProtocolError: if the topic is not an output topic.
    """
    text = topic.decode() if isinstance(topic, bytes) else topic
    prefix, _, rest = text.partition(".")
    name, dot, stream = rest.rpartition(".")
    if prefix != "output" or not dot or not name or stream not in OUTPUT_STREAMS:
        raise ProtocolError(f"not an output topic: {text!r}", Errno.MESSAGE_ERROR)
    return name, stream


def output_payload(
    watcher: str,
    pid: int,
    stream: str,
    data: str | bytes,
    when: float | None = None,
    seq: int | None = None,
) -> dict[str, Any]:
    """Build the payload of an output message (also one entry of a ``logs`` answer).

    ``data`` is decoded text made of complete lines (one or more); bytes are decoded as
    UTF-8 with replacement so a binary-writing child cannot break the JSON. ``seq`` (output
    messages only): lines published on the topic before this message's first line.
    """
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    payload: dict[str, Any] = {
        "watcher": watcher,
        "pid": pid,
        "stream": stream,
        "time": time.time() if when is None else when,
        "data": text,
    }
    if seq is not None:
        payload["seq"] = seq
    return payload


def output_message(
    watcher: str,
    pid: int,
    stream: str,
    data: str | bytes,
    when: float | None = None,
    seq: int | None = None,
) -> list[bytes]:
    """Return the two frames of an output message: topic and JSON payload."""
    payload = output_payload(watcher, pid, stream, data, when, seq)
    return [output_topic(watcher, stream).encode(), encode(payload)]


def logs_answer_entry(
    watcher: str, pid: int, stream: str, line: str | bytes, when: float
) -> dict[str, Any]:
    """Build one entry of a ``logs`` answer.

    Contract of the ``logs`` command (ours): properties ``name`` (a watcher name, a list of
    names, or absent for all) and ``lines`` (default 20: the last N lines kept per watcher);
    the answer carries ``logs``: a list of entries with exactly the output payload's keys
    (``watcher, pid, stream, time, data``), ``data`` being one line with its newline, sorted by
    ``time``. An unknown watcher name is errno 3 ``program <name> not found``.
    """
    return output_payload(watcher, pid, stream, line, when)


# --------------------------------------------------------------------------- stats


def stat_topic(watcher: str, pid: int | str | None = None) -> str:
    """Return a stats topic: ``stat.<watcher>`` or ``stat.<watcher>.<pid>`` (spec §3).

    ``watcher`` may also be ``circus`` (circusd's own processes) or ``sockets``.
    """
    return f"stat.{watcher}" if pid is None else f"stat.{watcher}.{pid}"


def parse_stat_topic(topic: bytes | str) -> tuple[str, str | None]:
    """Split a stats topic into (watcher, subtopic or None), splitting on the last dot.

    Raises:
        ProtocolError: if the topic does not start with ``stat.``.
    """
    text = topic.decode() if isinstance(topic, bytes) else topic
    if not text.startswith("stat.") or len(text) == 5:
        raise ProtocolError(f"not a stats topic: {text!r}", Errno.MESSAGE_ERROR)
    rest = text[5:]
    head, dot, tail = rest.rpartition(".")
    if dot and tail.isdigit():
        return head, tail
    return rest, None
