"""Faults the backing survives, on a local cluster of the test's own (its API server is restarted, its
supervisor killed): never the shared one. Its backed pods run in sandboxes of their own.

- kube-apiserver stopped and started while backed pods run: what changed meanwhile shows in their status once
  it answers, and a new pod is backed; stopped and started during a login: the login completes or says why,
  and afterwards the hub, its pods' status and a second login agree;
- the supervisor killed with SIGKILL: no process it started is left (kernels and terminals start their own
  sessions, so this is more than a process group: the sandbox's PID namespace is empty); `cluster up` backs the
  pods again, and the hub still knows admin and admin's token (its database was kept);
- a Service made after the pod that names it: reached, and its name resolves inside the pod;
- the `jhtutorial/backed` label taken off: the pods are kwok's again;
- Secret files created with their mode, never wider first; state folders 0700; a PV someone wrote by hand
  (any folder of the machine) is never linked into a pod.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from kubernetes import client, config

from jhtutorial import STEPS, apply
from jhtutorial.access import PipeReader
from jhtutorial.connect import Connection, connect
from jhtutorial.errors import LoginFailed
from jhtutorial.kubeapi import KubeApi
from jhtutorial.localcluster import LocalCluster, ensure_binaries
from jhtutorial.localcluster.backing import BACKED_BY_ANNOTATION, BACKED_LABEL, KWOK_STATUS_ANNOTATION
from jhtutorial.localcluster.backing.mounts import PodFiles
from jhtutorial.localcluster.backing.keeper import descendants
from jhtutorial.localcluster.backing.sandbox import processes_in_namespace
from jhtutorial.login import login
from jhtutorial.waits import wait_pods_ready
from tests.conftest import scratch_cluster
from tests.kubehelpers import hub_api_token, restricted, sandbox_pid_namespace, sandbox_processes, until

pytestmark = pytest.mark.cluster
HUB = "app.kubernetes.io/component=hub"
MANIFESTS = Path(__file__).resolve().parent.parent / "manifests"
PROXY = "app.kubernetes.io/component=proxy"


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory, local_cluster: LocalCluster | None) -> Iterator[LocalCluster]:
    """A local cluster in a state folder of its own (JHTUTORIAL_STATE): these tests stop its parts."""
    if local_cluster is None:
        pytest.skip("exercises the local cluster's supervisor")
    if os.geteuid() != 0:
        pytest.skip("pod sandboxes are made by root here (tests/test_rootless.py: an owner who is not root)")
    ensure_binaries()
    explicit = os.environ.get("JHTUTORIAL_FAULTS_STATE")
    state = Path(explicit) if explicit else tmp_path_factory.mktemp("faults") / "state"
    with scratch_cluster(state) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def core(own: LocalCluster) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(own.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def _namespace(own: LocalCluster, hint: str) -> Connection:
    """A namespace made as `jhtutorial up` makes it (marked for backing, Pod Security restricted)."""
    return connect(namespace=f"faults-{hint}-{int(time.time() * 1000) % 100000}", kubeconfig=own.kubeconfig)


def _kubectl(own: LocalCluster, *args: str, check: bool = True) -> str:
    result = subprocess.run([str(ensure_binaries().kubectl), "--kubeconfig", str(own.kubeconfig), *args],
                            capture_output=True, text=True, timeout=60)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def _deploy(conn: Connection, own: LocalCluster, late: str | None = None) -> None:
    """Every step's manifests; ``late``: one file left out (applied by the test later)."""
    for step in STEPS:
        if not step.files:
            continue
        if late in step.files:
            for file in step.files:
                if file != late:
                    _kubectl(own, "apply", "-n", conn.namespace, "-f", str(MANIFESTS / file))
        else:
            apply(step, conn=conn, check_order=False)


def _pod(core: client.CoreV1Api, namespace: str, selector: str) -> client.V1Pod:
    pods = [p for p in core.list_namespaced_pod(namespace, label_selector=selector).items
            if not p.metadata.deletion_timestamp]
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return pods[0]


