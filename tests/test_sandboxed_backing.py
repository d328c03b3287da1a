"""The tutorial deployed on a local cluster of the module's own, whose backed pods run in sandboxes.

Real: the hub, the proxy and a user server run their programs inside sandboxes; the
checks read the kernel's socket tables, enter the pods through the API server
(`kubectl exec`, `kubectl port-forward`) and log in as a learner does. Nothing here
sends a packet from the machine's own network namespace to a pod or Service IP.

The module makes a cluster of its own in that mode, in a temporary state folder (the session's cluster is
left as it is), and removes it at the end (conftest's ``sandboxed_cluster``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pwd
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import websocket
from kubernetes import client, config

from jhtutorial import STEPS, apply, clean_up
from jhtutorial.access import hub_access
from jhtutorial.connect import Connection, connect
from jhtutorial.localcluster import LocalCluster
from jhtutorial.localcluster.backing import BACKED_BY_ANNOTATION, BACKED_LABEL, SANDBOXED_BY, seccomp
from jhtutorial.localcluster.backing.control import SupervisorControl
from jhtutorial.localcluster.backing.network import ServiceRoute, router_name
from jhtutorial.localcluster.backing.pod_networks import routes_for
from jhtutorial.localcluster.backing.sandbox import RUNTIME_ROOT, RunAs
from jhtutorial.localcluster.backing.sandboxed_pod import run_as
from jhtutorial.login import login
from jhtutorial.waits import wait_pods_ready
from tests.conftest import TEST_LABEL
from tests.kubehelpers import hub_api_token, sandbox_processes

HUB = "app.kubernetes.io/component=hub"
PROXY = "app.kubernetes.io/component=proxy"
SERVER_PROGRAMS = ("nginx", "node", "jupyterhub", "jupyterhub-singleuser", "python")


# --- what needs no cluster: whose user a container runs as, where a Service leads ------------------------


def test_a_container_runs_as_its_user_with_the_pods_groups_and_never_as_root_by_default() -> None:
    pod = {"spec": {"securityContext": {"fsGroup": 100, "supplementalGroups": [5, 100], "runAsUser": 1000}}}
    assert run_as(pod, {"securityContext": {"runAsGroup": 1001}}) == RunAs(1000, 1001, (100, 5))
    assert run_as(pod, {"securityContext": {"runAsUser": 101}}) == RunAs(101, 101, (100, 5))
    assert run_as({"spec": {}}, {}) == RunAs(65534, 65534, ())  # no image to name a user: nobody


def test_a_service_leads_to_its_ready_pods_only_by_their_pod_ips() -> None:
    def pod(name: str, labels: dict[str, str]) -> dict:
        return {"metadata": {"name": name, "labels": labels},
                "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8081}]}]}}

    hub, old_hub, proxy = pod("hub-1", {"c": "hub"}), pod("hub-0", {"c": "hub"}), pod("proxy", {"c": "proxy"})
    services = [{"spec": {"clusterIP": "10.96.0.20", "selector": {"c": "hub"},
                          "ports": [{"port": 8081, "targetPort": "http"}]}},
                {"spec": {"clusterIP": "None", "selector": {"c": "hub"}, "ports": [{"port": 8081}]}},
                {"spec": {"clusterIP": "10.96.0.21", "selector": {"c": "nothing"}, "ports": [{"port": 80}]}}]
    routes = routes_for(services, [(hub, "10.244.0.5", True), (old_hub, "10.244.0.4", False),
                                   (proxy, "10.244.0.6", True)])
    assert routes == [ServiceRoute("10.96.0.20", 8081, "TCP", (("10.244.0.5", 8081),)),
                      ServiceRoute("10.96.0.21", 80, "TCP", ())]  # no endpoint: refused, as kube-proxy does


# --- the tutorial in sandboxes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kubeconfig(sandboxed_cluster: LocalCluster) -> Path:
    """This module's sandboxed cluster, in place of the session's (conftest's fixture of the same name)."""
    return sandboxed_cluster.kubeconfig


@pytest.fixture(scope="module")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


def _namespace(api_client: client.ApiClient, hint: str) -> str:
    name = f"jht-{hint}-{int(time.time()) % 100000}"
    client.CoreV1Api(api_client).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name, labels={TEST_LABEL: "true", BACKED_LABEL: "true"})))
    return name


@pytest.fixture(scope="module")
def deployed(sandboxed_cluster: LocalCluster, api_client: client.ApiClient, kubeconfig: Path) -> Iterator[Connection]:
    conn = connect(namespace=_namespace(api_client, "sandboxed"), kubeconfig=kubeconfig)
    try:
        for step in STEPS:
            if step.files:
                apply(step, conn=conn)
                step.wait(conn)
        wait_pods_ready(HUB, conn=conn, timeout=120)
        wait_pods_ready(PROXY, conn=conn, timeout=120)
        yield conn
    finally:
        clean_up(conn, delete_namespace=True, timeout=120)
        conn.close()


def _kubectl(kubectl: Path, kubeconfig: Path, namespace: str, *args: str, check: bool = True) -> str:
    result = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "-n", namespace, *args],
                            capture_output=True, text=True, timeout=60, check=False)
    if check:
        assert result.returncode == 0, result.stderr
    return result.stdout


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _listening(table_owner: str) -> dict[str, int]:
    """Listening TCP sockets in the network namespace of /proc/<table_owner>: inode -> port."""
    found = {}
    for name in ("tcp", "tcp6"):
        for line in Path(f"/proc/{table_owner}/net/{name}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                found[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return found


def _servers(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}/comm").exists()
            and Path(f"/proc/{pid}/comm").read_text().strip().startswith(SERVER_PROGRAMS)]


def _no_listener_on_the_machine(cluster: LocalCluster, namespace: str) -> list[int]:
    """Asserts that no process of the namespace's sandboxes listens in the machine's network namespace;
    returns the ports they listen on inside their own."""
    host = _listening("self")  # this test runs in the machine's network namespace
    inside_ports: list[int] = []
    for key, pids in sandbox_processes(cluster, namespace).items():
        servers = _servers(pids)
        assert servers, f"{key}: no server process runs in its sandbox"
        for pid in servers:
            mine = _socket_inodes(pid)
            assert not mine & set(host), f"{key}: process {pid} listens in the machine's network namespace"
            inside = _listening(str(pid))  # the table of the process's own network namespace
            inside_ports += [port for inode, port in inside.items() if inode in mine]
    return sorted(set(inside_ports))


def _ports_once_listening(cluster: LocalCluster, namespace: str, count: int) -> list[int]:
    """_no_listener_on_the_machine, once ``count`` ports listen inside: a pod without a readiness probe is
    Ready as soon as its programs run, before they listen."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            ports = _no_listener_on_the_machine(cluster, namespace)
            if len(ports) >= count:
                return ports
        except AssertionError:
            pass  # a program not started yet (restarting); a listener on the machine fails the last try below
        time.sleep(0.5)
    return _no_listener_on_the_machine(cluster, namespace)


def test_a_pods_users_are_ids_of_the_owners_range_not_an_accounts(deployed: Connection,
                                                                   sandboxed_cluster: LocalCluster) -> None:
    """uid 1000 inside is an id of the owner's subordinate range on the machine: on most machines the machine's
    own uid 1000 is a person's account, who could otherwise read the pod's files and trace its programs."""
    from jhtutorial.localcluster.backing.user_namespace import subordinate_range

    granted = subordinate_range("uid")
    assert granted is not None, "cluster up records a range for the owner"
    reports = sandboxed_cluster.supervisor.status()["pods"]
    for key, pids in sandbox_processes(sandboxed_cluster, deployed.namespace).items():
        servers = _servers(pids)
        assert servers, key
        inside = {uid for uid, _, _ in reports[key]["users"].values()}  # the containers' runAsUser (1000, 101...)
        for pid in servers:
            uid = int(Path(f"/proc/{pid}/status").read_text().split("\nUid:")[1].split()[0])
            assert uid - granted[0] + 1 in inside, (key, pid, uid, inside)  # inside id N is the range's Nth
            with pytest.raises(KeyError):
                pwd.getpwuid(uid)


def test_nothing_of_a_sandboxed_pod_listens_on_the_machine(deployed: Connection, sandboxed_cluster: LocalCluster) -> None:
    ports = _no_listener_on_the_machine(sandboxed_cluster, deployed.namespace)
    # the hub (8081), CHP (8000, 8001) and nginx (8080) listen, each in its pod's own network
    assert {8000, 8001, 8080, 8081} <= set(ports)
    # and another account of the machine reaches none of them on the machine's loopback (a port some other
    # program of the machine listens on there, a kubectl port-forward say, answers for that program)
    others = set(_listening("self").values())
    ports = [port for port in ports if port not in others]
    assert ports
    probe = ("import socket,sys\nfor p in sys.argv[1:]:\n    s=socket.socket()\n    s.settimeout(2)\n"
             "    print(p, s.connect_ex(('127.0.0.1', int(p))))")
    out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c", probe,
                          *map(str, ports)], capture_output=True, text=True, check=True).stdout
    refused = [line for line in out.splitlines() if line.split()[1] != "0"]
    assert len(refused) == len(ports), out


# Run by kubectl exec inside a container: a digest of each variable of exec's own environment and of the
# environment the container's program (named by sys.argv[1]) started with. No value leaves the pod.
ENVIRONMENTS = (
    "import hashlib, json, os, sys\n"
    "def digests(pairs):\n"
    "    return {name: hashlib.sha256(value.encode()).hexdigest() for name, value in pairs}\n"
    "def runs(pid):\n"
    "    words = open(f'/proc/{pid}/cmdline', 'rb').read().split(b'\\0')[:2]\n"
    "    return any(os.path.basename(word) == sys.argv[1].encode() for word in words)\n"
    "program = min(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid() and runs(p))\n"
    "started = open(f'/proc/{program}/environ', 'rb').read().decode().split('\\0')\n"
    "print(json.dumps({'exec': digests(os.environ.items()),\n"
    "                  'program': digests(line.split('=', 1) for line in started if '=' in line)}))\n"
)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _environment_matches_the_container(kubectl: Path, kubeconfig: Path, core: client.CoreV1Api,
                                       pod: client.V1Pod, program: str) -> dict[str, str]:
    """Asserts that `kubectl exec` starts with the environment the container's program got, and that it holds
    each variable of the container's spec with its value (literal, from a Secret, from the pod's fields);
    returns exec's digests. Only digests are compared and shown, never a value."""
    container = pod.spec.containers[0]
    seen = json.loads(_kubectl(kubectl, kubeconfig, pod.metadata.namespace, "exec", pod.metadata.name, "-c",
                               container.name, "--", "python3", "-c", ENVIRONMENTS, program))
    assert seen["exec"] == seen["program"]
    for variable in container.env or []:
        source = variable.value_from
        if source is None:
            expected = variable.value or ""
        elif source.secret_key_ref is not None:
            secret = core.read_namespaced_secret(source.secret_key_ref.name, pod.metadata.namespace)
            expected = base64.b64decode(secret.data[source.secret_key_ref.key]).decode()
        elif source.field_ref is not None and source.field_ref.field_path == "metadata.namespace":
            expected = pod.metadata.namespace
        else:
            continue
        wanted = _digest(expected)  # a name, not a call, in the assertion: pytest shows no value on a failure
        assert seen["exec"].get(variable.name) == wanted, f"{variable.name} in exec's environment"
    return seen["exec"]


def test_exec_runs_inside_the_hub_as_its_user(deployed: Connection, kubectl: Path, kubeconfig: Path,
                                              api_client: client.ApiClient) -> None:
    namespace = deployed.namespace
    hub = client.CoreV1Api(api_client).list_namespaced_pod(namespace, label_selector=HUB).items[0]
    assert _kubectl(kubectl, kubeconfig, namespace, "exec", "deploy/hub", "--", "id", "-u").strip() == "1000"
    assert _kubectl(kubectl, kubeconfig, namespace, "exec", "deploy/hub", "--", "hostname").strip() == \
        hub.metadata.name
    config = client.CoreV1Api(api_client).read_namespaced_config_map("hub-config", namespace).data
    shown = _kubectl(kubectl, kubeconfig, namespace, "exec", "deploy/hub", "--",
                     "cat", "/usr/local/etc/jupyterhub/jupyterhub_config.py")
    assert shown == config["jupyterhub_config.py"]
    assert "jupyterhub.sqlite" in _kubectl(kubectl, kubeconfig, namespace, "exec", "deploy/hub", "--",
                                           "ls", "/srv/jupyterhub").split()
    for path in ("/usr/jhtutorial-was-here", "/usr/local/etc/jupyterhub/jhtutorial-was-here"):
        # the machine's files, and the ConfigMap's volume as the kubelet mounts it
        assert "Read-only file system" in subprocess.run(
            [str(kubectl), "--kubeconfig", str(kubeconfig), "-n", namespace, "exec", "deploy/hub", "--",
             "touch", path], capture_output=True, text=True).stderr
    assert not Path("/usr/jhtutorial-was-here").exists()
    # the database's volume is the hub's to write, through the pod's fsGroup
    _kubectl(kubectl, kubeconfig, namespace, "exec", "deploy/hub", "--", "touch", "/srv/jupyterhub/written")
    # the container's environment, the Secret's proxy token and the downward API's namespace included
    seen = _environment_matches_the_container(kubectl, kubeconfig, client.CoreV1Api(api_client), hub, "jupyterhub")
    assert {"CONFIGPROXY_AUTH_TOKEN", "POD_NAMESPACE", "PYTHONUNBUFFERED"} <= set(seen)


