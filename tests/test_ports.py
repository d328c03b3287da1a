"""Ports on 127.0.0.1 held between the choice and the program's bind: nothing else is handed them meanwhile.

The backing chooses a pod's loopback ports when the pod is created and its programs bind them seconds later;
in between, a port chosen by `bind(port 0)` elsewhere, or taken as the local port of an outgoing connection,
would leave the program unable to start. These tests ask the kernel itself.
"""

from __future__ import annotations

import socket

from jhtutorial.localcluster.ports import free_port, hold_port

TRIES = 20000  # port-0 binds: without the hold, ~50 of them land on one of 30 ports (measured)


def test_a_held_port_is_handed_to_no_one_else_but_its_program_binds_it() -> None:
    held = [hold_port() for _ in range(30)]
    try:
        ports = {sock.getsockname()[1] for sock in held}
        chosen = {free_port() for _ in range(TRIES)}
        assert not chosen & ports
        for port in list(ports)[:3]:
            plain = socket.socket()
            try:
                plain.bind(("127.0.0.1", port))
                raise AssertionError(f"port {port} was bound by another program while held")
            except OSError:
                pass
            finally:
                plain.close()
            for _restart in range(2):  # the program, as nginx, node and tornado bind: SO_REUSEADDR, then listen
                program = socket.socket()
                program.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                program.bind(("127.0.0.1", port))
                program.listen()
                with socket.create_connection(("127.0.0.1", port), timeout=5):
                    program.accept()[0].close()
                program.close()
    finally:
        for sock in held:
            sock.close()


def test_without_the_hold_the_same_ports_are_handed_out_again() -> None:
    """The measurement above can fail: once released, the kernel hands the same ports out again."""
    released = [hold_port() for _ in range(30)]
    ports = {sock.getsockname()[1] for sock in released}
    for sock in released:
        sock.close()
    assert {free_port() for _ in range(TRIES)} & ports