def _ready(pod: client.V1Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _processes_of(own: LocalCluster, namespace: str) -> list[int]:
    """Every process running for the namespace's pods: each container's keeper and all below it."""
    pods = own.supervisor.status().get("pods", {})
    keepers = [c["pid"] for key, report in pods.items() if key.startswith(namespace + "/")
               for c in report["containers"].values() if c.get("pid")]
    return keepers + [pid for keeper in keepers for pid in descendants(keeper)]


def _pod_processes(own: LocalCluster, key: str) -> list[int]:
    """The processes of a backed pod (NAMESPACE/NAME): all in its sandbox's PID namespace (one orphaned inside
    belongs to the sandbox's first process, no longer below the container's keeper)."""
    namespace, name = key.split("/")
    return sandbox_processes(own, namespace, name)[key]


def _program(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _forward(own: LocalCluster, namespace: str, target: str, port: int) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([str(ensure_binaries().kubectl), "--kubeconfig", str(own.kubeconfig), "port-forward",
                                "-n", namespace, target, f":{port}", "--address", "127.0.0.1"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    local = PipeReader(process).wait_for(re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)"), 20)
    assert local, "kubectl port-forward did not start"
    return process, f"http://127.0.0.1:{local}"


def _through_proxy(own: LocalCluster, namespace: str, path: str, headers: dict[str, str] | None = None,
                   timeout: float = 30) -> requests.Response:
    """The first 200 answer to GET ``path`` through a `kubectl port-forward` to proxy-public, as a learner
    would ask again: kwok learns a pod's new PortForward from its watch a moment after the pod turned Ready
    (a supervisor that came back picks new loopback ports), and kubectl gives a forward up on its first broken
    connection, so each try has a forward of its own."""
    def attempt() -> requests.Response | None:
        process, url = _forward(own, namespace, "svc/proxy-public", 80)
        try:
            answer = requests.get(f"{url}{path}", headers=headers, timeout=10)
            return answer if answer.status_code == 200 else None
        except requests.RequestException:
            return None
        finally:
            process.terminate()
            process.wait(10)

    return until(f"{path} answers through proxy-public in {namespace}", attempt, timeout=timeout, every=1)


@pytest.fixture(scope="module")
def deployed(own: LocalCluster, core: client.CoreV1Api) -> Iterator[Connection]:
    """The tutorial's hub and proxy, backed, in a namespace of the own cluster."""
    conn = _namespace(own, "deployed")
    try:
        _deploy(conn, own)
        wait_pods_ready(HUB, conn=conn, timeout=120)
        wait_pods_ready(PROXY, conn=conn, timeout=120)
        yield conn
    finally:
        conn.close()


# --- the API server restarts ---------------------------------------------------------------------------


def test_an_api_server_restart_ends_no_pod_worker(own: LocalCluster, core: client.CoreV1Api,
                                                  deployed: Connection) -> None:
    ns = deployed.namespace
    proxy = _pod(core, ns, PROXY)
    supervisor = own.supervisor.pid()
    nginx_keeper = own.supervisor.status()["pods"][f"{ns}/{proxy.metadata.name}"]["containers"]["nginx"]["pid"]
    # nginx's master: the first nginx below its keeper (the enter command and the like come first)
    nginx = next(pid for pid in descendants(nginx_keeper) if _program(pid) == "nginx")
    own.stop_component("kube-apiserver")
    try:
        # while nobody can write it: nginx dies, its container is restarted; the pod's status must say so later
        os.kill(nginx, signal.SIGKILL)
        time.sleep(3)  # the pod's worker tries to write (and fails) several times meanwhile
    finally:
        own.start_components()
    restarted = until("the proxy pod's status shows nginx restarted and ready again", lambda: (
        (pod := core.read_namespaced_pod(proxy.metadata.name, ns))
        and any(s.name == "nginx" and s.restart_count >= 1 and s.ready for s in pod.status.container_statuses)
        and _ready(pod) and pod), timeout=60)
    assert restarted.metadata.uid == proxy.metadata.uid
    assert own.supervisor.pid() == supervisor  # it survived the outage
    # the nginx that runs now is the restarted one, alone: what the killed one left (its workers, which hold
    # port 8080) ended with it, as in a container whose first process ends; so it keeps running
    key = f"{ns}/{proxy.metadata.name}"
    report = own.supervisor.status()["pods"][key]["containers"]["nginx"]
    running = [pid for pid in _pod_processes(own, key) if _program(pid) == "nginx"]
    assert running and {os.getsid(pid) for pid in running} == {report["pid"]}
    time.sleep(5)  # an nginx that cannot bind its port exits within 3 s of its start
    assert own.supervisor.status()["pods"][key]["containers"]["nginx"]["restarts"] == report["restarts"]
    # a pod made after the outage is backed: the hub's replacement runs its program and gets Ready
    old = _pod(core, ns, HUB)
    core.delete_namespaced_pod(old.metadata.name, ns)
    new = until("a replacement hub pod", lambda: [p for p in core.list_namespaced_pod(ns, label_selector=HUB).items
                                                  if p.metadata.name != old.metadata.name], timeout=60)[0]
    wait_pods_ready(HUB, conn=deployed, timeout=90)
    assert BACKED_BY_ANNOTATION in core.read_namespaced_pod(new.metadata.name, ns).metadata.annotations


def test_a_login_during_an_api_server_restart_completes_or_says_why(own: LocalCluster, core: client.CoreV1Api,
                                                                    deployed: Connection) -> None:
    ns = deployed.namespace
    spawning = threading.Event()
    outcome: dict[str, Any] = {}

    def log_in() -> None:
        try:
            # the outage begins once KubeSpawner has made the user's pod, while the hub waits for it
            outcome["result"] = login("admin", "admin", conn=deployed, timeout=90, progress=lambda line: (
                "pod jupyter-admin" in line and spawning.set()))
        except LoginFailed as err:
            outcome["failed"] = err
        except BaseException as err:  # noqa: BLE001 - anything else is this test's failure, said below
            outcome["error"] = err
        finally:
            spawning.set()

    thread = threading.Thread(target=log_in, daemon=True)
    thread.start()
    assert spawning.wait(90), "the login never got to the spawn"
    own.stop_component("kube-apiserver")
    try:
        time.sleep(3)
    finally:
        own.start_components()
    thread.join(180)
    assert not thread.is_alive(), "the login hangs after the API server came back"
    assert "error" not in outcome, repr(outcome.get("error"))
    if "failed" in outcome:  # it may fail, but then it says why and what to do
        failed = outcome["failed"]
        assert failed.problem and failed.fix and failed.result.stages, failed

    # afterwards the hub's pod status tells what runs: Ready, with the restarts the supervisor counted
    hub = _pod(core, ns, HUB)
    report = own.supervisor.status()["pods"][f"{ns}/{hub.metadata.name}"]["containers"]["hub"]
    until("the hub pod's status written again after the outage", lambda: (
        (pod := core.read_namespaced_pod(hub.metadata.name, ns)) and _ready(pod)
        and pod.status.container_statuses[0].restart_count == report["restarts"]), timeout=30)
    # the hub, the user's pod and the proxy agree: a second login finds (or starts) the server and reaches it
    again = login("admin", "admin", conn=deployed, timeout=90)
    assert again.ok, again
    process, url = _forward(own, ns, "svc/proxy-public", 80)
    try:
        token = hub_api_token(url)
        model = requests.get(f"{url}/hub/api/users/admin", headers={"Authorization": f"token {token}"},
                             timeout=20).json()
        assert model["servers"][""]["ready"] is True
        pod = core.read_namespaced_pod("jupyter-admin", ns)
        assert _ready(pod)
        routes = requests.get(f"{url}/hub/api/proxy", headers={"Authorization": f"token {token}"}, timeout=20).json()
        assert "/user/admin/" in routes, routes
        assert routes["/user/admin/"]["target"] == f"http://{pod.status.pod_ip}:8888"
    finally:
        process.terminate()
        process.wait(10)


# --- the supervisor is killed ----------------------------------------------------------------------------

# a program that, like JupyterLab with a kernel or a terminal, starts a helper in a session of its own, and one
# that leaves its parent altogether (a daemon forks twice)
SESSIONS = ("import os, subprocess, sys, time\n"
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(3600)'], start_new_session=True)\n"
            "if os.fork() == 0:\n"
            "    os.setsid()\n"
            "    if os.fork() == 0:\n"
            "        time.sleep(3600)\n"
            "    os._exit(0)\n"
            "time.sleep(3600)\n")


def _session_pod(namespace: str) -> dict[str, Any]:
    """A learner's own pod that meets Pod Security restricted, run by the single-user image's program."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sessions", "namespace": namespace},
            "spec": restricted({"volumes": [{"name": "home", "emptyDir": {}}],
                                "containers": [{"name": "lab", "image": "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0",
                                                "command": [sys.executable, "-c", SESSIONS],
                                                "volumeMounts": [{"name": "home", "mountPath": "/home/jovyan"}]}]})}


def test_a_supervisor_killed_leaves_no_process_and_cluster_up_restores(own: LocalCluster, core: client.CoreV1Api,
                                                                       deployed: Connection) -> None:
    ns = deployed.namespace
    KubeApi(deployed.api).call("POST", f"/api/v1/namespaces/{ns}/pods", body=_session_pod(ns))

    def escaped() -> list[int]:
        """The sessions pod's helpers that left its process group and session (as kernels do). In a sandbox,
        the one that left its parent too belongs to the sandbox's first process, no longer below the keeper."""
        report = own.supervisor.status().get("pods", {}).get(f"{ns}/sessions") or {"containers": {}}
        keeper = (report["containers"].get("lab") or {}).get("pid")
        if not keeper:
            return []
        return [pid for pid in _pod_processes(own, f"{ns}/sessions") if os.getsid(pid) != os.getsid(keeper)]

    helpers = until("the sessions pod's two helpers run in sessions of their own", lambda: len(escaped()) >= 2 and
                    escaped())
    # a token of admin's, kept in the hub's database: it still works after the restore if the database was kept
    process, url = _forward(own, ns, "svc/proxy-public", 80)
    try:
        token = hub_api_token(url)
    finally:
        process.terminate()
        process.wait(10)
    pid_namespaces = [sandbox_pid_namespace(report) for key, report in own.supervisor.status()["pods"].items()
                      if key.startswith(ns + "/")]
    assert pid_namespaces
    supervisor = own.supervisor.pid()
    assert supervisor is not None
    started = descendants(supervisor)
    assert set(helpers) <= set(started)
    os.kill(supervisor, signal.SIGKILL)
    until("no process the supervisor started is left", lambda: not [p for p in started if _alive(p)], timeout=20)
    # nor anything else in the sandboxes it made (the process table, read from /proc)
    assert {namespace: processes_in_namespace(namespace) for namespace in pid_namespaces} == \
        dict.fromkeys(pid_namespaces, [])

    hub = _pod(core, ns, HUB)
    own.up()  # restores the backing: a new supervisor backs the same pods again
    assert own.supervisor.pid() not in (None, supervisor)
    wait_pods_ready(HUB, conn=deployed, timeout=90)
    wait_pods_ready(PROXY, conn=deployed, timeout=90)
    report = own.supervisor.status()["pods"][f"{ns}/{hub.metadata.name}"]
    assert report["containers"]["hub"]["pid"] not in started
    assert "JupyterHub" in _through_proxy(own, ns, "/hub/login").text
    admin = _through_proxy(own, ns, "/hub/api/users/admin", headers={"Authorization": f"token {token}"}).json()
    assert admin["name"] == "admin" and admin["admin"] is True
    core.delete_namespaced_pod("sessions", ns)


# --- a Service made after its pod ---------------------------------------------------------------------


def test_a_service_made_after_the_pod_that_names_it_is_reached(own: LocalCluster, core: client.CoreV1Api) -> None:
    conn = _namespace(own, "late-svc")
    try:
        # the proxy's CHP sends everything to http://hub:8081: here the hub Service comes last
        _deploy(conn, own, late="svc-hub.yaml")
        wait_pods_ready(PROXY, conn=conn, timeout=120)
        wait_pods_ready(HUB, conn=conn, timeout=120)
        _kubectl(own, "apply", "-n", conn.namespace, "-f", str(MANIFESTS / "svc-hub.yaml"))
        page = _through_proxy(own, conn.namespace, "/hub/login")  # through nginx, CHP and the late Service
        assert "JupyterHub" in page.text and page.headers.get("Server") == "nginx"
        # inside the proxy's pod the late Service's names resolve to its ClusterIP (the pod's hosts file)
        cluster_ip = core.read_namespaced_service("hub", conn.namespace).spec.cluster_ip
        # kwok learns of a pod's Exec object from its watch, which this module's API server restarts break for a
        # while: until it has caught up, an exec is answered "no exec found" (what is checked here is the names)
        until("kwok runs kubectl exec in the proxy's pod", lambda: _kubectl(
            own, "exec", "-n", conn.namespace, "deploy/proxy", "-c", "chp", "--", "true", check=False) == "",
            timeout=60)
        for name in ("hub", f"hub.{conn.namespace}", f"hub.{conn.namespace}.svc.cluster.local"):
            found = _kubectl(own, "exec", "-n", conn.namespace, "deploy/proxy", "-c", "chp", "--",
                             "getent", "hosts", name)
            assert found.split()[0] == cluster_ip, found

        # --- the label taken off: the pods are kwok's again ---
        pids = _processes_of(own, conn.namespace)
        assert pids
        core.patch_namespace(conn.namespace, {"metadata": {"labels": {BACKED_LABEL: None}}})
        until("every process of the namespace ended", lambda: not [p for p in pids if _alive(p)], timeout=30)
        until("no pod carries the backing's annotations", lambda: not [
            p.metadata.name for p in core.list_namespaced_pod(conn.namespace).items
            if {KWOK_STATUS_ANNOTATION, BACKED_BY_ANNOTATION} & set(p.metadata.annotations or {})])
        kwok = KubeApi(conn.api)
        assert not kwok.get(f"/apis/kwok.x-k8s.io/v1alpha1/namespaces/{conn.namespace}/portforwards")["items"]
        # kwok simulates them again: a deletion completes (kwok's job now), the replacement is simulated
        old = _pod(core, conn.namespace, PROXY)
        core.delete_namespaced_pod(old.metadata.name, conn.namespace)
        until("kwok removed the deleted pod", lambda: not [
            p for p in core.list_namespaced_pod(conn.namespace, label_selector=PROXY).items
            if p.metadata.name == old.metadata.name], timeout=30)
        # the ReplicaSet controller makes the replacement: on a loaded machine, in this cluster whose API server
        # this module restarted, it once took over a minute
        wait_pods_ready(PROXY, conn=conn, timeout=180)
        new = _pod(core, conn.namespace, PROXY)
        assert not {KWOK_STATUS_ANNOTATION, BACKED_BY_ANNOTATION} & set(new.metadata.annotations or {})
        assert not _processes_of(own, conn.namespace)
    finally:
        core.delete_namespace(conn.namespace)
        conn.close()


# --- files and folders ---------------------------------------------------------------------------------


def test_secret_files_have_their_mode_from_creation_and_state_folders_are_private(
        own: LocalCluster, core: client.CoreV1Api, deployed: Connection, tmp_path: Path) -> None:
    ns = deployed.namespace
    core.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="modes"), data={
        "token": base64.b64encode(b"s3cret").decode(), "key.pem": base64.b64encode(b"-----BEGIN").decode()}))
    pod = {"metadata": {"name": "modes", "namespace": ns, "uid": "0"}, "spec": {
        "volumes": [{"name": "secret", "secret": {"secretName": "modes", "defaultMode": 0o440,
                                                  "items": [{"key": "token", "path": "token"},
                                                            {"key": "key.pem", "path": "tls/key.pem", "mode": 0o400}]}}],
        "containers": [{"name": "c", "volumeMounts": [{"name": "secret", "mountPath": "/etc/secret"}]}]}}
    files = PodFiles(pod, tmp_path / "pod", KubeApi(deployed.api))
    # every look the code path gives Python (each open, chmod, copy): the file's mode at that moment
    seen: dict[str, set[int]] = {}

    def watch(event: str, args: tuple[Any, ...]) -> None:
        if watching and event in ("open", "os.chmod", "shutil.copyfile", "os.rename", "os.remove"):
            for path in Path(tmp_path).rglob("*"):
                if path.is_file() and not path.is_symlink():
                    seen.setdefault(str(path), set()).add(path.stat().st_mode & 0o777)

    watching = True
    sys.addaudithook(watch)
    old_umask = os.umask(0)  # nothing narrows what the code asks for: a file made wide first would show
    try:
        files.write()
        files.write()  # again, over the files of the first time
    finally:
        os.umask(old_umask)
        watching = False
    token, key = files.mounts["/etc/secret"] / "token", files.mounts["/etc/secret"] / "tls" / "key.pem"
    assert Path(token).read_bytes() == b"s3cret"
    assert Path(token).stat().st_mode & 0o777 == 0o440 and Path(key).stat().st_mode & 0o777 == 0o400
    for path, modes in seen.items():
        final = Path(path).stat().st_mode & 0o777 if Path(path).exists() else 0
        assert all(mode & ~final == 0 for mode in modes), (path, sorted(map(oct, modes)), oct(final))
    assert seen, "the audit hook saw the files being written"
    # the cluster's state folder, the supervisor's and each pod's: the owner's only
    state = own.state_dir
    pod_folders = list((state / "backing" / "pods" / ns).iterdir())
    for folder in (state, state / "backing", state / "backing" / "pods", *pod_folders, tmp_path / "pod"):
        assert folder.stat().st_mode & 0o777 == 0o700, folder


def test_a_handwritten_volume_of_any_folder_is_never_linked_into_a_pod(own: LocalCluster, core: client.CoreV1Api,
                                                                         deployed: Connection) -> None:
    ns = deployed.namespace
    name = f"handwritten-{ns}"
    core.create_persistent_volume(client.V1PersistentVolume(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PersistentVolumeSpec(capacity={"storage": "1Gi"}, access_modes=["ReadWriteOnce"],
                                           host_path=client.V1HostPathVolumeSource(path="/etc"),
                                           storage_class_name="", persistent_volume_reclaim_policy="Retain",
                                           claim_ref=client.V1ObjectReference(namespace=ns, name="etc"))))
    try:
        core.create_namespaced_persistent_volume_claim(ns, client.V1PersistentVolumeClaim(
            metadata=client.V1ObjectMeta(name="etc"),
            spec=client.V1PersistentVolumeClaimSpec(access_modes=["ReadWriteOnce"], storage_class_name="",
                                                    volume_name=name,
                                                    resources=client.V1VolumeResourceRequirements(
                                                        requests={"storage": "1Gi"}))))
        pod = _session_pod(ns)
        pod["metadata"]["name"] = "wants-etc"
        pod["spec"]["volumes"] = [{"name": "etc", "persistentVolumeClaim": {"claimName": "etc"}}]
        pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "etc", "mountPath": "/home/jovyan"}]
        pod["spec"]["containers"][0]["ports"] = [{"containerPort": 8888}]
        KubeApi(deployed.api).call("POST", f"/api/v1/namespaces/{ns}/pods", body=pod)
        why = until("the supervisor refuses the volume", lambda: own.supervisor.status().get("waiting", {}).get(
            f"{ns}/wants-etc"), timeout=30)
        assert "not a folder the hostPath provisioner made for this claim" in why
        assert not [c for c in own.supervisor.status()["pods"][f"{ns}/wants-etc"]["containers"].values()
                    if c.get("pid")]
    finally:
        core.delete_namespaced_pod("wants-etc", ns, grace_period_seconds=0)
        core.delete_namespaced_persistent_volume_claim("etc", ns)
        core.delete_persistent_volume(name)


