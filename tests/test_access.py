"""Reaching the hub and logging in, against the real API server.

The test namespaces are made without the tutorial's mark, so on the simulated
cluster their pods stay purely simulated: every way to proxy-public must fail,
and say why in the cluster's own words (kwok's "no forward found"). Logging in
through pods backed by local processes is tested in test_backing.py.
"""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jhtutorial import STEPS, apply
from jhtutorial.access import hub_access, require_deployed
from jhtutorial.connect import Connection, connect
from jhtutorial.errors import AccessError, StepOutOfOrder
from jhtutorial.login import login
from tests.kubehelpers import free_port, port_held

pytestmark = pytest.mark.cluster


def _deploy(conn: Connection, through: int = 6) -> None:
    for step in STEPS:
        if step.files and step.number <= through:
            apply(step, conn=conn)
            step.wait(conn)


def _threads(prefix: str) -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(prefix)]


@pytest.fixture(scope="module")
def conn(kubeconfig: Path, namespace: str) -> Iterator[Connection]:
    connection = connect(namespace=namespace, kubeconfig=kubeconfig)
    _deploy(connection)
    yield connection
    connection.close()


@pytest.fixture
def fresh(kubeconfig: Path, other_namespace: str) -> Iterator[Connection]:
    """A connection to an empty namespace of its own."""
    connection = connect(namespace=other_namespace, kubeconfig=kubeconfig)
    yield connection
    connection.close()


# --- not deployed ------------------------------------------------------------------------------------


def test_access_and_login_name_the_missing_step(fresh: Connection) -> None:
    with pytest.raises(StepOutOfOrder, match=r"steps 01-rbac \(ServiceAccount/hub") as nothing:
        hub_access(fresh)
    assert "and 06-deployments (Deployment/hub, Deployment/proxy) are missing" in nothing.value.problem
    _deploy(fresh, through=4)
    with pytest.raises(StepOutOfOrder) as caught:
        login(conn=fresh)
    assert "steps 05-services (Service/hub" in caught.value.problem
    assert "Service/proxy-public) and 06-deployments (Deployment/hub, Deployment/proxy) are missing" in (
        caught.value.problem)
    assert f"jhtutorial up --through 6 -n {fresh.namespace}" in caught.value.fix
    assert caught.value.exit_code == 5
    _deploy(fresh, through=5)
    with pytest.raises(StepOutOfOrder, match=r"step 06-deployments \(Deployment/hub, Deployment/proxy\) is missing"):
        require_deployed(fresh)


# --- access on the simulated cluster ------------------------------------------------------------------


def test_the_simulated_cluster_offers_no_url_and_says_why(conn: Connection) -> None:
    access = hub_access(conn)
    # the test's namespace was made without the tutorial's mark: its pods stay purely simulated
    assert access.url is None and access.simulated and access.how == "simulated"
    assert f"namespace {conn.namespace} was not made by `jhtutorial up` or notebook 00" in access.notes[0]
    assert f"kubectl label namespace {conn.namespace} jhtutorial/backed=true" in access.notes[0]
    assert access.kubectl == f"kubectl port-forward -n {conn.namespace} svc/proxy-public 8080:80"
    assert "no URL can answer" in str(access)


def test_a_port_forward_from_python_reaches_kwok_which_has_nothing_behind_the_port(conn: Connection) -> None:
    with pytest.raises(AccessError) as caught:
        hub_access(conn, method="port-forward")
    # the API server carried the stream to the simulated kubelet, which answered on the error channel
    assert re.search(r"no forward found for port 8080 in pod \S*proxy-", caught.value.problem), caught.value.problem
    assert caught.value.exit_code == 9
    assert _threads("jhtutorial-port-forward") == []


def test_an_unverified_port_forward_listens_until_closed(conn: Connection) -> None:
    access = hub_access(conn, method="port-forward", verify=False)
    port = int(access.url.rsplit(":", 1)[1])
    try:
        assert access.open and access.how == "port-forward"
        with pytest.raises(requests.ConnectionError):
            requests.get(access.url + "/hub/health", timeout=10)
        forwarder = access.forwarder  # type: ignore[attr-defined]
        for _ in range(50):  # the error frame trails the closed connection by a moment
            if forwarder.errors:
                break
            threading.Event().wait(0.1)
        assert any("no forward found" in error for error in forwarder.errors), forwarder.errors
    finally:
        access.close()
    assert not access.open
    assert _threads("jhtutorial-port-forward") == []
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_port_forward_whose_port_another_program_holds_listens_on_another_and_says_which(
        conn: Connection) -> None:
    port = free_port()
    with port_held(port) as holder:
        access = hub_access(conn, method="port-forward", local_port=port, verify=False)
        try:
            used = int(access.url.rsplit(":", 1)[1])
            assert used != port and access.open
            assert access.notes[0] == f"port {port} is taken by another program: forwarding from port {used} instead"
            socket.create_connection(("127.0.0.1", used), timeout=5).close()  # it listens there
        finally:
            access.close()
        assert holder.poll() is None  # the other program kept its port


def test_kubectl_port_forward_fails_the_same_way_and_its_process_ends(conn: Connection) -> None:
    with pytest.raises(AccessError, match="no forward found for port 8080"):
        hub_access(conn, method="kubectl")
    access = hub_access(conn, method="kubectl", verify=False)
    process = access.process  # type: ignore[attr-defined]
    assert process.poll() is None and access.url.startswith("http://127.0.0.1:")
    access.close()
    assert process.poll() is not None


def test_node_ports_are_refused_on_the_simulated_nodes(conn: Connection) -> None:
    # kwok's nodes have kwok's own address, 127.0.0.1, where no NodePort is forwarded: asking for one names
    # the way in that works instead of trying whatever listens on that port of the machine
    with pytest.raises(AccessError, match="nodes are simulated: no node forwards its NodePorts"):
        hub_access(conn, method="nodeport")


def test_an_unknown_method_is_refused(conn: Connection) -> None:
    with pytest.raises(AccessError, match="unknown access method 'ftp'"):
        hub_access(conn, method="ftp")


def test_a_chatty_process_never_blocks_on_a_full_pipe() -> None:
    """What kubectl port-forward does in a long session: a line per connection on stderr. Both pipes are read
    all along, so the process runs to its end; a pipe nobody read would stop it after about 64 KiB."""
    import subprocess
    import sys

    from jhtutorial.access import PipeReader

    chatter = ("import sys\nfor i in range(20000):\n    print('Handling connection for 8080', file=sys.stderr)\n"
               "print('Forwarding from 127.0.0.1:4242 -> 8080', flush=True)\n")
    process = subprocess.Popen([sys.executable, "-c", chatter], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    output = PipeReader(process)
    assert output.wait_for(re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)"), 30) == "4242"
    assert process.wait(30) == 0  # 20000 lines (about 600 KB) went through stderr without blocking it
    output.join()
    assert output.errors == []  # "Handling connection" lines are not errors
