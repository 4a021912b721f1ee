"""Started as an event listener's command: connect to circusd's listener socket, make that
connection the process's stdin and stdout, then exec the listener itself (same pid).

Run as ``python -I -S -c <this file's text> SOCKET -- argv...``: it imports nothing of circus
and needs no file of circus's (a listener running as another user may not be able to read
them), so it costs an interpreter start and nothing more; it runs on any Python 3.
``SOCKET`` starting with ``@`` is an abstract unix socket name. circusd knows the connection
is this listener by the pid the kernel reports for it (``SO_PEERCRED``), which the exec keeps.
"""

import os
import socket
import sys


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: _relay.py SOCKET -- COMMAND [ARGS...]\n")
        return 2
    address = argv[0]
    command = argv[2:]
    if address.startswith("@"):
        address = "\0" + address[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except OSError as exc:
        sys.stderr.write(f"cannot reach circusd's event-listener socket: {exc}\n")
        return 1
    os.dup2(sock.fileno(), 0)
    os.dup2(sock.fileno(), 1)
    sock.close()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        sys.stderr.write(f"cannot run {command[0]!r}: {exc}\n")
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
