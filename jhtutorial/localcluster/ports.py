"""Free TCP ports on 127.0.0.1: one answer for the whole package.

    >>> port = free_port()          # a port nothing listens on right now
    >>> port_free(port)
    True
    >>> held = hold_port()          # a port no other program is handed until held.close()
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port on 127.0.0.1 that no program uses at this moment (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` different ports on 127.0.0.1 that no program uses at this moment (the kernel picks them).

    All are held at once while they are picked, so none is handed out twice.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_free(port: int) -> bool:
    """True if a program could listen on 127.0.0.1:port now."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def hold_port() -> socket.socket:
    """A port on 127.0.0.1 held for a program that binds it later: a socket bound to it, never listening.

    Choosing a free port and binding it later is a race (anything may take the port in between). A bound
    socket closes that window: the kernel hands the port to no one else (not to another ``bind(port 0)``, not
    as the local port of an outgoing connection), and a plain bind of it fails. Bound with SO_REUSEADDR
    and never listening, it still lets the one program meant for it (nginx, node, tornado: all set
    SO_REUSEADDR) bind and listen there, again after each restart. Close it when the program is gone for good.
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock
