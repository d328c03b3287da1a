"""Zero to JupyterHub's own checks of a deployed hub, against the tutorial's hub in pod sandboxes.

Zero to JupyterHub's CI checks every hub it deploys through the hub's REST API
and kubectl: the API's version and ``/info`` (KubeSpawner), a user created, read
and listed, the proxy's routes (``/hub/api/proxy``), a server spawned through the
API until it is ready, that server answering behind the proxy, the user deleted
(its server stopped), and ``kubectl exec deploy/hub`` / ``kubectl logs
deploy/hub``. The same checks, written for this tutorial, run here against its
hub on a local cluster of the module's own, its pods in sandboxes.

Everything goes through the API server, as on a real cluster: the REST API through
``kubectl port-forward`` to proxy-public (nginx, then configurable-http-proxy, then
the hub), the hub's own command through ``kubectl exec``. Nothing here connects to
a pod or Service IP from the machine's network.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from kubernetes import client, config

from jhtutorial.access import hub_access
from jhtutorial.connect import Connection, connect
from jhtutorial.localcluster import LocalCluster, ensure_binaries
from tests.kubehelpers import deploy_workbook, hub_api_token, until

pytestmark = pytest.mark.cluster
CONFIG_FILE = "/usr/local/etc/jupyterhub/jupyterhub_config.py"  # where deploy-hub.yaml mounts the ConfigMap
CHECKED_USER = "z2jh-check"  # a user of the checks' own, created and deleted through the API
SPAWN_SECONDS = 120


@dataclass
class HubApi:
    """The hub's REST API at ``base``/hub/api, as a token's owner calls it."""

    base: str
    token: str = field(repr=False)  # never in a failure's report

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {token or self.token}"}
        return requests.request(method, f"{self.base}/hub/api{path}", headers=headers, timeout=30, **kwargs)

    def spawned(self, user: str) -> dict[str, Any]:
        """Ask the hub to start ``user``'s server, as ``POST /users/NAME/server`` does; its server model once
        ready (Zero to JupyterHub waits the same way)."""
        started = self.call("POST", f"/users/{user}/server")
        assert started.status_code in (201, 202), f"spawn of {user}: HTTP {started.status_code} {started.text[:200]}"

        def ready() -> dict[str, Any] | None:
            model = self.call("GET", f"/users/{user}").json()
            assert "" in model["servers"], f"{user}'s server is gone: the spawn failed (kubectl logs deploy/hub)"
            server = model["servers"][""]
            return server if server["ready"] else None

        return until(f"{user}'s server ready", ready, timeout=SPAWN_SECONDS, every=1)


@pytest.fixture(scope="module")
def deployed(sandboxed_cluster: LocalCluster) -> Iterator[Connection]:
    """The tutorial deployed as notebook 06 leaves it, in a namespace made as `jhtutorial up` makes it."""
    conn = connect(namespace=f"hubchecks-{int(time.time()) % 100000}", kubeconfig=sandboxed_cluster.kubeconfig)
    try:
        deploy_workbook(conn)
        yield conn
    finally:
        conn.close()


@pytest.fixture(scope="module")
def core(sandboxed_cluster: LocalCluster) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(sandboxed_cluster.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


@pytest.fixture(scope="module")
def hub(deployed: Connection) -> Iterator[HubApi]:
    """The REST API through a port-forward to proxy-public, with an API token of admin's."""
    access = hub_access(deployed)
    try:
        assert access.url, access.notes
        yield HubApi(access.url, hub_api_token(access.url))
    finally:
        access.close()


