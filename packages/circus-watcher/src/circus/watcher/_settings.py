"""Options at run time (``options``, ``get_opt``, ``set_opt``) and per-process stats."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from ._base import WatcherBase
from ._hooks import resolve_all
from ._options import OPTIONS, SETTABLE_PREFIXES, Effect, convert, fold, not_settable, unknown
from ._procs import ProcessLike


class SettingsMixin(WatcherBase):
    """Option introspection and changes, stats."""

    def options(self) -> dict[str, Any]:
        """Every option value, as upstream's ``options`` command answers (+ ours)."""
        o = self.settings
        result: dict[str, Any] = {}
        for name, spec in OPTIONS.items():
            if spec.listed:
                value = o.get(name)
                result[name] = sorted(value) if isinstance(value, frozenset) else value
        result["env"] = dict(o.env)
        for stream in ("stdout_stream", "stderr_stream"):
            conf = o.get(stream)
            if isinstance(conf, Mapping):
                result[f"{stream}_conf"] = {k: v for k, v in conf.items() if k != "class"}
            else:
                result[f"{stream}_conf"] = None
        for name, value in o.rlimits.items():
            result[f"rlimit_{name}"] = value
        result.update(o.custom)
        return result

    def get_opt(self, key: str) -> Any:
        """One option's value (``hooks``, ``rlimits``, stream options included).

        Raises:
            UnknownOptionError: no such option.
        """
        if key == "hooks":
            return {name: hook.spec for name, hook in self._hooks.items()}
        if key in OPTIONS and not OPTIONS[key].listed:
            value = self.settings.get(key)
            return dict(value) if isinstance(value, Mapping) else value
        if key.startswith("hooks."):
            hook = self._hooks.get(key[len("hooks.") :])
            return hook.spec if hook else None
        if key.startswith(("stdout_stream.", "stderr_stream.")):
            head, _, tail = key.partition(".")
            conf = self.settings.get(head)
            return conf.get(tail) if isinstance(conf, Mapping) else None
        options = self.options()
        if key in options:
            return options[key]
        if key.startswith("rlimit_"):
            return None
        raise unknown(key)

    async def set_opt(self, key: str, value: Any) -> None:
        """Change one option at run time (``set``); emits ``updated``.

        What it costs is the option's :attr:`~circus.watcher.OptionSpec.effect`: ``cmd, args,
        working_dir, uid, gid, shell, env, max_age, max_age_variance`` gracefully reload a
        running watcher, as upstream, and so does any stream change (upstream: only a first
        stream); ``numprocesses`` resizes it; the others apply to processes spawned from
        then on.

        Raises:
            UnknownOptionError: no such option, or one that cannot change at run time.
            OptionError: bad value.
        """
        folded = fold({key: value})
        if key in self.settings.custom and key not in OPTIONS:
            self.settings = self.settings.with_custom(key, value)
            self._template = None
            self._emit("updated", {"time": time.time()})
            return
        ((name, raw),) = folded.items()
        spec = OPTIONS.get(name)
        if spec is None:
            raise unknown(key)
        if not spec.settable and not key.startswith(SETTABLE_PREFIXES):
            raise not_settable(key)
        current = self.settings.get(name)
        if key != name and isinstance(raw, Mapping):  # a prefixed key merges into the mapping
            raw = {**(current if isinstance(current, Mapping) else {}), **raw}
        new_value = convert(name, raw)
        if spec.effect is Effect.RESIZE:
            await self.set_numprocesses(new_value)
            self._emit("updated", {"time": time.time()})
            return
        candidate = self.settings.replace(name, new_value)
        hooks = resolve_all(candidate.hooks) if name == "hooks" else self._hooks
        async with self._get_lock():
            self.settings = candidate
            self._hooks = hooks
            self._env = None
            self._template = None
            self._apply_policies()
        self._emit("updated", {"time": time.time()})
        if spec.effect is Effect.RELOAD and self._status == "active":
            await self.reload(graceful=True)

    def process_info(self, pid: int) -> Any:
        """Upstream's per-process info dict (with ``wid``, ``started``, ``age``), or its
        "No such process (stopped?)" string for a process that vanished meanwhile."""
        return _info(self._find(pid))

    def info(self) -> dict[int, Any]:
        """``{pid: info dict}`` for every process (a vanished one: upstream's string)."""
        return {pid: _info(proc) for pid, proc in list(self._processes.items())}

    async def stats(self, extended: bool = False) -> dict[int, Any]:
        """Like :meth:`info`; with ``extended`` each dict also goes through ``extended_stats``.

        The psutil and /proc reads run in a worker thread: with many processes, or on a host
        crowded with unrelated ones, they take far longer than the loop may be held.
        """
        procs = list(self._processes.items())  # the table is read on the loop only
        result = await asyncio.to_thread(_infos, procs)
        if extended and "extended_stats" in self._hooks:
            for pid, stats in result.items():
                if isinstance(stats, dict):
                    await self._hook("extended_stats", pid=pid, stats=stats)
        return result

    def summary(self) -> dict[str, Any]:
        """The per-watcher aggregate of upstream's stats channel: ``pid`` (list), ``cpu``
        (mean %), ``mem`` (sum %), ``age`` (max s); ``"N/A"`` when any value is."""
        infos = [info for info in self.info().values() if isinstance(info, Mapping)]
        result: dict[str, Any] = {"pid": [info.get("pid") for info in infos]}
        combiners: tuple[tuple[str, Callable[[list[float]], float]], ...] = (
            ("cpu", _mean),
            ("mem", sum),
            ("age", max),
        )
        for key, combine in combiners:
            raw = [info.get(key) for info in infos]
            values = [float(v) for v in raw if isinstance(v, int | float)]
            if len(values) != len(raw):
                result[key] = "N/A"
            else:
                result[key] = combine(values) if values else 0
        return result


def _infos(procs: list[tuple[int, ProcessLike]]) -> dict[int, Any]:
    return {pid: _info(proc) for pid, proc in procs}


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


_GONE = "No such process (stopped?)"  # upstream's answer for a vanished process


def _info(proc: ProcessLike) -> Any:
    try:
        raw = proc.info()
    except Exception:  # psutil's NoSuchProcess & co, whatever the process layer lets through
        return _GONE
    if not isinstance(raw, Mapping):
        return raw  # the process layer's own "vanished" string
    data = dict(raw)
    data.setdefault("wid", proc.wid)
    data.setdefault("started", proc.started)
    data.setdefault("age", time.time() - proc.started)
    return data