def test_a_login_spawns_a_server_the_proxy_reaches_at_its_pod_ip(deployed: Connection, kubectl: Path,
                                                                 kubeconfig: Path, api_client: client.ApiClient,
                                                                 sandboxed_cluster: LocalCluster) -> None:
    result = login("admin", "admin", conn=deployed, timeout=90)
    assert result.hub_said_ready, result
    pod = client.CoreV1Api(api_client).read_namespaced_pod("jupyter-admin", deployed.namespace)
    # CHP's routing table, asked from inside the hub's pod with the token the hub was given (exec has it too)
    ask = ("import json,os,urllib.request\n"
           "r=urllib.request.Request('http://proxy-api:8001/api/routes',"
           "headers={'Authorization':'token '+os.environ['CONFIGPROXY_AUTH_TOKEN']})\n"
           "print(json.dumps(json.load(urllib.request.urlopen(r))))")
    routes = json.loads(_kubectl(kubectl, kubeconfig, deployed.namespace, "exec", "deploy/hub", "--",
                                 "python3", "-c", ask))
    assert routes["/user/admin"]["target"] == f"http://{pod.status.pod_ip}:8888"
    user_pod = ("exec", "jupyter-admin", "--")
    assert _kubectl(kubectl, kubeconfig, deployed.namespace, *user_pod, "id", "-u").strip() == "1000"
    assert _kubectl(kubectl, kubeconfig, deployed.namespace, *user_pod, "hostname").strip() == "jupyter-admin"
    # the home folder is the claim's volume, the user's to write (fsGroup 100); the hub's token is in exec's
    # environment as the server got it
    _kubectl(kubectl, kubeconfig, deployed.namespace, *user_pod, "touch", "/home/jovyan/written")
    assert "written" in _kubectl(kubectl, kubeconfig, deployed.namespace, *user_pod, "ls", "/home/jovyan").split()
    seen = _environment_matches_the_container(kubectl, kubeconfig, client.CoreV1Api(api_client), pod,
                                              "jupyterhub-singleuser")
    assert {"JUPYTERHUB_API_TOKEN", "JUPYTERHUB_SERVICE_PREFIX"} <= set(seen)
    _no_listener_on_the_machine(sandboxed_cluster, deployed.namespace)


EDITED_POD = """
apiVersion: v1
kind: Pod
metadata: {name: edited, labels: {app: edited}}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  volumes: [{name: scratch, emptyDir: {}}, {name: conf, configMap: {name: edited-nginx}}]
  containers:
    - name: chp
      image: quay.io/jupyterhub/configurable-http-proxy:5.2.0
      command: [configurable-http-proxy]
      args: [--ip, 0.0.0.0, --port=8000, --api-ip=0.0.0.0, --api-port=8001,
             --default-target=http://127.0.0.1:9]
      securityContext: &restricted
        runAsUser: 65534
        runAsGroup: 65534
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
      volumeMounts: [{name: scratch, mountPath: /tmp/../etc/jhtutorial-escaped}]
    - name: nginx
      image: nginxinc/nginx-unprivileged:1.30.4-alpine-slim
      args: [nginx, -p, /tmp/, -c, /etc/nginx/../nginx/nginx.conf, -e, stderr, -g, daemon off;]
      securityContext: *restricted
      volumeMounts: [{name: conf, mountPath: /etc/nginx/nginx.conf, subPath: nginx.conf}]
"""
EDITED_NGINX = """
apiVersion: v1
kind: ConfigMap
metadata: {name: edited-nginx}
data:
  nginx.conf: |
    pid /tmp/nginx.pid;
    events {}
    http {
      client_body_temp_path /tmp/client_temp;
      proxy_temp_path /tmp/proxy_temp;
      fastcgi_temp_path /tmp/fastcgi_temp;
      uwsgi_temp_path /tmp/uwsgi_temp;
      scgi_temp_path /tmp/scgi_temp;
      access_log /dev/stdout;
      server { listen [::]:8088; listen 8089; }
    }
"""


