"""circusctl commands that read or change options: get, set, options, globaloptions."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from . import _format
from ._color import Palette
from ._convert import convert_set_value
from ._spec import CliCommand, UsageError, name_req, named, ok, waiting_flag

__all__ = ["COMMANDS", "parse_set"]


def _conf_get(p: argparse.ArgumentParser) -> None:
    name_req(p)
    p.add_argument("keys", nargs="+", metavar="KEY", help="option names")


def _conf_globaloptions(p: argparse.ArgumentParser) -> None:
    p.add_argument("option", nargs="?", metavar="KEY")


def _conf_set(p: argparse.ArgumentParser) -> None:
    name_req(p)
    p.add_argument("pairs", nargs="*", metavar="KEY VALUE")
    waiting_flag(p)


def parse_set(args: list[str]) -> argparse.Namespace:
    """``set`` values may start with '-' (``set w args -v``): only --waiting is an option."""
    waiting = False
    positional: list[str] = []
    rest = list(args)
    while rest:
        item = rest.pop(0)
        if item == "--":
            positional.extend(rest)
            break
        if item == "--waiting":
            waiting = True
        elif item in ("-h", "--help"):
            _SET.parser().parse_args(["--help"])
        else:
            positional.append(item)
    if not positional:
        raise UsageError("the following arguments are required: NAME KEY VALUE", "set", True)
    name, pairs = positional[0], positional[1:]
    if not pairs:
        raise UsageError("missing KEY VALUE after the watcher name", "set", True)
    if len(pairs) % 2:
        raise UsageError(f"missing the VALUE for {pairs[-1]!r}", "set", True)
    return argparse.Namespace(name=name, pairs=pairs, waiting=waiting)


def _build_set(ns: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    options = {}
    for key, value in zip(ns.pairs[::2], ns.pairs[1::2], strict=True):
        options[key] = convert_set_value(key, value)
    props: dict[str, Any] = {"name": ns.name, "options": options}
    if ns.waiting:
        props["waiting"] = True
    return "set", props


def _render_options(answer: Mapping[str, Any], ns: argparse.Namespace, palette: Palette) -> str:
    return _format.format_options(answer.get("options") or {})


def _render_kv(answer: Mapping[str, Any], ns: argparse.Namespace, palette: Palette) -> str:
    return _format.format_key_values(answer.get("options") or {})


_SET = CliCommand(
    "set",
    "change options of a watcher",
    "NAME KEY VALUE [KEY VALUE...] [--waiting]",
    "Change watcher options live, e.g. numprocesses 4, env A=1,B=2, "
    "hooks before_start:mod.func, stdout_stream.max_bytes 1000.",
    _conf_set,
    _build_set,
    ok,
    raw_args=True,
)

COMMANDS: tuple[CliCommand, ...] = (
    CliCommand(
        "get",
        "show some options of a watcher",
        "NAME KEY...",
        "Print the value of each option KEY of watcher NAME.",
        _conf_get,
        lambda ns: ("get", {"name": ns.name, "keys": ns.keys}),
        _render_kv,
    ),
    CliCommand(
        "globaloptions",
        "show the daemon's options (endpoints, check_delay)",
        "[KEY]",
        "Print the daemon's global options, or just KEY.",
        _conf_globaloptions,
        lambda ns: ("globaloptions", {"option": ns.option} if ns.option else {}),
        _render_kv,
    ),
    named("options", summary="show every option of a watcher", render=_render_options),
    _SET,
)
