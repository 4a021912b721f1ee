"""Readiness and liveness of a watcher's processes (README "Readiness and liveness").

Per process: ``starting`` from its spawn until its readiness probe succeeds (``ready``), or
``unready`` when ``readiness_timeout`` passes first; a ready process whose liveness fails
becomes ``unhealthy``. An unready or unhealthy process is ended through the watcher's normal
stop path (stop signal, ``graceful_timeout``, SIGKILL of its tree) and its end is then
counted as a failed exit: the restart policy, the backoff and the flapping detector apply,
as for a crash. Events: ``ready``, ``unready`` and ``unhealthy`` (with ``reason``).

Costs: nothing at all without ``readiness``, ``liveness`` or ``watchdog_sec``. Otherwise one
timer per process (readiness deadline, next liveness probe, watchdog deadline) and, while a
probe runs, one task; a ``notify`` process adds its socket to the loop's selector.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._errors import NotReady, ProcessNotFoundError
from ._limits import MAX_SECONDS
from ._probes import ProbeSpec, parse_probe, run_probe
from ._procs import ProcessLike

if TYPE_CHECKING:
    from ._notify import NotifyChannel, NotifyDir
    from ._watcher import Watcher

__all__ = ["HealthMonitor", "ProcessHealth"]

logger = logging.getLogger("circus.watcher")

STARTING, READY, UNREADY, UNHEALTHY = "starting", "ready", "unready", "unhealthy"
_FIRST_RETRY = 0.05  # readiness probe retries: 50 ms doubling up to 1 s
_MAX_RETRY = 1.0
_MAX_ATTEMPT = 5.0  # one readiness probe attempt waits at most this long


class ProcessHealth:
    """The health of one process (``state``, ``status_text``, ``since``) and its timers."""

    __slots__ = (
        "proc", "state", "status_text", "since", "reason", "waiter", "channel", "timer",
        "task", "failures", "last_watchdog", "readiness", "liveness", "watchdog", "deadline",
        "extended",
    )  # fmt: skip

    def __init__(self, proc: ProcessLike) -> None:
        self.proc = proc
        self.state = STARTING
        self.status_text = ""
        self.since = time.time()
        self.reason = ""
        self.waiter: asyncio.Future[str | None] | None = None
        self.channel: NotifyChannel | None = None
        self.timer: asyncio.TimerHandle | None = None  # readiness deadline or next liveness
        self.task: asyncio.Task[Any] | None = None  # a probe running
        self.failures = 0
        self.last_watchdog = 0.0
        self.readiness: ProbeSpec | None = None
        self.liveness: ProbeSpec | None = None
        self.watchdog = 0.0  # seconds between WATCHDOG=1, 0 = none
        self.deadline = 0.0  # loop time by which a starting process must be ready
        self.extended = False  # the process moved the deadline (EXTEND_TIMEOUT_USEC)

    def as_dict(self) -> dict[str, Any]:
        """``{"state", "status_text", "since"}``."""
        return {"state": self.state, "status_text": self.status_text, "since": self.since}

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def settle(self, reason: str | None) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(reason)


class HealthMonitor:
    """Readiness and liveness of every process of one watcher."""

    def __init__(self, watcher: Watcher) -> None:
        self._w = watcher
        self._procs: dict[int, ProcessHealth] = {}
        self._dir: NotifyDir | None = None  # made when a process first needs a socket
        self._pending: NotifyChannel | None = None  # made for the spawn under way
        self._gone_cb = self._gone

    # ------------------------------------------------------------------ configuration

    @property
    def configured(self) -> bool:
        """Whether readiness, liveness or a watchdog is configured."""
        o = self._w.settings
        return bool(o.readiness or o.liveness or o.watchdog_sec)

    @property
    def has_readiness(self) -> bool:
        """Whether processes must prove they are ready."""
        return bool(self._w.settings.readiness)

    def _watchdog(self) -> float:
        o = self._w.settings
        if o.watchdog_sec:
            return float(o.watchdog_sec)
        if o.liveness and o.liveness.strip().lower() == "notify":
            return float(o.liveness_interval)
        return 0.0

    def _uses_notify(self) -> bool:
        o = self._w.settings
        readiness = (o.readiness or "").strip().lower()
        return readiness == "notify" or self._watchdog() > 0

    def spawn_env(self) -> dict[str, str]:
        """Extra environment of the process about to be spawned (``NOTIFY_SOCKET``,
        ``WATCHDOG_USEC``); opens its notify socket, attached by :meth:`track`.

        Raises:
            OSError: the socket cannot be made (the spawn fails as any spawn would).
        """
        self.drop_pending()
        if not self.configured or not self._uses_notify():
            return {}
        if self._dir is None:
            from ._notify import NotifyDir

            self._dir = NotifyDir()
        channel = self._dir.channel(_uid_of(self._w.settings.uid))
        self._pending = channel
        env = channel.env
        watchdog = self._watchdog()
        if watchdog > 0:
            env["WATCHDOG_USEC"] = str(int(watchdog * 1_000_000))
        return env

    def drop_pending(self) -> None:
        """Close the socket of a spawn that failed."""
        channel, self._pending = self._pending, None
        if channel is not None:
            channel.close()

    # ------------------------------------------------------------------ per process

    def track(self, proc: ProcessLike) -> None:
        """Follow a newly spawned process (after its ``spawn`` event)."""
        channel, self._pending = self._pending, None
        if not self.configured:
            if channel is not None:
                channel.close()
            return
        ph = ProcessHealth(proc)
        self._procs[proc.pid] = ph
        proc.add_exit_callback(self._gone_cb)
        o = self._w.settings
        ph.watchdog = self._watchdog()
        ph.channel = channel  # owned by the process from now on: closed when it goes
        try:
            if o.readiness:
                ph.readiness = parse_probe(self._render(o.readiness, proc))
            live = (o.liveness or "").strip()
            if live and live.lower() != "notify":
                ph.liveness = parse_probe(self._render(live, proc))
        except ValueError as exc:
            self._fail(ph, UNREADY, f"bad probe: {exc}")
            return
        if channel is not None:
            leaf = None
            path = getattr(proc, "cgroup", None)
            if isinstance(path, str) and path:  # a leaf of its own (stop_children)
                from ._notify import cgroup_of

                leaf = cgroup_of(proc.pid)
                if not leaf or leaf == "/" or not path.endswith(leaf):
                    leaf = None  # not (or not yet) in its leaf: trust its tree only
            channel.attach(proc.pid, lambda sender, fields: self._message(ph, fields), leaf)
        if ph.readiness is None:
            self._became_ready(ph, emit=False)
            return
        loop = asyncio.get_running_loop()
        ph.deadline = loop.time() + o.readiness_timeout
        ph.timer = loop.call_at(ph.deadline, self._deadline, ph)
        if ph.readiness.kind != "notify":
            ph.task = loop.create_task(self._probe_ready(ph, loop.time() + o.readiness_timeout))

    def adopted(self, proc: ProcessLike) -> None:
        """Follow a process taken in already running (``Watcher.adopt``): it counts as ready
        (it was serving), and its tcp/http/exec liveness probes resume. A notify watchdog
        cannot: its ``$NOTIFY_SOCKET`` belonged to the daemon that spawned it."""
        if not self.configured or proc.pid in self._procs:
            return
        ph = ProcessHealth(proc)
        self._procs[proc.pid] = ph
        proc.add_exit_callback(self._gone_cb)
        live = (self._w.settings.liveness or "").strip()
        if live and live.lower() != "notify":
            try:
                ph.liveness = parse_probe(self._render(live, proc))
            except ValueError as exc:
                logger.warning("watcher %s: bad liveness probe: %s", self._w.name, exc)
        self._became_ready(ph, emit=False)

    def _render(self, text: str, proc: ProcessLike) -> str:
        from ._probes import is_template

        if not is_template(text):
            return text
        from circus.process._template import substitute

        w = self._w
        sockets = {name: _address(value) for name, value in w.sockets.items()}
        return substitute(
            text,
            wid=proc.wid,
            env=w._inputs.env(),
            sockets=sockets,  # type: ignore[arg-type]  # addresses, not fds, in a probe
            template_vars=w._inputs.template(),
        )

    def _gone(self, proc: Any) -> None:
        ph = self._procs.pop(proc.pid, None)
        if ph is None:
            return
        ph.cancel()
        if ph.channel is not None:
            ph.channel.close()
            ph.channel = None
        if ph.state == STARTING:
            ph.settle(f"exited with {proc.returncode} before it was ready")
        elif ph.state in (UNREADY, UNHEALTHY):
            ph.settle(ph.reason)

    def close(self) -> None:
        """Forget every process (the watcher stopped; their exits were seen already)."""
        for ph in list(self._procs.values()):
            self._gone(ph.proc)
        self.drop_pending()

    # ------------------------------------------------------------------ readiness

    def _message(self, ph: ProcessHealth, fields: dict[str, str]) -> None:
        if ph.proc.pid not in self._procs:
            return
        if "STATUS" in fields:
            ph.status_text = fields["STATUS"]
        if fields.get("READY") == "1" and ph.state == STARTING:
            self._became_ready(ph)
        elif "EXTEND_TIMEOUT_USEC" in fields and ph.state == STARTING:
            self._extend(ph, fields["EXTEND_TIMEOUT_USEC"])
        watchdog = fields.get("WATCHDOG")
        if watchdog == "1":
            ph.last_watchdog = asyncio.get_running_loop().time()
        elif watchdog == "trigger" and ph.state == READY and ph.watchdog > 0:
            self._fail(ph, UNHEALTHY, "the process asked for it (WATCHDOG=trigger)")

    def _extend(self, ph: ProcessHealth, text: str) -> None:
        """``EXTEND_TIMEOUT_USEC=N`` (systemd's): ready within N µs from now, if that is later
        than the current deadline (never earlier; at most a year)."""
        if not text.isdigit() or len(text) > 15 or ph.timer is None:
            return
        loop = asyncio.get_running_loop()
        wanted = loop.time() + min(int(text) / 1_000_000, MAX_SECONDS)
        if wanted > ph.deadline:
            ph.timer.cancel()
            ph.deadline = wanted
            ph.extended = True
            ph.timer = loop.call_at(wanted, self._deadline, ph)

    async def _probe_ready(self, ph: ProcessHealth, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        delay = _FIRST_RETRY
        assert ph.readiness is not None
        while True:
            left = deadline - loop.time()
            if left <= 0:
                return  # the deadline timer says it
            reason = await self._run(ph, ph.readiness, min(left, _MAX_ATTEMPT))
            if reason is None:
                ph.task = None
                if ph.state == STARTING:
                    self._became_ready(ph)
                return
            ph.reason = reason
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, _MAX_RETRY)

    def _deadline(self, ph: ProcessHealth) -> None:
        ph.timer = None
        if ph.state != STARTING or ph.proc.pid not in self._procs:
            return
        timeout = self._w.settings.readiness_timeout
        last = f" (last probe: {ph.reason})" if ph.reason else ""
        extended = " and the delays it asked for (EXTEND_TIMEOUT_USEC)" if ph.extended else ""
        self._fail(ph, UNREADY, f"not ready after {timeout:g} s{extended}{last}")

    def _became_ready(self, ph: ProcessHealth, emit: bool = True) -> None:
        ph.cancel()
        ph.state = READY
        ph.since = time.time()
        ph.reason = ""
        ph.settle(None)
        if emit:
            self._w._emit("ready", {"process_pid": ph.proc.pid, "process_id": ph.proc.wid})
        self._arm_liveness(ph, first=True)

    # ------------------------------------------------------------------ liveness

    def _arm_liveness(self, ph: ProcessHealth, first: bool = False) -> None:
        loop = asyncio.get_running_loop()
        o = self._w.settings
        if ph.watchdog > 0:
            ph.last_watchdog = loop.time() if first else ph.last_watchdog
            ph.timer = loop.call_later(ph.watchdog, self._watchdog_due, ph)
        elif ph.liveness is not None:
            interval = o.liveness_interval
            # the first probe of each process at a random point of its interval: 1,000
            # processes started together are not probed together forever after
            delay = random.uniform(0.5, 1.0) * interval if first else interval
            ph.timer = loop.call_later(delay, self._liveness_due, ph)

    def _watchdog_due(self, ph: ProcessHealth) -> None:
        ph.timer = None
        if ph.state != READY or ph.proc.pid not in self._procs:
            return
        loop = asyncio.get_running_loop()
        silent = loop.time() - ph.last_watchdog
        if silent >= ph.watchdog:
            self._fail(ph, UNHEALTHY, f"no WATCHDOG=1 for {silent:.1f} s (watchdog_sec)")
            return
        ph.timer = loop.call_later(ph.watchdog - silent, self._watchdog_due, ph)

    def _liveness_due(self, ph: ProcessHealth) -> None:
        ph.timer = None
        if ph.state == READY and ph.proc.pid in self._procs and ph.task is None:
            ph.task = asyncio.get_running_loop().create_task(self._probe_live(ph))

    async def _probe_live(self, ph: ProcessHealth) -> None:
        o = self._w.settings
        assert ph.liveness is not None
        reason = await self._run(ph, ph.liveness, o.liveness_timeout)
        ph.task = None
        if ph.state != READY or ph.proc.pid not in self._procs:
            return
        if reason is None:
            ph.failures = 0
        else:
            ph.failures += 1
            ph.reason = reason
            if ph.failures >= o.liveness_failures:
                self._fail(ph, UNHEALTHY, f"{ph.failures} liveness probes failed: {reason}")
                return
        self._arm_liveness(ph)

    async def _run(self, ph: ProcessHealth, spec: ProbeSpec, limit: float) -> str | None:
        w = self._w
        o = w.settings
        if spec.kind != "exec":
            return await run_probe(spec, timeout=limit)
        env = {**w._inputs.env(), "CIRCUS_PID": str(ph.proc.pid), "CIRCUS_WID": str(ph.proc.wid)}
        return await run_probe(
            spec, timeout=limit, env=env, cwd=o.working_dir, uid=o.uid, gid=o.gid
        )

    # ------------------------------------------------------------------ failures

    def _fail(self, ph: ProcessHealth, state: str, reason: str) -> None:
        ph.cancel()
        if ph.proc.pid not in self._w._procs:
            return  # already being ended (stop, decr, reload): nothing to report
        ph.state = state
        ph.since = time.time()
        ph.reason = reason
        ph.settle(reason)
        proc = ph.proc
        logger.warning("watcher %s: process %d %s: %s", self._w.name, proc.pid, state, reason)
        self._w._emit(state, {"process_pid": proc.pid, "process_id": proc.wid, "reason": reason})
        w = self._w
        w._tasks.run(self._replace(proc, w._life.generation))

    async def _replace(self, proc: ProcessLike, generation: int) -> None:
        """End ``proc`` gracefully, then count its end as a failed exit (policy, backoff,
        flapping) and replace it as a crash would be."""
        w = self._w
        # under the lock: a stop meanwhile either comes first (and ends the process itself)
        # or waits for this one to be ended, never leaving it half-retired behind it
        async with w._get_lock():
            if proc.pid not in w._procs or generation != w._life.generation:
                return
            await w._stopper.retire([proc])
            if generation == w._life.generation:
                w._spawner.after_failure(proc)

    # ------------------------------------------------------------------ queries

    def health(self, pid: int) -> dict[str, Any]:
        """``{"state", "status_text", "since"}`` of process ``pid``.

        Raises:
            ProcessNotFoundError: not a process of the watcher.
        """
        ph = self._procs.get(pid)
        if ph is not None:
            return ph.as_dict()
        proc = self._w._procs.get(pid)
        if proc is None:
            raise ProcessNotFoundError(self._w.name, pid)
        return {"state": READY, "status_text": "", "since": proc.started}

    def extend(self, pid: int, info: Any) -> Any:
        """``info`` with ``health`` and ``status_text`` when health is configured."""
        if not isinstance(info, Mapping) or not self.configured:
            return info
        ph = self._procs.get(pid)
        data = dict(info)
        data["health"] = ph.state if ph is not None else READY
        data["status_text"] = ph.status_text if ph is not None else ""
        return data

    async def wait_ready(
        self,
        pids: Iterable[int] | None,
        timeout: float | None,  # noqa: ASYNC109 - the API's name (interfaces)
    ) -> None:
        """See :meth:`Watcher.wait_ready`."""
        w = self._w
        targets = list(w._procs.counted) if pids is None else [int(pid) for pid in pids]
        reasons: dict[int, str] = {}
        waits: dict[int, asyncio.Future[str | None]] = {}
        loop = asyncio.get_running_loop()
        for pid in targets:
            ph = self._procs.get(pid)
            if ph is None:
                if pid not in w._procs:
                    reasons[pid] = "not a running process of the watcher"
            elif ph.state in (UNREADY, UNHEALTHY):
                reasons[pid] = ph.reason
            elif ph.state == STARTING:
                if ph.waiter is None:
                    ph.waiter = loop.create_future()
                waits[pid] = ph.waiter
        if waits:
            await asyncio.wait(list(waits.values()), timeout=timeout)
            for pid, fut in waits.items():
                if not fut.done():
                    reasons[pid] = f"not ready after waiting {timeout:g} s"
                elif fut.result() is not None:
                    reasons[pid] = str(fut.result())
        if reasons:
            raise NotReady(w.name, reasons)


def _uid_of(uid: int | str | None) -> int | None:
    """The numeric uid the processes run as (None: the daemon's)."""
    if uid is None or isinstance(uid, int):
        return uid
    if uid.isdigit():
        return int(uid)
    import pwd

    try:
        return pwd.getpwnam(uid).pw_uid
    except KeyError:
        return None  # the spawn itself fails with the process layer's message


def _address(value: Any) -> str:
    """``host:port`` (or a unix path) of one of the daemon's sockets (an fd or an object)."""
    sock: socket.socket | None = None
    try:
        if hasattr(value, "getsockname"):
            name = value.getsockname()
        else:
            sock = socket.socket(fileno=int(value))
            name = sock.getsockname()
    except (OSError, TypeError, ValueError):
        return ""
    finally:
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.detach()
    if isinstance(name, tuple):
        host = str(name[0])
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"[{host}]:{name[1]}" if ":" in host else f"{host}:{name[1]}"
    return name.decode() if isinstance(name, bytes) else str(name)
