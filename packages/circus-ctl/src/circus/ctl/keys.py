"""CURVE key pairs for the control and pub/sub channels (ZeroMQ's CurveZMQ, via ``zmq.auth``).

A key pair is two files made by :func:`generate` (or ``python -m circus.ctl.keys DIR NAME``,
or ``circusctl keygen DIR NAME``): ``NAME.key`` holds the public key (give it away: the
daemon's goes to its clients, a client's into the daemon's ``curve_authorized_keys``
directory) and ``NAME.key_secret`` holds both keys (keep it: mode 0600).

Clients use a key pair of their own plus the daemon's public key: :class:`ClientCurve`, the
``curve_key`` / ``curve_server_key`` arguments of :class:`~circus.ctl.CircusClient` and the
consumers, ``circusctl --curve-key/--curve-server-key`` (or ``CIRCUSCTL_CURVE_KEY`` /
``CIRCUSCTL_CURVE_SERVER_KEY``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import CtlError

if TYPE_CHECKING:
    from pathlib import Path

    import zmq

__all__ = [
    "ClientCurve",
    "KeyFileError",
    "generate",
    "load_public",
    "load_secret",
    "main",
]

StrPath = str | os.PathLike[str]


class KeyFileError(CtlError):
    """A key file is missing, unreadable or not a ZeroMQ certificate (names the file)."""


def generate(directory: StrPath, name: str = "circus") -> tuple[Path, Path]:
    """Create ``NAME.key`` (public) and ``NAME.key_secret`` (secret, mode 0600) in
    ``directory`` (created 0700 if missing); return their paths.

    Raises:
        KeyFileError: the files exist already (never overwritten) or cannot be written.
    """
    from pathlib import Path

    import zmq.auth

    folder = Path(directory)
    public, secret = folder / f"{name}.key", folder / f"{name}.key_secret"
    for path in (public, secret):
        if path.exists():
            raise KeyFileError(f"{path} exists already; not overwriting a key")
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        old = os.umask(0o077)
        try:
            made = zmq.auth.create_certificates(folder, name)
        finally:
            os.umask(old)
    except OSError as exc:
        raise KeyFileError(f"cannot write keys in {folder}: {exc}") from exc
    os.chmod(made[1], 0o600)
    os.chmod(made[0], 0o644)
    return Path(made[0]), Path(made[1])


def _load(path: StrPath) -> tuple[bytes, bytes | None]:
    # zmq.auth (and what it pulls in) only when CURVE is configured: every client and the
    # daemon import this module for ClientCurve.
    import zmq.auth

    try:
        return zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"cannot read key file {os.fspath(path)}: {exc}") from exc


def load_public(path: StrPath) -> bytes:
    """The public key in ``path`` (a ``.key`` or ``.key_secret`` file), Z85-encoded."""
    public, _ = _load(path)
    if not public:
        raise KeyFileError(f"{os.fspath(path)}: no public key in the file")
    return public


def load_secret(path: StrPath) -> tuple[bytes, bytes]:
    """``(public, secret)`` from a ``.key_secret`` file.

    Raises:
        KeyFileError: the file holds no secret key (a ``.key`` given by mistake, say).
    """
    public, secret = _load(path)
    if not secret:
        raise KeyFileError(
            f"{os.fspath(path)} holds no secret key (give the NAME.key_secret file, "
            "not the public NAME.key)"
        )
    return public, secret


@dataclass(frozen=True)
class ClientCurve:
    """A client's CURVE settings: its own key pair and the daemon's public key (Z85)."""

    public: bytes
    secret: bytes
    server: bytes

    @classmethod
    def from_files(cls, key: StrPath, server_key: StrPath) -> ClientCurve:
        """From the client's ``.key_secret`` file and the daemon's public ``.key`` file."""
        public, secret = load_secret(key)
        return cls(public, secret, load_public(server_key))

    @classmethod
    def from_args(
        cls, key: StrPath | ClientCurve | None, server_key: StrPath | None
    ) -> ClientCurve | None:
        """What the clients' ``curve_key``/``curve_server_key`` arguments mean: both or none.

        Raises:
            KeyFileError: only one of the two is given, or a file cannot be read.
        """
        if isinstance(key, ClientCurve):
            return key
        if key is None and server_key is None:
            return None
        if key is None or server_key is None:
            raise KeyFileError(
                "CURVE needs both the client's secret key file (curve_key, --curve-key) "
                "and the daemon's public key file (curve_server_key, --curve-server-key)"
            )
        return cls.from_files(key, server_key)

    def apply(self, socket: zmq.Socket[Any]) -> None:
        """Make ``socket`` a CURVE client of the daemon (call before ``connect``)."""
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.curve_serverkey = self.server


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m circus.ctl.keys DIR [NAME]``: make a key pair; print the two paths."""
    parser = argparse.ArgumentParser(
        prog="python -m circus.ctl.keys",
        description="Create a CURVE key pair: DIR/NAME.key (public), DIR/NAME.key_secret.",
    )
    parser.add_argument("directory", help="where to write the two files")
    parser.add_argument("name", nargs="?", default="circus", help="file name stem (circus)")
    args = parser.parse_args(argv)
    try:
        public, secret = generate(args.directory, args.name)
    except KeyFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"public key: {public}")
    print(f"secret key: {secret}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
