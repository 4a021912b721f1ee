"""Load Circus 0.19 INI config files into validated, immutable data.

``load_config(path)`` reads the main file and its includes (spec/config.md, all of it) and
returns a :class:`CircusConfig`: ``.circus`` (a :class:`DaemonConfig`), ``.watchers``
(:class:`WatcherConfig`, whose ``kwargs`` feed ``circus.watcher.Watcher(**kwargs)``),
``.sockets`` (:class:`SocketConfig`, ``kwargs`` for ``circus.sockets.CircusSocket``),
``.plugins`` (:class:`PluginConfig`) and ``.sources`` (the files read).
``diff_configs(old, new)`` says what ``reloadconfig`` must add, remove or re-create.
Nothing here imports zmq, tornado, asyncio, the sockets layer or the watcher beyond its
ceilings table (``circus.watcher.LIMITS``): loading is pure validation, so a bad file fails
with :class:`ConfigError` before anything starts.

Errors: :class:`ConfigError` (a ``ValueError``) reads
``circus.ini:12: [watcher:web] numprocesses = 'abc': expected an integer >= 0`` and carries
``filename``, ``lineno``, ``section``, ``option``, ``value``, ``expected``. Raised for: a
missing/unreadable/non-UTF-8 file or include, a malformed line, bad booleans, integers,
floats, signals, umasks, ports, endpoints, hook specs, rlimit names, stream classes and
options, watchers without ``cmd``, duplicate watcher/socket/plugin names (case-insensitive),
a ``stdin_socket`` or ``$(circus.sockets.X)`` naming no ``[socket:X]``, ``singleton`` with
``numprocesses`` > 1, ``copy_path``/``virtualenv`` without ``copy_env``, unknown users/groups,
a count or duration above its ceiling (``circus.watcher.LIMITS``), the ``numprocesses`` of
every watcher summed above ``MAX_TOTAL_PROCESSES``.

Warnings: suspicious but loadable input is reported through Python's :mod:`warnings` module
as :class:`ConfigWarning` (shown on stderr by default; a daemon that has configured logging
routes them to its log with ``logging.captureWarnings(True)``), each message starting with
``file:line:``. Warned about: an option name close to a known one (difflib) or differing only
by case — ``[watcher:x] numprocess: unknown watcher option (did you mean 'numprocesses'?)`` —
a section type close to a known one (``[watchers:x]``, ``[Circus]``), a key repeated in one
file, an include glob matching no file, an ``include`` inside an included file, an empty
watcher/socket/plugin section, a reserved key (``env``, ``hooks``...) in a watcher section,
``shell_args`` without ``shell``, a socket reference without ``use_sockets``,
``stats_endpoint`` implying ``statsd``. Truly unknown watcher options are kept verbatim as
free-form options, as upstream.

Compatible behaviour kept from upstream's reader: no interpolation (``%`` is literal); first
value of a repeated key wins, also across included files (the main file beats its includes);
duplicate sections merge; ``#``/``;``/``rem`` comment lines, inline ``;`` only after
whitespace; option names keep their case; continuation lines joined with newlines (a blank
line ends a value); ``key = ""`` is empty; includes are relative to the main file's directory
and not recursive; ``include_dir`` reads ``<dir>/*.ini``; ``[env:p1,p2]`` fnmatch patterns
(case-sensitive), later sections win; env values are kept as written in the ``env`` kwarg
(``$NAME`` is expanded by the watcher when it builds the child's environment);
``$(circus.env.NAME)`` / ``((circus.env.NAME))`` expanded at load time
in every value (matching ``[env:…]`` → ``[env]`` → ``os.environ``, case-insensitive, raw
section values), other ``$(circus.KEY)`` tokens left for spawn time; socket names lowercased;
watchers sorted by name.

Where upstream's parsing is a bug we do the sane thing (differences from Circus 0.19):

* No ``__name__`` key leaks into watcher options, plugin options or process environments.
* ``[socket:X] umask`` is octal (``022`` → 0o022); upstream read it as decimal 22. The default
  stays 8 (0o010), as upstream's.
* ``warmup_delay`` (``[circus]`` and watchers) accepts fractions (``0.5``); upstream refused
  them with a fatal error.
* ``TimedRotatingFileStream``'s ``utc`` is a real boolean (``utc = false`` is false; upstream
  treated any non-empty string as true); ``rotate_when`` is case-insensitive (``midnight``
  works, handed to the stream as ``MIDNIGHT``); ``rotate_when`` missing is a load error.
* Multicast discovery is off unless ``multicast_endpoint`` is set (upstream announced on
  ``udp://237.219.251.97:12027`` by default); an empty value also disables it.
* ``stats_endpoint`` without ``statsd`` implies ``statsd = true`` (as upstream, with a warning);
  an explicit ``statsd = false`` is obeyed (upstream overrode it).
* Errors that upstream only found when creating a watcher or socket (and then silently skipped
  that entry while the daemon ran on) are load errors here: bad stream options, unknown stream
  class names, unknown rlimit names, unknown hook names, unknown users/groups, ``copy_path`` or
  ``virtualenv`` without ``copy_env``, ``AF_UNIX`` without ``path``.
* An ``include`` path without wildcards that does not exist, or an ``include_dir`` that is not a
  directory, is an error (upstream logged a warning); a glob matching nothing is a warning.
* A watcher without ``cmd`` is an error (upstream ran an empty command).
* ``stdin_socket`` or ``$(circus.sockets.X)`` naming an unknown socket is a load error (upstream
  raised at spawn time).
* Built-in stream class names are accepted in any case, and upstream's module paths
  (``circus.stream.FileStream``) map to our built-ins; ``refresh_time`` (legacy) is dropped;
  other unknown options of a built-in stream class are dropped with a warning.
* Watcher, socket and plugin names are stripped of surrounding spaces.

Not done here (left to the layer that owns it): hooks and plugin classes are kept as dotted
strings, not imported (the watcher resolves hooks; adding the watcher env's ``PYTHONPATH`` to
``sys.path`` first is its job; each hook's pair carries where it was written, so a hook
that does not import when circusd creates the watcher, at start or on ``reloadconfig``, is
reported as ``file:line: [watcher:x] hooks.name = 'text': expected an importable callable``);
stream objects are not created; ``working_dir``, ``virtualenv`` and executables are checked
at spawn time.
"""

from ._diff import Changes, ConfigDiff, diff_configs
from ._errors import ConfigError, ConfigWarning
from ._loader import load_config
from ._model import CircusConfig, DaemonConfig, PluginConfig, SocketConfig, WatcherConfig

__all__ = [
    "load_config",
    "diff_configs",
    "CircusConfig",
    "DaemonConfig",
    "WatcherConfig",
    "SocketConfig",
    "PluginConfig",
    "ConfigDiff",
    "Changes",
    "ConfigError",
    "ConfigWarning",
]
