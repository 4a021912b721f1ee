"""The table of control commands: names, properties, types, and what each answers.

Shapes follow ``spec/protocol.md`` §1.6 (Circus 0.19). Types are deliberately permissive
where the 0.19 ``circusctl`` sends quirky values (``kill`` sends ``pid`` and
``graceful_timeout`` as strings, ``signal`` sends ``signum`` as a name): a compatible daemon
must accept them and convert (checklist item 9 of the spec).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from ._errno import Errno
from .errors import ProtocolError

__all__ = ["COMMANDS", "CommandSpec", "Prop", "get_command", "validate_properties"]

# JSON type names used in the table, mapped to the Python types json.loads produces.
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "number": (int, float),
    "bool": (bool,),
    "object": (dict,),
    "list": (list,),
    "null": (type(None),),
}


@dataclass(frozen=True)
class Prop:
    """One property of a command.

    ``types`` are JSON type names (``str``, ``int``, ``number``, ``bool``, ``object``,
    ``list``, ``null``); a value is valid if it matches any of them (``bool`` never counts as
    ``int``/``number``). ``choices``, when set, lists the allowed values.
    """

    name: str
    types: tuple[str, ...]
    required: bool = False
    default: object = None
    choices: tuple[object, ...] = ()
    help: str = ""

    def accepts(self, value: object) -> bool:
        """Return True if ``value`` has one of this property's types (and is a valid choice)."""
        ok = False
        for type_name in self.types:
            py_types = _JSON_TYPES[type_name]
            if isinstance(value, bool) and bool not in py_types:
                continue
            if isinstance(value, py_types):
                ok = True
                break
        if ok and self.choices:
            ok = value in self.choices
        return ok


@dataclass(frozen=True)
class CommandSpec:
    """What one control command accepts and answers.

    ``waitable``: the command runs asynchronously on the daemon and honours ``waiting``
    (without it the daemon answers a bare ok immediately; spec §1.4). ``read_only``: never
    takes the arbiter-wide command lock (spec §1.5). ``control``: False for ``listen``, which
    is only valid on the pub/sub channel. ``reply_fields`` documents the answer's fields beyond
    ``status``/``time``/``id``. ``ours``: an extension that Circus 0.19 does not have.
    """

    name: str
    props: tuple[Prop, ...] = ()
    reply_fields: tuple[str, ...] = ()
    waitable: bool = False
    read_only: bool = False
    control: bool = True
    ours: bool = False
    summary: str = ""
    properties: Mapping[str, Prop] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "properties", MappingProxyType({p.name: p for p in self.props}))

    @property
    def required(self) -> tuple[str, ...]:
        """Names of the required properties, in table order."""
        return tuple(p.name for p in self.props if p.required)


_NAME = Prop("name", ("str",), help="watcher name")
_NAME_R = Prop("name", ("str",), required=True, help="watcher name")
_WAITING = Prop("waiting", ("bool",), default=False, help="answer only once done")
_MATCH = Prop(
    "match", ("str",), default="glob", choices=("simple", "glob", "regex"), help="name matching"
)
_PID = Prop("pid", ("int", "str"), help="process id (the 0.19 CLI sends a string)")
_SIGNUM = Prop("signum", ("int", "str"), help="signal number or name (HUP, SIGHUP, ...)")


_cmd = CommandSpec  # a short name for the table below


