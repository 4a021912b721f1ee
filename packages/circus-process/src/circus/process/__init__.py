"""circus.process: one supervised child process.

Spawn (env, templating, uid/gid, rlimits, umask, cwd, fd hygiene, own session), event-driven
exit detection, graceful tree stop, psutil info, and fast output streams. See the README.
"""

from __future__ import annotations

from . import streams
from ._attach import (
    UNKNOWN_RETURNCODE,
    boot_id,
    claim_cgroup,
    process_is,
    process_start_time,
    reopen_pipe,
    sibling_leaves,
    take_socket,
)
from ._cgroup import (
    release_tree_tracking,
    resume_tree_tracking,
    set_tree_tracking,
    tree_tracking,
    tree_tracking_reason,
)
from ._children import children_of, is_child_of
from ._cpus import usable_cpus
from ._errors import ProcessError, ProcessGoneError, ProcessStateError, SpawnError, StreamError
from ._fdlimit import fd_reserve, free_fds, raise_nofile_limit, set_fd_reserve
from ._info import INFO_KEYS, bytes2human, get_info
from ._process import DEAD_OR_ZOMBIE, OTHER, RUNNING, UNEXISTING, Process
from ._redirector import Observer, OutputRedirector
from ._safepath import dir_is_private, open_file, open_in, open_parent
from ._spawn import DEFAULT_SPAWN_THREAD_FROM, set_spawn_thread, spawn_thread
from ._subreaper import (
    adopted_orphans,
    disable_subreaper,
    enable_subreaper,
    is_subreaper,
    reap_orphans,
)
from ._tree import ProcessTree
from ._waiting import WaitingOrphans, reap_waiting_orphans

__all__ = [
    "DEAD_OR_ZOMBIE",
    "DEFAULT_SPAWN_THREAD_FROM",
    "INFO_KEYS",
    "OTHER",
    "RUNNING",
    "UNEXISTING",
    "Observer",
    "OutputRedirector",
    "Process",
    "ProcessError",
    "ProcessGoneError",
    "ProcessStateError",
    "ProcessTree",
    "SpawnError",
    "StreamError",
    "UNKNOWN_RETURNCODE",
    "WaitingOrphans",
    "adopted_orphans",
    "boot_id",
    "bytes2human",
    "children_of",
    "claim_cgroup",
    "dir_is_private",
    "disable_subreaper",
    "enable_subreaper",
    "fd_reserve",
    "free_fds",
    "get_info",
    "is_child_of",
    "is_subreaper",
    "open_file",
    "open_in",
    "open_parent",
    "process_is",
    "process_start_time",
    "raise_nofile_limit",
    "reap_orphans",
    "reap_waiting_orphans",
    "reopen_pipe",
    "release_tree_tracking",
    "resume_tree_tracking",
    "set_fd_reserve",
    "set_spawn_thread",
    "set_tree_tracking",
    "sibling_leaves",
    "spawn_thread",
    "usable_cpus",
    "streams",
    "take_socket",
    "tree_tracking",
    "tree_tracking_reason",
]