# --- Pod Security admission --------------------------------------------------------------------------


@pytest.mark.parametrize("asks_for", ["hostPath /", "privileged", "hostNetwork", "runAsUser 0"])
def test_a_pod_asking_for_the_host_is_refused_naming_the_pod_security_level(own: LocalCluster,
                                                                          deployed: Connection,
                                                                          asks_for: str) -> None:
    from jhtutorial.errors import Forbidden

    pod = _session_pod(deployed.namespace)
    pod["metadata"]["name"] = "asks-" + re.sub(r"[^a-z0-9]+", "-", asks_for.lower()).strip("-")
    container = pod["spec"]["containers"][0]
    if asks_for == "hostPath /":
        pod["spec"]["volumes"] = [{"name": "home", "hostPath": {"path": "/"}}]
    elif asks_for == "privileged":
        container["securityContext"] = {"privileged": True}
    elif asks_for == "hostNetwork":
        pod["spec"]["hostNetwork"] = True
    else:
        pod["spec"]["securityContext"] = {"runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}}
    with pytest.raises(Forbidden) as refused:
        KubeApi(deployed.api).call("POST", f"/api/v1/namespaces/{deployed.namespace}/pods", body=pod)
    assert 'violates PodSecurity "restricted:latest"' in refused.value.problem, refused.value.problem
    assert "Pod Security level" in (refused.value.fix or "")


@pytest.mark.parametrize("asks_for", ["runAsGroup", "fsGroup", "supplementalGroups", "a container's runAsGroup"])
def test_a_pod_asking_for_group_0_is_refused(own: LocalCluster, deployed: Connection, asks_for: str) -> None:
    """Pod Security restricted lets group 0 through; in a sandbox it is the owner's group on the machine."""
    from jhtutorial.errors import TutorialError

    pod = _session_pod(deployed.namespace)
    pod["metadata"]["name"] = "group0-" + re.sub(r"[^a-z0-9]+", "-", asks_for.lower()).strip("-")
    if asks_for == "a container's runAsGroup":
        pod["spec"]["containers"][0]["securityContext"]["runAsGroup"] = 0
    else:
        pod["spec"]["securityContext"][asks_for] = [0] if asks_for == "supplementalGroups" else 0
    with pytest.raises(TutorialError) as refused:
        KubeApi(deployed.api).call("POST", f"/api/v1/namespaces/{deployed.namespace}/pods", body=pod)
    assert "may not run as group 0" in refused.value.problem, refused.value.problem
