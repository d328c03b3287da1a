"""Reaching the hub and logging in, against the real API server.

On the simulated cluster no container runs, so every way to proxy-public must
fail, and say why in the cluster's own words (kwok's "no forward found"). The
login runs the real JupyterHub 5.5.0 + KubeSpawner 7.0.0 on this machine with
the cluster's hub-config and the hub ServiceAccount's token: the pod and PVC it
makes, and the permissions it is refused, are the API server's doing.
"""

from __future__ import annotations

import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from kubernetes import client

from jhtutorial import STEPS, apply
from jhtutorial.access import hub_access, require_deployed
from jhtutorial.connect import Connection, connect
from jhtutorial.errors import AccessError, LocalHubFailed, LoginFailed, StepOutOfOrder
from jhtutorial.kubeapi import ROLES, KubeApi
from jhtutorial.localhub import LocalHub, find_chp
from jhtutorial.login import login

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
    assert access.url is None and access.simulated and access.how == "simulated"
    assert "no container runs" in access.notes[0]
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


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_port_forward_fails_the_same_way_and_its_process_ends(conn: Connection) -> None:
    with pytest.raises(AccessError, match="no forward found for port 8080"):
        hub_access(conn, method="kubectl")
    access = hub_access(conn, method="kubectl", verify=False)
    process = access.process  # type: ignore[attr-defined]
    assert process.poll() is None and access.url.startswith("http://127.0.0.1:")
    access.close()
    assert process.poll() is not None


def test_node_ports_need_a_node_address(conn: Connection) -> None:
    # kwok's nodes report only a Hostname address: nothing a NodePort could be reached on
    with pytest.raises(AccessError, match="no Ready node has an InternalIP or ExternalIP"):
        hub_access(conn, method="nodeport")


def test_an_unknown_method_is_refused(conn: Connection) -> None:
    with pytest.raises(AccessError, match="unknown access method 'ftp'"):
        hub_access(conn, method="ftp")


# --- the local hub ------------------------------------------------------------------------------------


def test_the_local_hub_starts_from_the_configmap_and_stops(conn: Connection) -> None:
    hub = LocalHub(conn, proxy="none").start()
    try:
        assert hub.running and hub.proxy_used == "none"
        assert requests.get(hub.url + "/hub/health", timeout=10).status_code == 200
        assert hub.versions == {"jupyterhub": "5.5.0", "jupyterhub-kubespawner": "7.0.0"}
        assert any("Using Spawner: kubespawner.spawner.KubeSpawner-7.0.0" in line for line in hub.log())
        workdir = hub._workdir
        assert workdir is not None and (workdir / "kubeconfig").stat().st_mode & 0o077 == 0
    finally:
        hub.stop()
    assert not hub.running and not workdir.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(hub.url + "/hub/health", timeout=5)
    assert _threads("jhtutorial-localhub") == []


def test_login_runs_the_hub_here_and_kubespawner_creates_the_pod(conn: Connection,
                                                                  api_client: client.ApiClient) -> None:
    lines: list[str] = []
    result = login(conn=conn, proxy="none", progress=lines.append)
    assert result.ok and result.logged_in and result.hub == "local process" and result.simulated
    assert (result.pod, result.pvc) == ("jupyter-admin", "claim-admin")
    assert result.pod_running and result.pvc_bound and result.pod_left_in_place
    assert not result.server_answered  # nothing can answer on a simulated node
    texts = [stage.text for stage in result.stages]
    assert any(t.startswith("logged in as admin (POST /hub/login -> 302") for t in texts)
    assert any("pod jupyter-admin created by KubeSpawner" in t for t in texts)
    assert any("PVC claim-admin Bound" in t for t in texts)
    assert any("Running (simulated: no container runs)" in t for t in texts)
    assert lines == [str(stage) for stage in result.stages]  # reported as they happened
    assert "the hub ran here as a local process standing in for its container" in result.notes[0]
    assert "the notebook server cannot start on a simulated node" in result.notes[0]
    assert result.seconds < 60
    # the hub checks a refusing loopback port instead of the made-up pod IP, so it keeps waiting
    assert any(t.startswith("JupyterHub still waits for the server in pod jupyter-admin") for t in texts), texts
    assert not any(n.startswith("JupyterHub counted the server as started") for n in result.notes)
    # what KubeSpawner made, as the API server stores it
    core = client.CoreV1Api(api_client)
    pod = core.read_namespaced_pod("jupyter-admin", conn.namespace)
    assert pod.metadata.labels["component"] == "singleuser-server"
    assert pod.metadata.annotations["hub.jupyter.org/username"] == "admin"
    assert pod.spec.containers[0].image == "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0"
    (home,) = [v for v in pod.spec.volumes if v.persistent_volume_claim]
    assert home.persistent_volume_claim.claim_name == "claim-admin"
    assert core.read_namespaced_persistent_volume_claim("claim-admin", conn.namespace).status.phase == "Bound"
    assert _threads("jhtutorial-login") == [] and _threads("jhtutorial-localhub") == []