def test_an_edited_manifest_stays_in_its_sandbox(sandboxed_cluster: LocalCluster, api_client: client.ApiClient,
                                                 kubectl: Path, kubeconfig: Path) -> None:
    namespace = _namespace(api_client, "edited")
    escaped = Path("/etc/jhtutorial-escaped")
    try:
        for manifest in (EDITED_NGINX, EDITED_POD.replace("/tmp/../etc/jhtutorial-escaped", "/srv/scratch")):
            subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply", "-f", "-"],
                           input=manifest, text=True, check=True, capture_output=True)
        conn = connect(namespace=namespace, kubeconfig=kubeconfig)
        wait_pods_ready("app=edited", conn=conn, timeout=90)
        ports = _ports_once_listening(sandboxed_cluster, namespace, 4)
        assert {8000, 8001, 8088, 8089} <= set(ports), ports  # they bind every interface: of their own pod
        router = router_name(namespace)
        # the supervisor's /run is its own (the pods' sandboxes are made in its user namespace)
        seen_by_it = Path(f"/proc/{sandboxed_cluster.supervisor.pid()}/root")
        assert (seen_by_it / "run" / "netns" / router).exists()
        sandbox_keys = [r["sandbox"] for k, r in sandboxed_cluster.supervisor.status()["pods"].items()
                        if k.startswith(namespace + "/")]
        assert sandbox_keys and all((seen_by_it / RUNTIME_ROOT.relative_to("/") / key).exists() for key in sandbox_keys)

        # a mount path that climbs out with '..': the pod is not started, and nothing is made on the machine
        _kubectl(kubectl, kubeconfig, namespace, "delete", "pod", "edited", "--wait=true")
        subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "-n", namespace, "apply", "-f", "-"],
                       input=EDITED_POD, text=True, check=True, capture_output=True)
        deadline = time.monotonic() + 30
        while f"{namespace}/edited" not in sandboxed_cluster.supervisor.status().get("waiting", {}) \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "climbs out" in sandboxed_cluster.supervisor.status()["waiting"][f"{namespace}/edited"]
        assert not escaped.exists()

        # the first pod's sandbox went with it: no process, no namespace files, no link; the router too,
        # since no pod of the namespace is backed any more
        # (as the supervisor sees them: in its own mount namespace)
        supervisor = sandboxed_cluster.supervisor.pid()
        for key in sandbox_keys:
            assert not (seen_by_it / RUNTIME_ROOT.relative_to("/") / key).exists()
        assert (seen_by_it / "run").is_dir() and not (seen_by_it / "run" / "netns" / router).exists()
        mounts = Path(f"/proc/{supervisor}/mountinfo").read_text()
        assert not any(key in mounts for key in sandbox_keys)
    finally:
        client.CoreV1Api(api_client).delete_namespace(namespace)
    assert not escaped.exists()


def test_a_cluster_that_ran_pods_as_processes_is_told_they_now_run_in_sandboxes(tmp_path: Path) -> None:
    # an earlier version recorded `cluster up --no-sandboxes` in the supervisor's folder: said once, then forgotten
    control = SupervisorControl(tmp_path, tmp_path / "kubeconfig.yaml")
    assert control.forget_former_mode() is None
    (tmp_path / "backing").mkdir()
    (tmp_path / "backing" / "mode").write_text("processes\n")
    said = control.forget_former_mode()
    assert said is not None and "backed pods now always run in sandboxes of their own" in said
    assert not (tmp_path / "backing" / "mode").exists() and control.forget_former_mode() is None
    (tmp_path / "backing" / "mode").write_text("sandboxes\n")
    assert control.forget_former_mode() is None and not (tmp_path / "backing" / "mode").exists()


