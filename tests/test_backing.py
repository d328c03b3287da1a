"""Pods backed by their real programs, in sandboxes, on the local cluster: the whole way in.

A namespace marked as the tutorial marks its own (label jhtutorial/backed=true)
gets the steps applied; the cluster's supervisor then runs nginx, configurable-
http-proxy, JupyterHub with KubeSpawner, and jupyterhub-singleuser for its pods.
Everything is reached the way a learner reaches it: `kubectl port-forward`, HTTP,
`kubectl logs`, the API server. A second namespace without the mark shows that
its pods stay purely simulated.
"""

from __future__ import annotations

import base64
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from kubernetes import client

from jhtutorial import STEPS, apply, clean_up
from jhtutorial.access import PipeReader, hub_access, not_backed
from jhtutorial.connect import Connection, connect
from jhtutorial.errors import LoginFailed
from jhtutorial.localcluster import LocalCluster
from jhtutorial.localcluster.backing import BACKED_BY_ANNOTATION, BACKED_LABEL, CLASSROOM_LABEL, KWOK_STATUS_ANNOTATION
from jhtutorial.localcluster.backing.programs import program_for
from jhtutorial.kubeapi import PODS, KubeApi
from jhtutorial.login import login
from jhtutorial.waits import wait_pods_ready
from tests.conftest import TEST_LABEL

pytestmark = pytest.mark.cluster
HUB = "app.kubernetes.io/component=hub"
PROXY = "app.kubernetes.io/component=proxy"


def _deploy(conn: Connection) -> None:
    for step in STEPS:
        if step.files:
            apply(step, conn=conn)
            step.wait(conn)


def _make_namespace(api_client: client.ApiClient, name: str, labels: dict[str, str]) -> None:
    client.CoreV1Api(api_client).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={TEST_LABEL: "true", **labels})))


@pytest.fixture(scope="module")
def supervisor(backing: LocalCluster | None) -> LocalCluster:
    if backing is None:
        pytest.skip("pods are backed by their programs only on the local simulated cluster")
    return backing


@pytest.fixture(scope="module")
def backed(supervisor: LocalCluster, api_client: client.ApiClient, kubeconfig: Path,
           request: pytest.FixtureRequest) -> Iterator[Connection]:
    name = f"jht-backed-{int(time.time()) % 100000}"
    _make_namespace(api_client, name, {BACKED_LABEL: "true"})
    conn = connect(namespace=name, kubeconfig=kubeconfig)
    try:
        _deploy(conn)
        wait_pods_ready(f"{HUB}", conn=conn, timeout=90)
        wait_pods_ready(f"{PROXY}", conn=conn, timeout=90)
        yield conn
    finally:
        clean_up(conn, delete_namespace=True, timeout=120)
        conn.close()


def _kubectl(kubectl: Path, kubeconfig: Path, *args: str) -> str:
    result = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                            timeout=60)
    return result.stdout + result.stderr


