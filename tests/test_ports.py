"""Ports on 127.0.0.1 without check-then-use.

A port someone wants is bound first, never asked about and then used: a port another program holds makes the
caller fall back to any free one, and say so (the other program is a real process listening on the port). A
port chosen now for a program that binds it seconds later is held meanwhile, so nothing else is handed it:
these tests ask the kernel itself.
"""

from __future__ import annotations

import socket

import pytest

from jhtutorial.localcluster.ports import PortTaken, free_port, hold_port, listening_socket, on_preferred_port, port_free
from tests.kubehelpers import port_held

def test_a_held_port_cannot_be_bound_and_the_error_names_it() -> None:
    port = free_port()
    with port_held(port), pytest.raises(PortTaken, match=f"port {port} on 127.0.0.1 is taken") as caught:
        listening_socket(port)
    assert caught.value.port == port


def test_the_preferred_port_is_used_when_nobody_holds_it() -> None:
    port = free_port()
    sock, note = on_preferred_port(port, listening_socket)
    with sock:
        assert sock.getsockname()[1] == port and note is None
        assert not port_free(port)  # this socket holds it now


def test_a_held_preferred_port_falls_back_to_another_one_and_says_so() -> None:
    port = free_port()
    with port_held(port) as holder:
        sock, note = on_preferred_port(port, listening_socket)
        with sock:
            used = sock.getsockname()[1]
            assert used != port and note == f"port {port} is taken by another program"
            with socket.create_connection(("127.0.0.1", used), timeout=5):  # it listens
                pass
        assert holder.poll() is None  # the other program kept its port
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass


def test_any_port_means_no_fallback_to_report() -> None:
    tried: list[int] = []

    def refuse(port: int) -> None:
        tried.append(port)
        raise PortTaken(port)

    with pytest.raises(PortTaken):
        on_preferred_port(0, refuse)
    assert tried == [0]


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