_TABLE: tuple[CommandSpec, ...] = (
    _cmd(
        "add",
        (
            _NAME_R,
            Prop("cmd", ("str",), required=True),
            Prop("args", ("str", "list", "null")),
            Prop("options", ("object",), default={}),
            Prop("start", ("bool",), default=False),
        ),
        waitable=True,
        summary="add a watcher",
    ),
    _cmd(
        "decr",
        (_NAME_R, Prop("nb", ("int",), default=1), _WAITING),
        ("numprocesses", "singleton"),
        waitable=True,
        summary="decrement the number of processes of a watcher",
    ),
    _cmd("dstats", (), ("info",), read_only=True, summary="stats of circusd itself"),
    _cmd(
        "get",
        (_NAME_R, Prop("keys", ("list",), required=True)),
        ("options",),
        read_only=True,
        summary="get the value of some watcher options",
    ),
    _cmd(
        "globaloptions",
        (Prop("option", ("str",)),),
        ("options",),
        read_only=True,
        summary="get the arbiter options",
    ),
    _cmd(
        "incr",
        (_NAME_R, Prop("nb", ("int",), default=1), _WAITING),
        ("numprocesses", "singleton"),
        waitable=True,
        summary="increment the number of processes of a watcher",
    ),
    _cmd("ipython", (), ("shell", "msg"), summary="open an IPython kernel inside circusd"),
    _cmd(
        "kill",
        (
            _NAME_R,
            _PID,
            _SIGNUM,
            Prop(
                "graceful_timeout", ("number", "str"), help="seconds (the 0.19 CLI sends a string)"
            ),
            _WAITING,
        ),
        waitable=True,
        summary="stop processes, SIGKILL after graceful_timeout",
    ),
    _cmd(
        "list",
        (_NAME,),
        ("watchers", "pids"),
        read_only=True,
        summary="list watchers, or the pids of one watcher",
    ),
    _cmd("listen", (), control=False, summary="subscribe to events (pub/sub socket only)"),
    _cmd("listsockets", (), ("sockets",), read_only=True, summary="list the sockets"),
    _cmd(
        "numprocesses",
        (_NAME,),
        ("numprocesses", "watcher_name"),
        read_only=True,
        summary="number of processes",
    ),
    _cmd("numwatchers", (), ("numwatchers",), read_only=True, summary="number of watchers"),
    _cmd("options", (_NAME_R,), ("options",), read_only=True, summary="all options of a watcher"),
    _cmd(
        "daemon-reexec",
        (),
        ("pid", "generation", "watchers", "processes"),
        ours=True,
        summary="re-exec circusd with the installed code, keeping its children",
    ),
    _cmd("quit", (_WAITING,), waitable=True, summary="stop everything and exit circusd"),
    _cmd(
        "reload",
        (
            _NAME,
            Prop("graceful", ("bool",), default=True),
            Prop("sequential", ("bool",), default=False),
            _WAITING,
        ),
        ("info",),
        waitable=True,
        summary="reload the arbiter or a watcher",
    ),
    _cmd("reloadconfig", (_WAITING,), waitable=True, summary="reload the configuration file"),
    _cmd(
        "restart",
        (_NAME, _MATCH, _WAITING),
        ("info",),
        waitable=True,
        summary="restart the arbiter or watchers",
    ),
    _cmd(
        "rm",
        (
            _NAME_R,
            Prop("nostop", ("bool",), default=False),
            _WAITING,
        ),
        waitable=True,
        summary="remove a watcher",
    ),
    _cmd(
        "set",
        (_NAME_R, Prop("options", ("object",), required=True), _WAITING),
        waitable=True,
        summary="set watcher options",
    ),
    _cmd(
        "signal",
        (
            _NAME_R,
            Prop("signum", ("int", "str"), required=True),
            _PID,
            Prop("childpid", ("int", "str")),
            Prop("children", ("bool",), default=False),
            Prop("recursive", ("bool",), default=False),
        ),
        summary="send a signal",
    ),
    _cmd(
        "start",
        (_NAME, _MATCH, _WAITING),
        ("info",),
        waitable=True,
        summary="start the arbiter or watchers",
    ),
    _cmd(
        "stats",
        (
            _NAME,
            Prop("process", ("int", "str")),
            Prop("extended", ("bool",), default=False),
        ),
        ("infos", "name", "info", "process"),
        read_only=True,
        summary="process information",
    ),
    _cmd("status", (_NAME,), ("statuses",), read_only=True, summary="status of watchers"),
    _cmd(
        "stop",
        (_NAME, _MATCH, _WAITING),
        ("info",),
        waitable=True,
        summary="stop the arbiter or watchers",
    ),
    # Ours: the last lines of output the daemon keeps in memory per watcher.
    _cmd(
        "logs",
        (
            Prop(
                "name", ("str", "list", "null"), help="watcher name or list of names; all if absent"
            ),
            Prop("lines", ("int",), default=20, help="last N lines per watcher"),
        ),
        ("logs",),
        read_only=True,
        ours=True,
        summary="last lines of watcher output",
    ),
)

COMMANDS: Mapping[str, CommandSpec] = MappingProxyType({c.name: c for c in _TABLE})
"""Every command a daemon understands, by lowercase name."""


# A reason quotes what the client sent; a 10 MB value must not come back as a 10 MB answer.
_QUOTE_MAX = 200


def _short(value: object) -> str:
    """``repr(value)``, cut to a readable length."""
    text = repr(value)
    if len(text) > _QUOTE_MAX:
        text = f"{text[:_QUOTE_MAX]}... ({len(text)} characters)"
    return text


def get_command(name: object) -> CommandSpec:
    """Return the spec of command ``name`` (case-insensitive, as the 0.19 daemon looks it up).

    Raises:
        ProtocolError: errno 2 ``unknown command: 'name'`` if there is no such command.
    """
    if not isinstance(name, str):
        raise ProtocolError("message invalid 'command' is not a string", Errno.MESSAGE_ERROR)
    spec = COMMANDS.get(name.lower())
    if spec is None:
        raise ProtocolError(f"unknown command: {_short(name)}", Errno.UNKNOWN_COMMAND)
    return spec


def validate_properties(command: str | CommandSpec, props: object) -> dict[str, object]:
    """Check ``props`` against the table and return them with defaults filled in.

    Unknown properties are kept (upstream ignores them). Reasons match the 0.19 daemon's
    wording (``message invalid 'X' is missing``).

    Raises:
        ProtocolError: errno 2 for an unknown command, errno 3 for a missing required
            property or a value of the wrong type.
    """
    spec = command if isinstance(command, CommandSpec) else get_command(command)
    if props is None:
        props = {}
    if not isinstance(props, dict):
        raise ProtocolError("message invalid 'properties' is not an object", Errno.MESSAGE_ERROR)
    result = dict(props)
    for prop in spec.props:
        if prop.name not in result:
            if prop.required:
                raise ProtocolError(
                    f"message invalid {prop.name!r} is missing", Errno.MESSAGE_ERROR
                )
            if prop.default is not None:
                default = prop.default
                result[prop.name] = dict(default) if isinstance(default, dict) else default
            continue
        value = result[prop.name]
        if value is None and not prop.required and "null" not in prop.types:
            # Absent-like: upstream treats an explicit null like a missing optional value.
            continue
        if not prop.accepts(value):
            expected = " or ".join(prop.types)
            if prop.choices:
                expected = " or ".join(repr(c) for c in prop.choices)
            raise ProtocolError(
                f"message invalid {prop.name!r}: expected {expected}, got {_short(value)}",
                Errno.MESSAGE_ERROR,
            )
    return result