class _PortForward:
    """`kubectl port-forward -n NS TARGET :PORT`, as a learner types it; its output is read all along."""

    def __init__(self, kubectl: Path, kubeconfig: Path, namespace: str, target: str, port: int) -> None:
        self.process = subprocess.Popen([str(kubectl), "--kubeconfig", str(kubeconfig), "port-forward", "-n",
                                         namespace, target, f":{port}", "--address", "127.0.0.1"],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.output = PipeReader(self.process)
        local = self.output.wait_for(re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)"), 20)
        assert local, self.output.tail()
        self.url = f"http://127.0.0.1:{local}"

    def __enter__(self) -> _PortForward:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.output.join()


def _backing_pids(cluster: LocalCluster, namespace: str) -> list[int]:
    pods = cluster.supervisor.status().get("pods", {})
    return [c["pid"] for key, report in pods.items() if key.startswith(namespace + "/")
            for c in report["containers"].values() if c.get("pid")]


def _listening(pids: list[int]) -> list[str]:
    """The addresses the processes (and their children) listen on, from the kernel's socket table."""
    table = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    addresses = []
    groups = {str(pid) for pid in pids}
    for line in table.splitlines():
        owners = set(re.findall(r"pid=(\d+)", line))
        pgids = {Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[2]
                 for p in owners if Path(f"/proc/{p}/stat").exists()}
        if owners & groups or pgids & groups:
            addresses.append(line.split()[3])
    return addresses


# --- who gets backed --------------------------------------------------------------------------------


def test_a_namespace_without_the_mark_stays_purely_simulated(supervisor: LocalCluster, api_client: client.ApiClient,
                                                             kubeconfig: Path) -> None:
    names = [f"jht-unmarked-{int(time.time()) % 100000}", f"jht-classroom-{int(time.time()) % 100000}"]
    _make_namespace(api_client, names[0], {})
    # a classroom's kept simulated (`classroom up --simulated`)
    _make_namespace(api_client, names[1], {BACKED_LABEL: "false", CLASSROOM_LABEL: "learner-1"})
    try:
        for name in names:
            conn = connect(namespace=name, kubeconfig=kubeconfig)
            try:
                _deploy(conn)
                time.sleep(2)  # what the supervisor would have done by now, it would have done within 2 s
                pods = client.CoreV1Api(api_client).list_namespaced_pod(name).items
                assert pods and all(BACKED_BY_ANNOTATION not in (p.metadata.annotations or {}) for p in pods)
                assert not _backing_pids(supervisor, name)
                assert "purely simulated" in (not_backed(conn) or "") or "classroom" in (not_backed(conn) or "")
                assert hub_access(conn).url is None
            finally:
                conn.close()
    finally:
        for name in names:
            client.CoreV1Api(api_client).delete_namespace(name, propagation_policy="Background")


# --- the way in -----------------------------------------------------------------------------------


@pytest.mark.parametrize("image", [
    "quay.io/jupyterhub/k8s-hub:4.4.0", "quay.io/jupyterhub/k8s-hub", "nginx", "nginx:1.27@sha256:0123abcd",
    "docker.io/library/nginx:latest", "quay.io/jupyterhub/k8s-hub-extra:4.4.0", "nginx:5000/other:1", "busybox:1.36",
])
def test_the_api_server_hands_over_exactly_the_pods_the_supervisor_backs(supervisor: LocalCluster,
                                                                        api_client: client.ApiClient,
                                                                        image: str) -> None:
    # the admission policy's CEL and Program.matches come from one pattern: a pod the API server gives to the
    # supervisor (kwok leaves its status alone) is one the supervisor runs, and no other
    name = f"jht-handover-{int(time.time() * 1000) % 10**8}"
    _make_namespace(api_client, name, {BACKED_LABEL: "true"})
    try:
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"},
               "spec": {"containers": [{"name": "main", "image": image}]}}
        created = KubeApi(api_client).call("POST", PODS.path(name), query={"dryRun": "All"}, body=pod)
        handed_over = (created["metadata"].get("annotations") or {}).get(KWOK_STATUS_ANNOTATION) == "custom"
        assert handed_over == (program_for(image) is not None), (image, created["metadata"])
    finally:
        client.CoreV1Api(api_client).delete_namespace(name)


def test_login_through_nginx_chp_and_the_hub_lands_in_jupyterlab(backed: Connection, supervisor: LocalCluster,
                                                                 kubectl: Path, kubeconfig: Path,
                                                                 api_client: client.ApiClient) -> None:
    ns = backed.namespace
    with _PortForward(kubectl, kubeconfig, ns, "svc/proxy-public", 80) as forward:
        page = requests.get(f"{forward.url}/hub/login", timeout=20)
        assert page.status_code == 200 and "JupyterHub" in page.text and 'name="_xsrf"' in page.text
        assert page.headers.get("Server") == "nginx"  # nginx answered first, then CHP, then the hub
        result = login(conn=backed, url=forward.url, timeout=90)
        assert result.ok and result.server_answered and "a Jupyter server answered" in result.server_answer
        # a browser without the hub's cookie is sent from JupyterLab to the hub to log in (OAuth)
        lab = requests.get(f"{forward.url}/user/admin/lab", timeout=20, allow_redirects=False)
        assert lab.status_code == 302 and "/hub/api/oauth2/authorize" in lab.headers["Location"]
    core = client.CoreV1Api(api_client)
    pod = core.read_namespaced_pod("jupyter-admin", ns)
    assert pod.metadata.labels["component"] == "singleuser-server"
    assert BACKED_BY_ANNOTATION in pod.metadata.annotations
    assert core.read_namespaced_persistent_volume_claim("claim-admin", ns).status.phase == "Bound"
    # admin's server works in claim-admin's volume, mounted at its mountPath
    logs = _kubectl(kubectl, kubeconfig, "logs", "-n", ns, "jupyter-admin")
    assert "Serving notebooks from local directory: /home/jovyan" in logs
    # CHP's route table, asked on its API port with the Secret's token, holds admin's route
    token = base64.b64decode(core.read_namespaced_secret("hub-secret", ns).data["proxy.token"]).decode()
    with _PortForward(kubectl, kubeconfig, ns, "svc/proxy-api", 8001) as api:
        routes = requests.get(f"{api.url}/api/routes", headers={"Authorization": f"token {token}"}, timeout=10)
        assert routes.status_code == 200 and "/user/admin" in routes.json(), routes.text  # CHP drops the last /
        refused = requests.get(f"{api.url}/api/routes", headers={"Authorization": "token wrong"}, timeout=10)
        assert refused.status_code == 403
    # the pod IP, real in the pod network
    assert routes.json()["/user/admin"]["target"] == f"http://{pod.status.pod_ip}:8888"


