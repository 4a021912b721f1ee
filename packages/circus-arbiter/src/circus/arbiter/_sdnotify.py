"""circusd under systemd: the sd_notify protocol, spoken to circusd's own supervisor.

When ``$NOTIFY_SOCKET`` is set (a ``Type=notify`` unit), circusd sends on that datagram
socket (a path, or ``@name`` in the abstract namespace):

* ``READY=1`` once every ``autostart`` watcher is started and its processes are ready (those
  with ``readiness``) or spawned (those without); a watcher that fails does not hold it back
  (its failure is in ``STATUS=`` and the log), so systemd never kills a daemon that serves;
* ``STATUS=`` a one-line summary (watchers active, processes, those not ready), sent again
  when a watcher event changes it, at most once a second;
* ``WATCHDOG=1`` every half of ``$WATCHDOG_USEC`` (unless ``$WATCHDOG_PID`` names another
  process), from a timer on the daemon's event loop: a loop that hangs stops the pings and
  systemd restarts circusd. Across a ``daemon-reexec`` the old image pings last thing before
  its exec, and the new one at once when it starts, then from a thread (:meth:`bridge`)
  until its loop serves (at most ``BRIDGE_LIMIT`` seconds): the new image's imports,
  config and hand-over, done before its loop pings, are never a gap systemd sees;
* ``RELOADING=1`` (with ``MONOTONIC_USEC=``) when ``reloadconfig`` or SIGHUP begins, and
  ``READY=1`` once it is applied;
* ``STOPPING=1`` as soon as the shutdown begins.

``EXTEND_TIMEOUT_USEC=`` goes with the first status (the ``readiness_timeout`` of every
autostart watcher with readiness, summed, as a chain of ``depends_on`` may wait for each in
turn) and with ``STOPPING=1`` (every running watcher's ``graceful_timeout``, summed, as
``depends_on`` stops them in turn), plus a margin: systemd's own start and stop timeouts then
never cut a start or stop that is going as configured.

The variables are removed from circusd's environment at once, so no child inherits them (a
worker with ``copy_env`` would otherwise be taken for circusd by systemd). A send never
blocks and never raises: a full or vanished socket costs one log line.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import MutableMapping
from typing import Any

__all__ = ["SystemdNotifier", "summary"]

log = logging.getLogger("circus.arbiter")

_VARIABLES = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
STATUS_INTERVAL = 1.0  # seconds between two STATUS= updates, at least
# seconds a new image pings from its bridge thread at most: one that does not serve by then
# is hung, and systemd's watchdog may act on it
BRIDGE_LIMIT = 60.0


def _address(value: str) -> str | None:
    """The ``sendto`` address of ``$NOTIFY_SOCKET`` (None: a form we cannot use)."""
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock: and relative paths are not for a host's process manager


class SystemdNotifier:
    """The sd_notify link of one circusd (see the module docstring).

    Args:
        address: ``$NOTIFY_SOCKET`` as systemd sets it.
        watchdog_usec: ``$WATCHDOG_USEC`` (0: no watchdog).
    """

    def __init__(self, address: str, watchdog_usec: int = 0) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._target = _address(address)
        self._sock: socket.socket | None = None
        self._failed = False
        self._last_status = ""
        self._status_at = 0.0
        self._status_timer: asyncio.TimerHandle | None = None
        self._arbiter: Any = None
        self._ready = False
        self._bridge: tuple[threading.Event, threading.Thread] | None = None

    @classmethod
    def from_environ(
        cls, environ: MutableMapping[str, str] | None = None, pid: int | None = None
    ) -> SystemdNotifier | None:
        """The notifier ``environ`` (default ``os.environ``) asks for, or None; the sd_notify
        variables are removed from ``environ`` either way."""
        env = os.environ if environ is None else environ
        values = {name: env.pop(name, None) for name in _VARIABLES}
        address = values["NOTIFY_SOCKET"]
        if not address:
            return None
        usec = 0
        watchdog_pid = values["WATCHDOG_PID"]
        me = os.getpid() if pid is None else pid
        if values["WATCHDOG_USEC"] and (not watchdog_pid or watchdog_pid == str(me)):
            try:
                usec = max(0, int(values["WATCHDOG_USEC"] or 0))
            except ValueError:
                log.warning(
                    "WATCHDOG_USEC=%r is not a number: no watchdog", values["WATCHDOG_USEC"]
                )
        notifier = cls(address, usec)
        if notifier._target is None:
            log.warning("NOTIFY_SOCKET=%r: only paths and @abstract names are supported", address)
            return None
        return notifier

    def environ(self) -> dict[str, str]:
        """The variables to give back to an image of circusd that replaces this one in the
        same pid (``daemon-reexec``), so it keeps speaking to systemd."""
        env = {"NOTIFY_SOCKET": self.address}
        if self.watchdog_usec:
            env["WATCHDOG_USEC"] = str(self.watchdog_usec)
            env["WATCHDOG_PID"] = str(os.getpid())
        return env

    # ------------------------------------------------------------------ sending

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (``KEY=value`` each) as one datagram; False when it was not sent."""
        if self._target is None:
            return False
        data = "\n".join(fields).encode("utf-8", "replace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)
            self._sock.sendto(data, self._target)
        except OSError as exc:
            if not self._failed:  # said once: a vanished systemd must not flood the log
                log.warning("sd_notify to %s failed: %s", self.address, exc)
            self._failed = True
            return False
        self._failed = False
        return True

    def ping(self) -> bool:
        """One ``WATCHDOG=1`` now; False when there is no watchdog or it was not sent."""
        return bool(self.watchdog_usec) and self.send("WATCHDOG=1")

    def bridge(self, limit: float = BRIDGE_LIMIT) -> None:
        """Ping now, then every half period from a thread of its own, until :meth:`unbridge`
        or for ``limit`` seconds: what a new image of circusd (``daemon-reexec``) does while
        it imports, loads its config and takes over its children, before its event loop can
        ping. Nothing without a watchdog."""
        if not self.watchdog_usec or self._target is None or self._bridge is not None:
            return
        stop = threading.Event()
        thread = threading.Thread(
            target=self._bridge_pings, args=(stop, limit), name="sd-watchdog-bridge", daemon=True
        )
        self._bridge = (stop, thread)
        thread.start()

    def _bridge_pings(self, stop: threading.Event, limit: float) -> None:
        # a socket of its own: the loop's may be in use meanwhile
        target = self._target
        assert target is not None
        interval = self.watchdog_usec / 2e6
        deadline = time.monotonic() + limit
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            while True:
                try:
                    sock.sendto(b"WATCHDOG=1", target)
                except OSError as exc:
                    log.debug("sd_notify watchdog ping to %s failed: %s", self.address, exc)
                if stop.wait(interval):
                    return
                if time.monotonic() >= deadline:
                    log.warning(
                        "not serving %.0f s after daemon-reexec: watchdog pings stop", limit
                    )
                    return

    def unbridge(self) -> None:
        """Stop the pings of :meth:`bridge` (the event loop's go on)."""
        if self._bridge is None:
            return
        stop, thread = self._bridge
        self._bridge = None
        stop.set()
        thread.join()

    def close(self) -> None:
        """Close the socket and forget pending updates."""
        self.unbridge()
        if self._status_timer is not None:
            self._status_timer.cancel()
            self._status_timer = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def reloading(self) -> None:
        """``reloadconfig`` begins: ``RELOADING=1`` with the monotonic clock, as systemd wants."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading the configuration")

    def reloaded(self) -> None:
        """``reloadconfig`` is done (applied or refused): ``READY=1`` and the summary."""
        self._last_status = self._summary()
        self.send("READY=1", f"STATUS={self._last_status}")

    # ------------------------------------------------------------------ the daemon's life

    def _summary(self) -> str:
        return summary(self._arbiter.watcher_set) if self._arbiter is not None else ""

    def changed(self, *_: Any) -> None:
        """A watcher event: send the new summary, at most once per ``STATUS_INTERVAL``."""
        if self._status_timer is not None or not self._ready:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # an event emitted once the loop is gone: nothing to tell
            return
        delay = max(0.0, self._status_at + STATUS_INTERVAL - loop.time())
        self._status_timer = loop.call_later(delay, self._send_status)

    def _send_status(self) -> None:
        self._status_timer = None
        self._status_at = asyncio.get_running_loop().time()
        text = self._summary()
        if text != self._last_status:
            self._last_status = text
            self.send(f"STATUS={text}")

    async def run(self, arbiter: Any, started: asyncio.Event) -> None:
        """Speak for ``arbiter`` until cancelled: watchdog pings from now on, ``READY=1`` once
        ``started`` is set and the autostart watchers are ready, ``STOPPING=1`` at shutdown."""
        self._arbiter = arbiter
        tasks = [asyncio.ensure_future(self._lifecycle(arbiter, started))]
        if self.watchdog_usec:
            tasks.append(asyncio.ensure_future(self._watchdog()))
        if self._bridge is not None:
            tasks.append(asyncio.ensure_future(self._end_bridge(started)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()

    async def _watchdog(self) -> None:
        # Half the period, as sd_watchdog_enabled(3) advises; a late tick still pings: the
        # loop is alive again, which is what systemd asks.
        interval = self.watchdog_usec / 2e6
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(interval)

    async def _end_bridge(self, started: asyncio.Event) -> None:
        await started.wait()  # serving: the loop's pings are enough from now on
        self.unbridge()

    async def _lifecycle(self, arbiter: Any, started: asyncio.Event) -> None:
        watchers = arbiter.watcher_set
        shut = asyncio.ensure_future(watchers.wait_shut())
        try:
            self.send("STATUS=starting the watchers", *_extend(_start_budget(arbiter)))
            up = asyncio.ensure_future(self._until_up(started, watchers))
            await asyncio.wait({up, shut}, return_when=asyncio.FIRST_COMPLETED)
            if not shut.done():
                self._ready = True
                self._last_status = self._summary()
                self.send("READY=1", f"STATUS={self._last_status}")
                await shut
            else:
                up.cancel()
            self._ready = False
            budget = sum(
                float(getattr(w, "graceful_timeout", 30.0) or 0.0)
                for w in watchers.ordered()
                if not w.is_stopped()
            )
            self.send("STOPPING=1", "STATUS=stopping the watchers", *_extend(budget))
        finally:
            shut.cancel()

    async def _until_up(self, started: asyncio.Event, watchers: Any) -> None:
        await started.wait()
        waits = []
        for watcher in watchers.ordered():
            wait = getattr(watcher, "wait_ready", None)
            readiness = getattr(watcher, "has_readiness", False)
            if wait is not None and readiness and not watcher.is_stopped():
                waits.append(wait(None))
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, Exception):
                log.warning("not every process is ready: %s", outcome)


_MARGIN = 30.0  # seconds added to a start or stop budget


def _extend(seconds: float) -> tuple[str, ...]:
    """``EXTEND_TIMEOUT_USEC=`` for ``seconds`` of work plus a margin (none for no work)."""
    return (f"EXTEND_TIMEOUT_USEC={int((seconds + _MARGIN) * 1e6)}",) if seconds > 0 else ()


def _start_budget(arbiter: Any) -> float:
    """The ``readiness_timeout`` of every autostart watcher with readiness in the config."""
    total = 0.0
    for cfg in getattr(getattr(arbiter, "loaded_config", None), "watchers", ()):
        options = cfg.options
        if options.get("readiness") and cfg.autostart:
            try:
                total += float(options.get("readiness_timeout") or 30.0)
            except (TypeError, ValueError):
                total += 30.0
    return total


def summary(watchers: Any) -> str:
    """One line for ``STATUS=``: watchers active out of all, processes, those not ready."""
    active = total = processes = not_ready = 0
    for watcher in watchers.ordered():
        total += 1
        if watcher.status() == "active":
            active += 1
        pids = list(watcher.pids)
        processes += len(pids)
        if getattr(watcher, "has_readiness", False):
            for pid in pids:
                try:
                    state = watcher.health(pid)["state"]
                except Exception:
                    continue
                if state != "ready":
                    not_ready += 1
    text = f"{active}/{total} watchers active, {processes} processes"
    if not_ready:
        text += f", {not_ready} not ready"
    return text
