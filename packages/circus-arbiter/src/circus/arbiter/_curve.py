"""CURVE on the control and pub/sub channels, and the refusal to expose them without it.

Upstream's channels have no authentication: anybody who can connect can ``add`` a watcher
running any command as circusd's user. Here:

* ``[circus] curve_secret_key = FILE`` (a ``NAME.key_secret`` made by ``circusctl keygen`` /
  ``python -m circus.ctl.keys``) makes every endpoint circusd binds (control, pub/sub,
  stats) a CURVE server; ``curve_authorized_keys = DIR`` names the directory of the public
  ``.key`` files of the clients allowed in (re-read when it changes, so a key is revoked by
  deleting its file). A client without an authorized key pair gets nothing: no answer, no
  event. ``curve_public_key = FILE`` is optional and checked against the secret file.
* Without CURVE, circusd refuses to bind a ``tcp://`` endpoint that is not loopback
  (``tcp://0.0.0.0``, ``tcp://*``, a LAN address, an interface other than ``lo``) unless
  ``insecure_bind = true`` says it is wanted.

In-process plugins connect with circusd's own key pair, which is always authorized.

``reloadconfig`` moves a running daemon to a new config's settings with :class:`CurveSwitch`:
checked first, staged before the new sockets are bound, then committed or undone. A context
has one ZAP authenticator for its lifetime; a new server takes it over and answers with its
own authorized keys.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import zmq
from circus.ctl.keys import ClientCurve, KeyFileError, load_public, load_secret
from circus.watcher import parse_bool

from ._errors import ArbiterError

# pathlib, ipaddress and zmq.auth are imported where used: a daemon without CURVE and with
# ipc/loopback endpoints never needs them, and each adds to every circusd's resident size.

__all__ = [
    "OPTION_NAMES",
    "CurveServer",
    "CurveSettings",
    "CurveSwitch",
    "check_exposure",
    "client_curve_for",
    "config_options",
    "is_loopback",
    "secure_bind",
    "start_curve",
]

log = logging.getLogger("circus.arbiter")

# endpoint -> the CURVE server that must secure it (sockets are bound in several modules;
# bind_endpoint asks here). Process-wide, since endpoints are.
_ACTIVE: dict[str, CurveServer] = {}
_ACTIVE_LOCK = threading.Lock()


@dataclass(frozen=True)
class CurveSettings:
    """The ``[circus]`` CURVE options (paths already resolved against the config's folder)."""

    secret_key: str | None = None
    public_key: str | None = None
    authorized_keys: str | None = None
    insecure_bind: bool = False

    @property
    def enabled(self) -> bool:
        """CURVE is on (a secret key file is named)."""
        return self.secret_key is not None

    @classmethod
    def from_extra(cls, extra: Mapping[str, str], base_dir: str | None = None) -> CurveSettings:
        """Read the options from ``DaemonConfig.extra`` (the loader keeps unknown keys there).

        Raises:
            ArbiterError: a bad ``insecure_bind`` value, or CURVE half configured.
        """
        options = {k.lower(): v for k, v in extra.items()}

        def path(key: str) -> str | None:
            value = (options.get(key) or "").strip()
            if not value:
                return None
            from pathlib import Path

            resolved = Path(os.path.expanduser(value))
            if base_dir and not resolved.is_absolute():
                resolved = Path(base_dir) / resolved
            return str(resolved)

        raw = str(options.get("insecure_bind", "false")).strip().lower()
        try:
            insecure = parse_bool(raw) if raw else False
        except ValueError:
            message = f"[circus] insecure_bind = {raw!r}: expected true or false"
            raise ArbiterError(message) from None
        return cls.make(
            path("curve_secret_key"),
            path("curve_public_key"),
            path("curve_authorized_keys"),
            insecure,
        )

    @classmethod
    def make(
        cls,
        secret_key: str | None = None,
        public_key: str | None = None,
        authorized_keys: str | None = None,
        insecure_bind: bool = False,
    ) -> CurveSettings:
        """Validated settings (the Python API's spelling of the options).

        Raises:
            ArbiterError: a public key or an authorized-keys directory without a secret key,
                or a secret key without an authorized-keys directory.
        """
        if secret_key is None and (public_key or authorized_keys):
            raise ArbiterError(
                "[circus] curve_public_key/curve_authorized_keys need curve_secret_key"
            )
        if secret_key is not None and not authorized_keys:
            raise ArbiterError(
                "[circus] curve_secret_key needs curve_authorized_keys: the directory of the "
                "public keys of the clients allowed in"
            )
        return cls(secret_key, public_key, authorized_keys, insecure_bind)


def is_loopback(endpoint: str) -> bool:
    """Whether ``endpoint`` can only be reached from this machine (ipc, inproc, loopback tcp)."""
    transport, _, address = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    if transport != "tcp":
        return False
    # tcp://[interface;]host:port — the bind address is after a ';' source/interface part
    host = address.rsplit(":", 1)[0].split(";")[-1].strip("[]")
    if host in ("localhost", "lo", "ip6-localhost"):
        return True
    if host in ("127.0.0.1", "::1"):
        return True
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(endpoints: Iterable[str | None], settings: CurveSettings | None) -> None:
    """Refuse non-loopback endpoints without CURVE unless ``insecure_bind`` is set.

    Raises:
        ArbiterError: names the endpoint and the two ways out.
    """
    if settings is not None and (settings.enabled or settings.insecure_bind):
        return
    for endpoint in endpoints:
        # something that is not even an endpoint is left to bind's own error
        if endpoint and "://" in endpoint and not is_loopback(endpoint):
            raise ArbiterError(
                f"refusing to bind {endpoint} without authentication: anybody who can reach "
                "it could run commands as circusd's user. Set [circus] curve_secret_key and "
                "curve_authorized_keys (see circus.ctl.keys), bind a loopback or ipc "
                "endpoint, or set insecure_bind = true"
            )


class _Authorized:
    """The ZAP credentials callback: keys in the directory (re-read on change) + our own."""

    def __init__(self, directory: str, own: bytes) -> None:
        self.directory = directory
        self.own = own
        self._stamp: tuple[float, int] | None = None
        self._keys: set[bytes] = set()

    def _reload(self) -> None:
        from pathlib import Path

        try:
            st = os.stat(self.directory)
            files = sorted(Path(self.directory).glob("*.key"))
            stamp = (max([st.st_mtime] + [f.stat().st_mtime for f in files]), len(files))
        except OSError as exc:
            log.warning("curve_authorized_keys %s: %s", self.directory, exc)
            self._keys, self._stamp = set(), None
            return
        if stamp == self._stamp:
            return
        keys = set()
        for file in files:
            try:
                keys.add(load_public(file))
            except KeyFileError as exc:
                log.warning("ignoring %s", exc)
        self._keys, self._stamp = keys, stamp

    def callback(self, domain: str, key: bytes) -> bool:
        self._reload()
        allowed = key == self.own or key in self._keys
        if not allowed:
            log.warning("CURVE: refused a client with an unknown key %s", key.decode())
        return allowed


class _Gate:
    """What the ZAP thread asks: the current authorized keys, swapped in place on reload
    (one authenticator serves a context, whichever key pair its sockets use)."""

    def __init__(self, authorized: _Authorized) -> None:
        self.current = authorized

    def callback(self, domain: str, key: bytes) -> bool:
        return self.current.callback(domain, key)


class CurveServer:
    """circusd's key pair, the ZAP authenticator, and the sockets it secures.

    Raises (constructor):
        ArbiterError: a key file is missing or bad, the public key does not match, or the
            authorized-keys directory does not exist.
    """

    def __init__(self, settings: CurveSettings) -> None:
        assert settings.secret_key is not None and settings.authorized_keys is not None
        try:
            self.public, self.secret = load_secret(settings.secret_key)
            if settings.public_key and load_public(settings.public_key) != self.public:
                raise ArbiterError(
                    f"curve_public_key {settings.public_key} is not the public half of "
                    f"curve_secret_key {settings.secret_key}"
                )
        except KeyFileError as exc:
            raise ArbiterError(f"[circus] curve_secret_key: {exc}") from exc
        if not os.path.isdir(settings.authorized_keys):
            raise ArbiterError(
                f"[circus] curve_authorized_keys {settings.authorized_keys}: not a directory"
            )
        self.settings = settings
        self._authorized = _Authorized(settings.authorized_keys, self.public)
        self._auth: Any = None
        self._gate: _Gate | None = None
        self._endpoints: list[str] = []

    @property
    def keys(self) -> tuple[bytes, bytes]:
        """``(public, secret)``: sockets bound with another pair must be bound again."""
        return self.public, self.secret

    @property
    def running(self) -> bool:
        """This server holds the context's running ZAP authenticator."""
        return self._auth is not None

    def start(self, context: zmq.Context[Any], endpoints: Iterable[str | None]) -> None:
        """Start the authenticator on ``context`` (the one the sockets are made in) and make
        :func:`secure_bind` secure ``endpoints``."""
        from zmq.auth.thread import ThreadAuthenticator

        self._auth = ThreadAuthenticator(context, log=logging.getLogger("circus.arbiter.zap"))
        self._auth.start()
        self._gate = _Gate(self._authorized)
        self._auth.configure_curve_callback(domain="*", credentials_provider=self._gate)
        self.register(endpoints)

    def take_over(self, other: CurveServer) -> None:
        """Take ``other``'s running authenticator (a context has only one): from now on it
        lets in our authorized keys and our own key. ``other.take_over(self)`` undoes it."""
        self._auth, self._gate = other._auth, other._gate
        other._auth = other._gate = None
        if self._gate is not None:
            self._gate.current = self._authorized

    def register(self, endpoints: Iterable[str | None]) -> None:
        """Make :func:`secure_bind` (and :func:`client_curve_for`) use us for ``endpoints``."""
        with _ACTIVE_LOCK:
            for endpoint in endpoints:
                if endpoint and endpoint not in self._endpoints:
                    _ACTIVE[endpoint] = self
                    self._endpoints.append(endpoint)
        if self._endpoints:
            log.info("CURVE on %s", ", ".join(self._endpoints))

    def unregister(self) -> None:
        """Forget our endpoints (sockets already bound keep their settings)."""
        with _ACTIVE_LOCK:
            for endpoint in self._endpoints:
                if _ACTIVE.get(endpoint) is self:
                    del _ACTIVE[endpoint]
            self._endpoints = []

    def secure(self, socket: zmq.Socket[Any]) -> None:
        """Make ``socket`` a CURVE server with our keys (before ``bind``)."""
        socket.curve_secretkey = self.secret
        socket.curve_publickey = self.public
        socket.curve_server = True

    def client(self) -> ClientCurve:
        """Client settings using circusd's own (always authorized) key pair."""
        return ClientCurve(self.public, self.secret, self.public)

    def stop(self) -> None:
        """Stop the authenticator and forget the endpoints (idempotent)."""
        self.unregister()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
            self._gate = None


def secure_bind(socket: zmq.Socket[Any], endpoint: str) -> None:
    """Called by ``bind_endpoint`` before binding: CURVE options if ``endpoint`` needs them."""
    with _ACTIVE_LOCK:
        server = _ACTIVE.get(endpoint)
    if server is not None:
        server.secure(socket)


def client_curve_for(endpoint: str) -> ClientCurve | None:
    """The key pair a client inside the daemon's own process uses for ``endpoint`` (CURVE on)."""
    with _ACTIVE_LOCK:
        server = _ACTIVE.get(endpoint)
    return server.client() if server is not None else None


class CurveSwitch:
    """Moving a running daemon's CURVE to the settings of a reloaded config, undoably.

    The constructor only checks (nothing changes): bad settings, a bad key file or an exposed
    endpoint raise. :meth:`stage` then readies the new server for ``endpoints`` (authenticator
    running, :func:`secure_bind` pointing at it) so the new sockets can be bound; after that,
    either :meth:`commit` or :meth:`undo` (which restores the running state exactly).

    Args:
        settings: the new config's CURVE options (:class:`CurveSettings`, a dict of the
            ``[circus]`` option names, or ``None``).
        endpoints: every endpoint the new config binds (``None`` entries ignored).
        current: the running server (``None``: CURVE is off).
        idle: a server whose authenticator still runs while CURVE is off (a context keeps
            one authenticator for its lifetime; old CURVE sockets may still be draining).
        context: the context the sockets are made in (needed by :meth:`stage` when no
            authenticator runs yet; without one the switch only checks).

    Raises (constructor):
        ArbiterError: bad settings or key files, or an exposed endpoint without CURVE.
    """

    def __init__(
        self,
        settings: CurveSettings | Mapping[str, str] | None,
        endpoints: Iterable[str | None],
        current: CurveServer | None,
        idle: CurveServer | None = None,
        context: zmq.Context[Any] | None = None,
    ) -> None:
        if settings is not None and not isinstance(settings, CurveSettings):
            settings = CurveSettings.from_extra(settings)
        self.endpoints = [e for e in endpoints if e]
        check_exposure(self.endpoints, settings)
        self.new = CurveServer(settings) if settings is not None and settings.enabled else None
        self.current = current
        self._holder = current if current is not None and current.running else idle
        self._context = context
        self._was: list[str] = []
        self._started = False

    @property
    def rekey(self) -> bool:
        """Sockets bound now must be bound again: CURVE turned on or off, or a new key pair."""
        new = self.new.keys if self.new is not None else None
        old = self.current.keys if self.current is not None else None
        return new != old

    def stage(self) -> None:
        """Before binding the new sockets: the new server (if any) is the one they get."""
        if self.current is not None:
            self._was = list(self.current._endpoints)
            self.current.unregister()
        if self.new is None:
            return
        if self._holder is not None:
            self.new.take_over(self._holder)
            self.new.register(self.endpoints)
        else:
            if self._context is None:
                raise ArbiterError("CURVE: no ZeroMQ context to start the authenticator in")
            self.new.start(self._context, self.endpoints)
            self._started = True

    def undo(self) -> None:
        """Back to the running state (the new sockets already closed by the caller)."""
        if self.new is not None:
            if self._started:
                self.new.stop()
            else:
                self.new.unregister()
                if self._holder is not None:
                    self._holder.take_over(self.new)
        if self.current is not None:
            self.current.register(self._was)

    def commit(self) -> tuple[CurveServer | None, CurveServer | None]:
        """``(running server or None, server whose authenticator idles while CURVE is off)``."""
        if self.new is not None:
            return self.new, None
        return None, self._holder


OPTION_NAMES = ("curve_secret_key", "curve_public_key", "curve_authorized_keys", "insecure_bind")


def config_options(config: Any) -> dict[str, str] | None:
    """The CURVE options of a loaded config's ``[circus]`` (kept in ``DaemonConfig.extra``),
    paths made absolute against the config file's folder; ``None`` when there are none.

    Validation waits for :func:`start_curve`, so a mistake is reported like any start error.
    """
    extra = {k.lower(): v for k, v in (getattr(config.circus, "extra", None) or {}).items()}
    options = {k: extra[k] for k in OPTION_NAMES if k in extra}
    if not options:
        return None
    base = os.path.dirname(os.path.abspath(config.path)) if config.path else None
    for key in OPTION_NAMES[:3]:
        value = options.get(key, "").strip()
        if value and base and not os.path.isabs(os.path.expanduser(value)):
            options[key] = os.path.join(base, value)
    return options


def start_curve(
    settings: CurveSettings | Mapping[str, str] | None,
    context: zmq.Context[Any],
    endpoints: list[str | None],
) -> CurveServer | None:
    """Check exposure, then start CURVE for ``endpoints`` when configured (else ``None``).

    ``settings``: :class:`CurveSettings`, or the ``[circus]`` option names and values.

    Raises:
        ArbiterError: bad settings or key files, or an exposed endpoint without CURVE.
    """
    if settings is not None and not isinstance(settings, CurveSettings):
        settings = CurveSettings.from_extra(settings)
    check_exposure(endpoints, settings)
    if settings is None or not settings.enabled:
        return None
    server = CurveServer(settings)
    server.start(context, endpoints)
    return server