def test_follow_login_sees_what_a_browser_does(backed: Connection, kubectl: Path, kubeconfig: Path) -> None:
    """Notebook 07 with a learner at the browser: the cell follows a login it did not make."""
    import threading

    from jhtutorial import follow_login

    with _PortForward(kubectl, kubeconfig, backed.namespace, "svc/proxy-public", 80) as forward:
        browser = threading.Thread(target=lambda: login("carol", "admin", conn=backed, url=forward.url, timeout=90))
        browser.start()
        seen = follow_login(forward.url, "carol", conn=backed, timeout=90)
        browser.join(100)
        assert seen.server_answered and seen.pod == "jupyter-carol", str(seen)
        again = follow_login(forward.url, "carol", conn=backed, timeout=20)  # already running: seen at once
        assert again.server_answered and again.seconds < 10, str(again)
        # a learner who has not logged in yet is no problem of the hub's: the wait ends saying so, plainly
        nobody = follow_login(forward.url, "dave", conn=backed, timeout=2)
        assert not nobody.server_answered and nobody.pod is None, str(nobody)
        assert nobody.server_answer == "nobody logged in as dave within 2 s"
        assert not [stage for stage in nobody.stages if not stage.ok], str(nobody)


def test_no_backing_process_listens_in_the_machines_network(backed: Connection, supervisor: LocalCluster) -> None:
    pids = _backing_pids(supervisor, backed.namespace)
    assert len(pids) >= 3  # hub, nginx, chp (and admin's server when the login test ran)
    # in the pods' own networks: nothing in the machine's (more in tests/test_sandboxed_backing.py)
    assert not _listening(pids)


def test_the_live_view_and_status_say_which_pods_run_in_sandboxes(backed: Connection, supervisor: LocalCluster) -> None:
    from jhtutorial import LiveView
    from jhtutorial.access import backing_report

    with LiveView(backed) as view:  # started on entry, with the first lists in
        text = view.snapshot()
    assert "RUNS AS" in text and re.search(r"hub-<hash>-<id> +Running +1/1 +\d+ +sandbox", text), text
    report = "\n".join(backing_report(backed))
    assert re.search(r"proxy-\S+: a sandbox on this machine \(pod IP 10\.244\.\d+\.\d+; nginx as uid 101, "
                     r"chp as uid 65534\)", report), report


def test_kubectl_logs_shows_the_hubs_real_output(backed: Connection, kubectl: Path, kubeconfig: Path) -> None:
    logs = _kubectl(kubectl, kubeconfig, "logs", "-n", backed.namespace, "deploy/hub")
    assert "JupyterHub is now running" in logs
    assert "Using Spawner: kubespawner.spawner.KubeSpawner-7.0.0" in logs
    chp = _kubectl(kubectl, kubeconfig, "logs", "-n", backed.namespace, "deploy/proxy", "-c", "chp")
    # the hub Service's name, unchanged in a sandbox
    assert "Adding route / -> http://hub:8081" in chp


# --- failures show as they would in a cluster --------------------------------------------------------