def test_cluster_up_on_a_cluster_that_ran_pods_as_processes_says_so_and_keeps_its_sandboxes(
        sandboxed_cluster: LocalCluster, deployed: Connection, api_client: client.ApiClient) -> None:
    supervisor = sandboxed_cluster.supervisor.pid()
    (sandboxed_cluster.supervisor.folder / "mode").write_text("processes\n")  # as an earlier version left it
    said: list[str] = []
    LocalCluster(progress=said.append).up()  # this module's cluster (JHTUTORIAL_STATE names it meanwhile)
    assert [line for line in said if "backed pods now always run in sandboxes of their own" in line], said
    assert sandboxed_cluster.supervisor.pid() == supervisor  # the running supervisor already backs them so
    assert not (sandboxed_cluster.supervisor.folder / "mode").exists()
    hub = client.CoreV1Api(api_client).list_namespaced_pod(deployed.namespace, label_selector=HUB).items[0]
    assert hub.metadata.annotations[BACKED_BY_ANNOTATION].startswith(SANDBOXED_BY)


# --- seccomp: the RuntimeDefault profile, made true ----------------------------------------------------------


def _seccomp_modes(pids: list[int]) -> dict[int, str]:
    """/proc/PID/status's Seccomp field of each process still there, read from the machine (2: a filter)."""
    modes = {}
    for pid in pids:
        try:
            modes[pid] = Path(f"/proc/{pid}/status").read_text().split("\nSeccomp:")[1].split()[0]
        except FileNotFoundError:
            continue  # ended meanwhile
    return modes


def test_the_pods_programs_and_execs_run_under_their_runtime_default_seccomp_filter(
        deployed: Connection, sandboxed_cluster: LocalCluster, kubectl: Path, kubeconfig: Path) -> None:
    reports = sandboxed_cluster.supervisor.status()["pods"]
    programs = set()
    for key, pids in sandbox_processes(sandboxed_cluster, deployed.namespace).items():
        # every process of the sandbox, the programs (nginx, CHP, JupyterHub...) and its first process alike
        modes = _seccomp_modes([reports[key]["sandbox_pid"], *pids])
        assert modes and set(modes.values()) == {"2"}, (key, modes)
        programs |= {Path(f"/proc/{pid}/comm").read_text().strip() for pid in _servers(pids) if pid in modes}
    assert {"nginx", "node", "jupyterhub"} <= programs, programs
    # and `kubectl exec`: the filter refuses a user namespace and the kernel's keyrings, as a runtime's does
    shown = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "-n", deployed.namespace, "exec",
                            "deploy/hub", "--", "sh", "-c", "grep ^Seccomp: /proc/self/status; unshare -Ur true"],
                           capture_output=True, text=True, timeout=60)
    assert shown.stdout == "Seccomp:\t2\n", shown
    assert shown.returncode == 1 and "unshare failed: Operation not permitted" in shown.stderr, shown
    keyctl = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
              f"print(libc.syscall({seccomp.REFUSED[seccomp.native_arch()]['keyctl']}, 0, -3, 0), "
              "os.strerror(ctypes.get_errno()))")  # the session keyring's id
    assert _kubectl(kubectl, kubeconfig, deployed.namespace, "exec", "deploy/hub", "--",
                    "python3", "-c", keyctl).strip() == "-1 Operation not permitted"


def test_a_pod_asking_for_another_seccomp_profile_is_refused_and_one_naming_none_is_filtered(
        deployed: Connection, sandboxed_cluster: LocalCluster, api_client: client.ApiClient) -> None:
    """Localhost names a file on a node, which simulated nodes lack; Unconfined is not offered. A pod that names
    no profile (possible where Pod Security does not enforce restricted) runs under the filter, as from a kubelet
    with SeccompDefault on."""
    core = client.CoreV1Api(api_client)

    def pod(name: str, profile: dict[str, str] | None) -> dict:
        context: dict = {"runAsUser": 65534, "runAsGroup": 65534, "allowPrivilegeEscalation": False,
                         "capabilities": {"drop": ["ALL"]}}
        if profile is not None:
            context["seccompProfile"] = profile
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
                "spec": {"containers": [{
                    "name": "chp", "image": "quay.io/jupyterhub/configurable-http-proxy:5.2.0",
                    "command": ["configurable-http-proxy"], "securityContext": context,
                    "readinessProbe": {"tcpSocket": {"port": 8000}, "periodSeconds": 1},  # Ready once CHP runs
                    "args": ["--port=8000", "--api-port=8001", "--default-target=http://127.0.0.1:9"]}]}}

    for name, profile in (("localhost", {"type": "Localhost", "localhostProfile": "profiles/audit.json"}),
                          ("unconfined", {"type": "Unconfined"})):
        with pytest.raises(client.ApiException) as refused:
            core.create_namespaced_pod(deployed.namespace, pod(f"seccomp-{name}", profile))
        assert "seccompProfile: {type: RuntimeDefault}" in refused.value.body, refused.value.body
    core.create_namespaced_pod(deployed.namespace, pod("seccomp-none", None))
    try:
        wait_pods_ready("app=seccomp-none", conn=deployed, timeout=90)
        pids = sandbox_processes(sandboxed_cluster, deployed.namespace, "seccomp-none")[
            f"{deployed.namespace}/seccomp-none"]
        modes = _seccomp_modes(_servers(pids))
        assert modes and set(modes.values()) == {"2"}, modes
    finally:
        core.delete_namespaced_pod("seccomp-none", deployed.namespace, grace_period_seconds=0)


