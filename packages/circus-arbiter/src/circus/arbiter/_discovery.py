"""UDP multicast discovery (spec/protocol.md §4), only when ``multicast_endpoint`` is set.

Any datagram received on the group is answered, to its sender, with
``{"endpoint": "<control endpoint>"}``. Off by default: it announces the control channel to
the whole LAN.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import struct
from urllib.parse import urlparse

from ._errors import ArbiterError

__all__ = ["Discovery"]

log = logging.getLogger("circus.arbiter")


class _Responder(asyncio.DatagramProtocol):
    def __init__(self, answer: bytes) -> None:
        self.answer = answer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self.transport is not None:
            self.transport.sendto(self.answer, addr)


class Discovery:
    """A joined multicast group answering discovery datagrams."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        self._transport = transport

    @classmethod
    async def create(cls, multicast_endpoint: str, control_endpoint: str) -> Discovery | None:
        """Join the group of ``udp://GROUP:PORT``; ``None`` (with a warning) if impossible."""
        url = urlparse(multicast_endpoint)
        if url.scheme != "udp" or not url.hostname or not url.port:
            raise ArbiterError(f"multicast_endpoint {multicast_endpoint!r}: expected udp://G:P")
        group = url.hostname
        if not 224 <= int(group.split(".")[0]) <= 239:
            raise ArbiterError(f"multicast_endpoint {multicast_endpoint!r}: not a multicast group")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
            sock.bind(("0.0.0.0", url.port))
            membership = struct.pack("4sl", socket.inet_aton(group), socket.INADDR_ANY)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            log.warning("Multicast discovery is disabled: %s", exc)
            return None
        answer = json.dumps({"endpoint": control_endpoint}).encode()
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: _Responder(answer), sock=sock
        )
        return cls(transport)

    def close(self) -> None:
        """Leave the group."""
        self._transport.close()