def _replace_hub(conn: Connection, api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(api_client)
    for pod in core.list_namespaced_pod(conn.namespace, label_selector=HUB).items:
        core.delete_namespaced_pod(pod.metadata.name, conn.namespace)


def _replaced_hub_pod(conn: Connection, api_client: client.ApiClient) -> client.V1Pod:
    """Delete the hub pod, as `kubectl delete pod` does, and return the Deployment's replacement."""
    old = _hub_names(conn, api_client)
    _replace_hub(conn, api_client)
    return _new_hub_pod(conn, api_client, old)


def _new_hub_pod(conn: Connection, api_client: client.ApiClient, old: set[str], timeout: float = 60) -> client.V1Pod:
    core = client.CoreV1Api(api_client)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = [p for p in core.list_namespaced_pod(conn.namespace, label_selector=HUB).items
                if p.metadata.name not in old and not p.metadata.deletion_timestamp]
        if pods:
            return pods[0]
        time.sleep(0.5)
    raise AssertionError("no replacement hub pod")


def _hub_names(conn: Connection, api_client: client.ApiClient) -> set[str]:
    return {p.metadata.name for p in client.CoreV1Api(api_client).list_namespaced_pod(conn.namespace,
                                                                                      label_selector=HUB).items}


def test_a_replaced_hub_finds_admin_and_the_running_server_again(backed: Connection, api_client: client.ApiClient,
                                                                  kubectl: Path, kubeconfig: Path) -> None:
    with _PortForward(kubectl, kubeconfig, backed.namespace, "svc/proxy-public", 80) as forward:
        login(conn=backed, url=forward.url, timeout=90)
    new = _replaced_hub_pod(backed, api_client)
    wait_pods_ready(HUB, conn=backed, timeout=60)
    logs = _kubectl(kubectl, kubeconfig, "logs", "-n", backed.namespace, new.metadata.name)
    assert "admin still running" in logs, logs[-2000:]  # read from the sqlite database on hub-db-dir
    with _PortForward(kubectl, kubeconfig, backed.namespace, "svc/proxy-public", 80) as forward:
        again = login(conn=backed, url=forward.url, timeout=60)
    assert again.ok
    assert any("already exists" in stage.text for stage in again.stages)


def test_a_wrong_proxy_token_shows_in_the_hub_log_and_a_fixed_secret_recovers(
        backed: Connection, api_client: client.ApiClient, kubectl: Path, kubeconfig: Path) -> None:
    core = client.CoreV1Api(api_client)
    secret = core.read_namespaced_secret("hub-secret", backed.namespace)
    good = secret.data["proxy.token"]
    core.patch_namespaced_secret("hub-secret", backed.namespace,
                                 {"data": {"proxy.token": base64.b64encode(b"not-the-token").decode()}})
    try:
        new = _replaced_hub_pod(backed, api_client)
        deadline = time.monotonic() + 60
        logs = ""
        while time.monotonic() < deadline and "403" not in logs:
            time.sleep(1)
            logs = _kubectl(kubectl, kubeconfig, "logs", "-n", backed.namespace, new.metadata.name)
        assert "403" in logs and "proxy" in logs.lower(), logs[-2000:]
        pod = core.read_namespaced_pod(new.metadata.name, backed.namespace)
        assert not any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
    finally:
        core.patch_namespaced_secret("hub-secret", backed.namespace, {"data": {"proxy.token": good}})
    _replaced_hub_pod(backed, api_client)  # with the good configuration back
    wait_pods_ready(HUB, conn=backed, timeout=60)


def test_a_syntax_error_in_hub_config_keeps_the_hub_unready_with_its_traceback(
        backed: Connection, api_client: client.ApiClient, kubectl: Path, kubeconfig: Path) -> None:
    core = client.CoreV1Api(api_client)
    config = core.read_namespaced_config_map("hub-config", backed.namespace)
    good = config.data["jupyterhub_config.py"]
    core.patch_namespaced_config_map("hub-config", backed.namespace,
                                     {"data": {"jupyterhub_config.py": good + "\nc.JupyterHub.oops = (\n"}})
    try:
        new = _replaced_hub_pod(backed, api_client)
        deadline = time.monotonic() + 60
        pod = core.read_namespaced_pod(new.metadata.name, backed.namespace)
        while time.monotonic() < deadline:
            pod = core.read_namespaced_pod(new.metadata.name, backed.namespace)
            if any(s.restart_count for s in pod.status.container_statuses or []):
                break
            time.sleep(0.5)
        assert pod.status.container_statuses[0].restart_count >= 1
        assert not pod.status.container_statuses[0].ready
        logs = _kubectl(kubectl, kubeconfig, "logs", "-n", backed.namespace, new.metadata.name)
        assert "SyntaxError" in logs and "Traceback" in logs, logs[-2000:]
        with pytest.raises(LoginFailed) as caught:
            login(conn=backed, timeout=3)
        assert f"kubectl logs -n {backed.namespace} deploy/hub" in caught.value.fix
    finally:
        core.patch_namespaced_config_map("hub-config", backed.namespace, {"data": {"jupyterhub_config.py": good}})
    _replaced_hub_pod(backed, api_client)  # with the good configuration back
    wait_pods_ready(HUB, conn=backed, timeout=60)


# --- clean-up ----------------------------------------------------------------------------------------


def test_clean_up_stops_every_backing_process_of_the_namespace(supervisor: LocalCluster,
                                                               api_client: client.ApiClient,
                                                               kubeconfig: Path) -> None:
    name = f"jht-backed-down-{int(time.time()) % 100000}"
    _make_namespace(api_client, name, {BACKED_LABEL: "true"})
    conn = connect(namespace=name, kubeconfig=kubeconfig)
    try:
        _deploy(conn)
        wait_pods_ready(HUB, conn=conn, timeout=90)
        pids = _backing_pids(supervisor, name)
        assert len(pids) == 3
        clean_up(conn, timeout=120)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
            time.sleep(0.2)
        assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()]
        assert not _backing_pids(supervisor, name)
    finally:
        conn.close()
        client.CoreV1Api(api_client).delete_namespace(name, propagation_policy="Background")
