"""TCP ports on 127.0.0.1: one answer for the whole package.

Asking "is port 8080 free?" and then using it is a race: between the answer and
the bind, another program (another run of the workbook, say) can take the port.
So a port someone wants is *bound first*, and only a failure to bind makes the
caller fall back to any free port, chosen by whoever binds (the kernel for a
socket, ``kubectl port-forward :80`` for kubectl):

    >>> with listening_socket(preferred=0) as sock:    # 0: any free port
    ...     sock.getsockname()[1] > 0
    True
    >>> opened, note = on_preferred_port(8080, open_on)   # doctest: +SKIP
    >>> note                                               # doctest: +SKIP
    'port 8080 is taken by another program: port 41873 instead'

:func:`free_port` names a port nothing listens on at this moment, for a program
that can only be told a number; whoever uses it must cope with losing it.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
HOST = "127.0.0.1"
# what programs print when their bind() fails with EADDRINUSE: Go's net package (kubectl,
# kube-apiserver) and the C library's strerror both say it this way on Linux and macOS
ADDRESS_IN_USE_TEXT = "address already in use"


class PortTaken(OSError):
    """The port a program wanted to listen on is held by another one (EADDRINUSE)."""

    def __init__(self, port: int, detail: str = "") -> None:
        super().__init__(errno.EADDRINUSE, f"port {port} on {HOST} is taken by another program"
                         + (f" ({detail})" if detail else ""))
        self.port = port


def free_port() -> int:
    """A port on 127.0.0.1 that no program uses at this moment (the kernel picks it)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` different ports on 127.0.0.1 that no program uses at this moment (the kernel picks them).

    All are held at once while they are picked, so none is handed out twice.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_free(port: int) -> bool:
    """True if a program could listen on 127.0.0.1:port at this moment: a hint, never a promise.

    Only for a caller that reports on a port or copes when it is taken right after (the local cluster, whose
    programs can only be told a number); a caller that wants the port binds it instead (:func:`listening_socket`).
    """
    try:
        listening_socket(port).close()
    except PortTaken:
        return False
    return True


def says_address_in_use(text: str) -> bool:
    """True if a program's error output says that its bind() found the port taken."""
    return ADDRESS_IN_USE_TEXT in text.lower()


def listening_socket(preferred: int = 0, backlog: int = 16) -> socket.socket:
    """A socket listening on 127.0.0.1:preferred (0: any free port); raises PortTaken if that port is held.

    SO_REUSEADDR lets a port in TIME_WAIT (left by a connection that just closed) be bound again; it
    does not let two programs listen on the same port on Linux or macOS.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, preferred))
        sock.listen(backlog)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            raise PortTaken(preferred) from None
        raise
    return sock


def on_preferred_port(preferred: int, open_on: Callable[[int], T]) -> tuple[T, str | None]:
    """``open_on(preferred)``; if that raises PortTaken, ``open_on(0)``: any free port, picked by whoever binds.

    ``open_on(port)`` must bind the port itself (never ask first) and raise PortTaken when it is held.
    Returns what ``open_on`` returned and a note saying why it is not on ``preferred`` (None if it is);
    the port actually used is for the caller to read from what it opened.
    """
    try:
        return open_on(preferred), None
    except PortTaken:
        if preferred == 0:
            raise
    return open_on(0), f"port {preferred} is taken by another program"
