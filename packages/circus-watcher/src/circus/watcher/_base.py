"""The watcher's shared state and plumbing, common to its parts.

``Watcher`` is assembled from small mixins (spawning, stopping, settings), each in its own
module; this base declares the state they share and the helpers they all use: event
emission, hook calls, background tasks, the child environment and template values.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ._env import build_env
from ._events import EventHub
from ._flapping import FlappingDetector
from ._hooks import Hook, call_hook
from ._policy import RestartPolicy
from ._procs import ProcessFactory, ProcessLike
from ._values import WatcherOptions
from ._wids import WidPool

if TYPE_CHECKING:
    from ._flapping import Verdict
    from ._output import OutputPump

logger = logging.getLogger("circus.watcher")


class WatcherBase:
    """State shared by the watcher's parts (set up by ``Watcher.__init__``)."""

    name: str
    arbiter: Any
    sockets: dict[str, Any]
    settings: WatcherOptions
    _hooks: dict[str, Hook]
    _factory: ProcessFactory | None
    _processes: dict[int, ProcessLike]  # counted processes, oldest first
    _retiring: dict[int, ProcessLike]  # being ended by the watcher itself
    _exits: dict[int, asyncio.Future[int | None]]
    _exit_callback: Callable[[ProcessLike], None]
    _age_timers: dict[int, asyncio.TimerHandle]
    _respawn_timers: set[asyncio.TimerHandle]
    _pending: int  # replacements decided but not spawned yet
    _shortages: int  # spawns failed for want of resources in a row (the backoff's exponent)
    _tasks: set[asyncio.Task[Any]]
    _status: str
    _generation: int  # bumped by every stop/start: stale background work gives up
    _backoffs: set[asyncio.Future[None]]  # spawn retries waiting: a stop wakes them
    _lock: asyncio.Lock | None
    _wids: WidPool
    _events: EventHub
    _output: OutputPump
    _policy: RestartPolicy
    _flapping: FlappingDetector
    _flap_timer: asyncio.TimerHandle | None
    _refusal: bool
    _halted: bool  # a flapping verdict is waiting for its stop: respawn nothing meanwhile
    _demand_fds: list[int]
    _env: Mapping[str, str] | None
    _template: Mapping[str, str] | None

    @property
    def numprocesses(self) -> int:
        """The number of processes the watcher keeps running when active."""
        return int(self.settings.numprocesses)

    @property
    def pids(self) -> list[int]:
        """Pids of the watcher's counted processes, oldest first."""
        return list(self._processes)

    # Implemented by other parts; declared so each part reads on its own.
    async def _stop(self) -> list[int]:
        raise NotImplementedError

    async def _stop_from_inside(
        self, *, rearm: bool = False, generation: int | None = None
    ) -> None:
        raise NotImplementedError

    async def _flap(self, verdict: Verdict, generation: int) -> None:
        raise NotImplementedError

    async def _retire(
        self,
        procs: list[ProcessLike],
        *,
        signum: int | None = None,
        graceful_timeout: float | None = None,
    ) -> list[int]:
        raise NotImplementedError

    async def _spawn(self, generation: int | None = None) -> ProcessLike | None:
        raise NotImplementedError

    async def set_numprocesses(self, n: int) -> int:
        raise NotImplementedError

    async def reload(self, graceful: bool = True, sequential: bool = False) -> dict[str, Any]:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        raise NotImplementedError

    def _find(self, pid: int) -> ProcessLike:
        raise NotImplementedError

    async def _start(self) -> dict[str, list[int]]:
        raise NotImplementedError

    def _emit_reap(self, proc: ProcessLike) -> None:
        raise NotImplementedError

    async def _reap_with_hooks(self, proc: ProcessLike) -> None:
        raise NotImplementedError

    def _arm_on_demand(self) -> None:
        raise NotImplementedError

    def _disarm_on_demand(self) -> None:
        raise NotImplementedError

    @property
    def on_demand(self) -> bool:
        """Start only when one of ``sockets`` becomes readable."""
        return bool(self.settings.on_demand)

    def _emit(self, event: str, payload: dict[str, Any]) -> None:
        self._events.emit(event, payload)

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _spawn_task(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("watcher %s: background task failed", self.name, exc_info=task.exception())

    def _apply_policies(self) -> None:
        o = self.settings
        self._policy.respawn = o.respawn
        self._policy.success_exit_codes = o.success_exit_codes
        self._policy.backoff_initial = o.backoff_initial
        self._policy.backoff_factor = o.backoff_factor
        self._policy.backoff_max = o.backoff_max
        self._policy.backoff_reset = o.backoff_reset
        self._flapping.active = o.flapping.active
        self._flapping.attempts = o.flapping.attempts
        self._flapping.window = o.flapping.window
        self._flapping.retry_in = o.flapping.retry_in
        self._flapping.max_retry = o.flapping.max_retry

    async def _hook(self, name: str, **kwargs: Any) -> bool:
        hook = self._hooks.get(name)
        if hook is None:
            return True
        kwargs.update(watcher=self, arbiter=self.arbiter, hook_name=name)
        return await call_hook(hook, kwargs, self.settings.hook_timeout, self._emit)

    # Both caches are read-only views: every Process shares them instead of holding a copy.
    def _child_env(self) -> Mapping[str, str]:
        if self._env is None:
            o = self.settings
            self._env = MappingProxyType(
                build_env(
                    o.env,
                    copy_env=o.copy_env,
                    copy_path=o.copy_path,
                    virtualenv=o.virtualenv,
                    virtualenv_py_ver=o.virtualenv_py_ver,
                )
            )
        return self._env

    def _template_vars(self) -> Mapping[str, str]:
        if self._template is None:
            values: dict[str, str] = {}
            for key, value in self.options().items():
                if key == "env":
                    continue  # $(circus.env.X) is the process layer's, from the child env
                if isinstance(value, Mapping):
                    for sub, item in value.items():
                        values[f"{key}.{sub}"] = "" if item is None else str(item)
                else:
                    values[key] = "" if value is None else str(value)
            self._template = MappingProxyType(values)
        return self._template


def process_status(returncode: int | None) -> int | None:
    """A wait()-style status word for ``after_reap`` (upstream passes the raw status)."""
    if returncode is None:
        return None
    return -returncode if returncode < 0 else returncode << 8


def close_process(proc: ProcessLike) -> None:
    """Release a dead process's pipes and pidfd, whatever happens."""
    try:
        proc.close()
    except Exception:
        logger.debug("closing process %s failed", proc.pid, exc_info=True)
