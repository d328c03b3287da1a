"""Ports on 127.0.0.1 without check-then-use.

A port someone wants is bound first, never asked about and then used: a port another program holds makes the
caller fall back to any free one, and say so (the other program is a real process listening on the port). A
port chosen now for a program that binds it seconds later is held meanwhile, so nothing else is handed it:
these tests ask the kernel itself.
"""

from __future__ import annotations

import socket

import pytest

from jhtutorial.localcluster.ports import PortTaken, free_port, listening_socket, on_preferred_port, port_free
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