def test_a_second_login_replaces_the_earlier_pod_and_keeps_the_home_volume(conn: Connection,
                                                                           api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    before = core.read_namespaced_pod("jupyter-admin", conn.namespace).metadata.uid
    result = login(conn=conn, proxy="none", server_wait=1)
    texts = [stage.text for stage in result.stages]
    assert any(t.startswith("pod jupyter-admin already exists") for t in texts)
    assert any(t.startswith("PVC claim-admin already exists (Bound)") for t in texts)
    assert "the earlier pod jupyter-admin deleted" in texts
    assert core.read_namespaced_pod("jupyter-admin", conn.namespace).metadata.uid != before


def test_a_wrong_password_is_refused_by_the_hub(conn: Connection) -> None:
    with pytest.raises(LoginFailed) as caught:
        login(password="not-the-password", conn=conn, proxy="none")
    assert "HTTP 403 'Invalid username or password'" in caught.value.problem
    assert caught.value.exit_code == 9
    result = caught.value.result  # type: ignore[attr-defined]
    assert not result.logged_in and result.stages
    assert _threads("jhtutorial-localhub") == []


def test_the_local_hub_uses_the_hub_accounts_own_permissions(kubeconfig: Path, other_namespace: str) -> None:
    """Take 'create' away from the hub's Role: KubeSpawner is refused, so it holds that token, not ours."""
    limited = connect(namespace=other_namespace, kubeconfig=kubeconfig)
    try:
        _deploy(limited)
        KubeApi(limited.api).call(
            "PATCH", ROLES.path(other_namespace, "hub"), content_type="application/merge-patch+json",
            body={"rules": [{"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims"],
                             "verbs": ["get", "list", "watch", "delete"]},
                            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]}]},
        )
        with pytest.raises(LoginFailed) as caught:
            login(conn=limited, proxy="none")
        assert (f'User "system:serviceaccount:{other_namespace}:hub" cannot create resource '
                '"persistentvolumeclaims"') in caught.value.problem
        assert caught.value.result.logged_in  # type: ignore[attr-defined]
        assert caught.value.result.pod is None  # type: ignore[attr-defined]
    finally:
        limited.close()


def test_the_cluster_path_reports_a_server_that_never_answers(conn: Connection) -> None:
    """login(hub='cluster') against a hub URL: the path a real cluster takes, here with the local hub."""
    with LocalHub(conn, proxy="none") as hub:
        with pytest.raises(LoginFailed) as caught:
            login(conn=conn, hub="cluster", url=hub.url, timeout=8)
    result = caught.value.result  # type: ignore[attr-defined]
    assert result.logged_in and not result.server_answered and result.hub == "cluster"
    assert "the server did not come up" in caught.value.problem
    assert any(stage.text.startswith(f"{hub.url}/user/admin/api: ") for stage in result.stages)


def test_the_local_hub_refuses_an_unknown_proxy_choice(conn: Connection) -> None:
    with pytest.raises(LocalHubFailed, match="unknown proxy choice"):
        LocalHub(conn, proxy="nginx").start()


@pytest.mark.skipif(find_chp() is None, reason="configurable-http-proxy is not installed (npm install "
                    "--prefix ~/.cache/jhtutorial/chp configurable-http-proxy@5.2.0)")
def test_login_through_configurable_http_proxy(conn: Connection) -> None:
    result = login(conn=conn, proxy="chp", server_wait=1)
    assert result.ok and any("configurable-http-proxy in front" in s.text for s in result.stages)
    # the request to the user's server went through the proxy's route to the pod's address
    assert any(re.match(r"http://127\.0\.0\.1:\d+/user/admin/api: ", s.text) for s in result.stages)
    assert not result.server_answered
    # no route for the user yet: the hub answered, and the report says so plainly
    assert re.fullmatch(r"HTTP 302 -> /hub/user/admin/api: no server of admin is running, so the hub answered "
                        r"instead and redirected the request", result.server_answer), result.server_answer