def _kubectl(conn: Connection, *args: str) -> str:
    result = subprocess.run([str(ensure_binaries().kubectl), "--kubeconfig", str(conn.kubeconfig),
                             "-n", conn.namespace, *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"kubectl {' '.join(args[:3])}: {result.stderr[-500:]}"
    return result.stdout


def test_the_api_names_the_version_the_hubs_own_program_prints(hub: HubApi, deployed: Connection) -> None:
    root = hub.call("GET", "")
    assert root.status_code == 200
    # `kubectl exec deploy/hub`: the hub's command, inside the hub's pod, as the hub's user
    assert root.json()["version"] == _kubectl(deployed, "exec", "deploy/hub", "--", "jupyterhub", "--version").strip()


def test_info_names_kubespawner(hub: HubApi) -> None:
    info = hub.call("GET", "/info")
    assert info.status_code == 200
    assert info.json()["spawner"]["class"] == "kubespawner.spawner.KubeSpawner"
    assert hub.call("GET", "/info", token="not-a-token").status_code == 403


def test_a_token_made_by_the_hubs_command_in_the_pod_is_accepted(hub: HubApi, deployed: Connection) -> None:
    """What an admin does on any hub: `kubectl exec deploy/hub -- jupyterhub token admin`. The hub's
    configuration needs the pod's environment (POD_NAMESPACE from the downward API), so this also shows that
    exec starts with the container's environment."""
    made = _kubectl(deployed, "exec", "deploy/hub", "--", "jupyterhub", "token", "admin", "--config", CONFIG_FILE)
    token = made.strip().splitlines()[-1]
    me = hub.call("GET", "/user", token=token)
    assert me.status_code == 200 and me.json()["name"] == "admin" and me.json()["admin"] is True


def test_a_created_user_is_known_and_listed(hub: HubApi) -> None:
    created = hub.call("POST", f"/users/{CHECKED_USER}")
    assert created.status_code == 201, created.text[:200]
    assert hub.call("POST", f"/users/{CHECKED_USER}").status_code == 409  # once only
    model = hub.call("GET", f"/users/{CHECKED_USER}").json()
    assert model["name"] == CHECKED_USER and model["admin"] is False and model["servers"] == {}
    listed = {user["name"]: user for user in hub.call("GET", "/users").json()}
    assert CHECKED_USER in listed and listed["admin"]["admin"] is True


def test_a_spawn_through_the_api_is_routed_to_the_pod_ip_and_answers_behind_the_proxy(
        hub: HubApi, deployed: Connection, core: client.CoreV1Api) -> None:
    server = hub.spawned("admin")
    pod = core.read_namespaced_pod("jupyter-admin", deployed.namespace)
    assert pod.status.pod_ip and pod.status.pod_ip.startswith("10.244.")
    # the proxy's routing table, as the hub reads it from CHP's API: the user's path leads to the pod's own IP
    routes = hub.call("GET", "/proxy").json()
    assert routes["/user/admin/"]["target"] == f"http://{pod.status.pod_ip}:8888"
    assert routes["/user/admin/"]["data"]["user"] == "admin"
    # the server itself, through nginx and CHP (Zero to JupyterHub asks the server's /api the same way)
    answer = requests.get(f"{hub.base}{server['url']}api", headers={"Authorization": f"token {hub.token}"},
                          timeout=30)
    assert answer.status_code == 200 and "version" in answer.json()


def test_deleting_a_user_stops_their_server_and_removes_its_pod(hub: HubApi, deployed: Connection,
                                                                core: client.CoreV1Api) -> None:
    if hub.call("GET", f"/users/{CHECKED_USER}").status_code == 404:
        hub.call("POST", f"/users/{CHECKED_USER}")  # run alone, without the test that creates it
    hub.spawned(CHECKED_USER)
    pod = f"jupyter-{CHECKED_USER}"
    assert core.read_namespaced_pod(pod, deployed.namespace).status.phase == "Running"

    def deleted() -> bool:
        # 400 while the server is still stopping (Zero to JupyterHub asks again the same way)
        answer = hub.call("DELETE", f"/users/{CHECKED_USER}")
        assert answer.status_code in (204, 400, 404), f"HTTP {answer.status_code} {answer.text[:200]}"
        return answer.status_code in (204, 404)

    until(f"the hub deleted {CHECKED_USER}", deleted, timeout=60, every=1)
    assert hub.call("GET", f"/users/{CHECKED_USER}").status_code == 404
    until(f"KubeSpawner deleted pod {pod}", lambda: pod not in [
        p.metadata.name for p in core.list_namespaced_pod(deployed.namespace).items], timeout=60)


def test_the_hubs_log_shows_the_api_requests(hub: HubApi, deployed: Connection) -> None:
    hub.call("GET", "/info")
    logs = _kubectl(deployed, "logs", "deploy/hub")
    assert "GET /hub/api/info" in logs and "/hub/api/users" in logs