def test_a_lab_terminal_and_a_kernel_work_under_the_filter(deployed: Connection, kubectl: Path,
                                                           kubeconfig: Path) -> None:
    """What a learner does in JupyterLab, through the proxy as a browser would: a terminal (a shell on a
    terminal the server made) and a kernel running code; both, started by the server, are filtered."""
    result = login("admin", "admin", conn=deployed, timeout=90)
    assert result.hub_said_ready, result
    access = hub_access(deployed)
    try:
        assert access.url, access.notes
        token = hub_api_token(access.url)
        server = f"{access.url}/user/admin"
        headers = {"Authorization": f"token {token}"}
        websocket_base = server.replace("http://", "ws://", 1)

        terminal = requests.post(f"{server}/api/terminals", headers=headers, timeout=30)
        assert terminal.status_code == 200, terminal.text
        name = terminal.json()["name"]
        shell = websocket.create_connection(f"{websocket_base}/terminals/websocket/{name}", header=headers, timeout=30)
        try:
            shell.send(json.dumps(["stdin", "echo shell-$(awk '/^Seccomp:/ {print $2}' /proc/self/status)-$(id -u)\r"]))
            seen = ""
            while not (answer := re.search(r"shell-(\d+)-(\d+)", seen)):  # not the echoed line: it has "$("
                message = json.loads(shell.recv())
                seen += message[1] if message[0] == "stdout" else ""
            assert answer.groups() == ("2", "1000"), seen  # Seccomp 2 (a filter), as the user's uid
        finally:
            shell.close()
            requests.delete(f"{server}/api/terminals/{name}", headers=headers, timeout=30)

        kernel = requests.post(f"{server}/api/kernels", json={"name": "python3"}, headers=headers, timeout=60)
        assert kernel.status_code == 201, kernel.text
        kernel_id = kernel.json()["id"]
        channels = websocket.create_connection(f"{websocket_base}/api/kernels/{kernel_id}/channels", header=headers,
                                               timeout=60)
        try:
            request_id = uuid.uuid4().hex
            channels.send(json.dumps({
                "header": {"msg_id": request_id, "msg_type": "execute_request", "username": "admin",
                           "session": uuid.uuid4().hex, "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": "import threading, subprocess\n"
                                    "print('kernel', open('/proc/self/status').read().split('Seccomp:')[1].split()[0],"
                                    " subprocess.run(['id', '-u'], capture_output=True, text=True).stdout.strip())",
                            "silent": False, "store_history": False, "user_expressions": {}, "allow_stdin": False,
                            "stop_on_error": True}}))
            # the reply comes on the shell channel, the output on iopub, which ends with the kernel idle again:
            # the two channels keep no order between them, so both ends are waited for
            printed, ends = "", set()
            while ends != {"reply", "idle"}:
                message = json.loads(channels.recv())
                if message.get("parent_header", {}).get("msg_id") == request_id:
                    assert message["msg_type"] != "error", message["content"]
                    if message["msg_type"] == "stream":
                        printed += message["content"]["text"]
                    elif message["msg_type"] == "execute_reply":
                        ends.add("reply")
                    elif message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
                        ends.add("idle")
            assert printed == "kernel 2 1000\n", printed
        finally:
            channels.close()
            requests.delete(f"{server}/api/kernels/{kernel_id}", headers=headers, timeout=30)
    finally:
        access.close()
