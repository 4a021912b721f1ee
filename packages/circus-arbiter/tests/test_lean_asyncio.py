"""circusd imports asyncio without ``ssl`` (OpenSSL), and TLS through asyncio still works.

Each case runs in a fresh interpreter that imports ``circus.arbiter.circusd`` first, as the
``circusd`` script does (in this test process asyncio is loaded already, and the deferral
rightly does nothing).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

PRELUDE = """
import socket, sys
from circus.arbiter import circusd, _lean_asyncio  # first, as in the circusd script
import asyncio
assert _lean_asyncio.ssl_deferred, "asyncio was imported with ssl"
assert "ssl" not in sys.modules and "_ssl" not in sys.modules, "ssl loaded at import"


async def garbage_server():
    # answers a TLS hello with bytes that are not TLS, then waits for the client to go:
    # the client's handshake then fails as TLS (ssl.SSLError), through asyncio's TLS path
    async def answer(reader, writer):
        writer.write(b"this is not TLS\\r\\n" * 64)
        await writer.drain()
        await reader.read()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def handshake(ssl_arg):
    server = await garbage_server()
    port = server.sockets[0].getsockname()[1]
    async with server:
        try:
            await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ssl_arg), 20)
        except Exception as exc:
            import ssl
            assert isinstance(exc, ssl.SSLError), repr(exc)
        else:
            raise AssertionError("a TLS handshake with a non-TLS server succeeded")
"""

CASES = {
    # ssl=True: asyncio itself makes the default context (first use loads OpenSSL)
    "ssl_true": "asyncio.run(handshake(True))",
    # the caller imported ssl (as a hook's library would) and passes its own context
    "own_context": (
        "import ssl\n"
        "from asyncio import base_events, sslproto\n"
        "assert base_events.ssl is ssl and sslproto.ssl is ssl\n"
        "assert sslproto.SSLAgainErrors == (ssl.SSLWantReadError, ssl.SSLSyscallError)\n"
        "asyncio.run(handshake(ssl.create_default_context()))"
    ),
    # loop.sock_*() checks its socket against ssl.SSLSocket: that must not load OpenSSL
    "sock_calls": (
        "async def probe():\n"
        "    server = await garbage_server()\n"
        "    port = server.sockets[0].getsockname()[1]\n"
        "    async with server:\n"
        "        loop = asyncio.get_running_loop()\n"
        "        with socket.socket() as sock:\n"
        "            sock.setblocking(False)\n"
        "            await loop.sock_connect(sock, ('127.0.0.1', port))\n"
        "            assert await loop.sock_recv(sock, 7) == b'this is'\n"
        "asyncio.run(probe())\n"
        "assert 'ssl' not in sys.modules, 'sock_connect loaded ssl'"
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_asyncio_without_ssl_until_used(case: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PRELUDE + CASES[case]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
