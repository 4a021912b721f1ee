"""circus.ctl.keys: key pairs for CURVE, and the clients' CURVE arguments."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
from circus.ctl import CircusClient
from circus.ctl.cli import main as circusctl
from circus.ctl.errors import CallTimeout, DaemonUnreachable
from circus.ctl.keys import ClientCurve, KeyFileError, generate, load_public, load_secret


def test_generate_makes_a_pair_with_a_private_secret(tmp_path: Path) -> None:
    public, secret = generate(tmp_path / "keys", "server")
    assert public.name == "server.key" and secret.name == "server.key_secret"
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "keys").st_mode) == 0o700
    pub, sec = load_secret(secret)
    assert load_public(public) == pub and len(sec) == 40
    with pytest.raises(KeyFileError, match="exists already"):
        generate(tmp_path / "keys", "server")


def test_secret_expected_where_public_given(tmp_path: Path) -> None:
    public, _ = generate(tmp_path, "c")
    with pytest.raises(KeyFileError, match="no secret key"):
        load_secret(public)
    with pytest.raises(KeyFileError, match="cannot read key file"):
        load_public(tmp_path / "missing.key")


def test_both_client_arguments_or_none(tmp_path: Path) -> None:
    _, secret = generate(tmp_path, "c")
    server, _ = generate(tmp_path, "s")
    assert ClientCurve.from_args(None, None) is None
    with pytest.raises(KeyFileError, match="needs both"):
        ClientCurve.from_args(secret, None)
    curve = ClientCurve.from_args(secret, server)
    assert curve is not None and curve.server == load_public(server)
    with pytest.raises(KeyFileError):
        CircusClient(f"ipc://{tmp_path}/x", curve_key=secret)


def test_curve_client_talks_to_a_curve_router(tmp_path: Path) -> None:
    """End to end at the socket level: keys accepted by a CURVE ROUTER (no ZAP: any key)."""
    server_pub, server_secret = generate(tmp_path, "server")
    _, client_secret = generate(tmp_path, "client")
    spub, ssec = load_secret(server_secret)
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.linger = 0
    router.curve_secretkey, router.curve_publickey, router.curve_server = ssec, spub, True
    endpoint = f"ipc://{tmp_path}/ctl"
    router.bind(endpoint)
    try:
        with CircusClient(
            endpoint, timeout=5, curve_key=client_secret, curve_server_key=server_pub
        ) as client:
            client._send({"command": "list", "id": "1"})
            assert router.poll(5000)
            assert b'"list"' in router.recv_multipart()[-1]
        # without keys: the handshake never completes, the call fails within its timeout
        with CircusClient(endpoint, timeout=0.5) as client:
            with pytest.raises((CallTimeout, DaemonUnreachable)):
                client.call("list")
    finally:
        router.close()
        context.term()


def test_module_and_circusctl_keygen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "circus.ctl.keys", str(tmp_path), "one"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "one.key").exists() and (tmp_path / "one.key_secret").exists()
    assert circusctl(["keygen", str(tmp_path), "two"]) == 0
    assert "two.key_secret" in capsys.readouterr().out
    assert circusctl(["keygen", str(tmp_path), "two"]) == 1
    assert "exists already" in capsys.readouterr().err
