"""Helpers for tests that need a second, less privileged user or a hand-made kubeconfig.

The admin kubeconfig is system:masters, which RBAC never restricts, so tests
about permissions run as a ServiceAccount with a Role of their choosing and a
token from the TokenRequest API (what `kubectl create token` does).
"""

from __future__ import annotations

import contextlib
import http.server
import os
import select
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import client

from jhtutorial.localcluster.ports import free_port  # noqa: F401 - the tests' one free-port finder

# another program that listens on a port until its stdin closes
_HOLDER = ("import socket, sys\n"
           "sock = socket.socket()\n"
           "try:\n"
           "    sock.bind(('127.0.0.1', int(sys.argv[1]))); sock.listen(1)\n"
           "except OSError as err:\n"
           "    sys.exit(f'taken: {err}')\n"
           "print('listening', flush=True)\n"
           "sys.stdin.read()\n")


@contextlib.contextmanager
def port_held(port: int, wait: float = 120.0) -> Iterator[subprocess.Popen[str]]:
    """Another process listening on 127.0.0.1:port for as long as the block runs. When some other program
    holds the port already (another run's port-forward, briefly), waits up to ``wait`` seconds for it."""
    deadline = time.monotonic() + wait
    while True:
        holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(port)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert holder.stdout is not None and holder.stdin is not None
        if holder.stdout.readline().strip() == "listening":
            break
        why = holder.communicate()[1].strip()
        if time.monotonic() > deadline:
            raise AssertionError(f"could not hold port {port} for the test within {wait:.0f} s: {why}")
        time.sleep(1)
    try:
        yield holder
    finally:
        holder.stdin.close()
        holder.wait(10)
        holder.stdout.close()
        if holder.stderr is not None:
            holder.stderr.close()


def restricted(spec: dict[str, Any]) -> dict[str, Any]:
    """A pod spec as Pod Security ``restricted`` wants it (the tutorial's and the classroom's namespaces enforce
    it): non-root, a seccomp profile, no privilege escalation, every capability dropped."""
    return {**spec, "securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                        "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{**container, "securityContext": {"allowPrivilegeEscalation": False,
                                                             "capabilities": {"drop": ["ALL"]}}}
                           for container in spec["containers"]]}


def kubeconfig_file(path: Path, server: str, user: dict[str, Any], *, ca: str | None, context: str = "test") -> Path:
    """Write a one-context kubeconfig for ``server`` with the given user entry."""
    cluster: dict[str, Any] = {"server": server}
    if ca:
        cluster["certificate-authority"] = ca
    else:
        cluster["insecure-skip-tls-verify"] = True
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }))
    return path


def service_account_kubeconfig(
    api_client: client.ApiClient, namespace: str, name: str, rules: list[dict[str, Any]], path: Path,
    *, cluster_role: str | None = None, context: str = "test",
) -> Path:
    """A kubeconfig for ServiceAccount ``name`` that may do exactly ``rules`` in ``namespace``,
    or what ``cluster_role`` allows there (bound by a RoleBinding, so only in ``namespace``)."""
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
    if cluster_role:
        rbac.create_namespaced_role_binding(namespace, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": f"{name}-{cluster_role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        })
    if rules:
        rbac.create_namespaced_role(namespace, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name}, "rules": rules,
        })
        rbac.create_namespaced_role_binding(namespace, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        })
    token = core.create_namespaced_service_account_token(
        name, namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=3600))
    ).status.token
    configuration = api_client.configuration
    return kubeconfig_file(path, configuration.host, {"token": token}, ca=configuration.ssl_ca_cert,
                           context=context)


def namespace_admin_kubeconfig(api_client: client.ApiClient, namespace: str, path: Path,
                               name: str = "learner") -> Path:
    """A workshop learner: the built-in ``admin`` ClusterRole, bound by a RoleBinding in ``namespace`` only.

    Such a learner may create Roles and RoleBindings there, but not ``bind`` or ``escalate``, and may read
    nothing cluster-wide (nodes, StorageClasses, PersistentVolumes, cluster-wide SubjectAccessReviews)."""
    return service_account_kubeconfig(api_client, namespace, name, [], path, cluster_role="admin",
                                      context=f"learner-{namespace}")


def foreign_user_server(api_client: client.ApiClient, namespace: str, user: str = "bob") -> tuple[str, str]:
    """A user pod and home PVC as ANOTHER JupyterHub's KubeSpawner makes them (its generic labels and
    annotations, no label of this tutorial's): what a clean-up of the tutorial must leave alone.
    Returns the pod's and the PVC's names."""
    core = client.CoreV1Api(api_client)
    annotations = {"hub.jupyter.org/username": user}
    common = {"app.kubernetes.io/managed-by": "kubespawner", "app.kubernetes.io/name": "jupyterhub",
              "app": "jupyterhub", "heritage": "jupyterhub", "hub.jupyter.org/username": user}
    pvc, pod = f"claim-{user}", f"jupyter-{user}"
    core.create_namespaced_persistent_volume_claim(namespace, {
        "metadata": {"name": pvc, "annotations": annotations,
                     "labels": {**common, "component": "singleuser-storage"}},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    })
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": pod, "annotations": annotations,
                     "labels": {**common, "component": "singleuser-server"}},
        "spec": {"containers": [{"name": "notebook", "image": "registry.k8s.io/pause:3.10"}],
                 "volumes": [{"name": "home", "persistentVolumeClaim": {"claimName": pvc}}]},
    })
    return pod, pvc


class GarbledWatchProxy:
    """A plain-HTTP proxy on 127.0.0.1 in front of the real API server that puts ONE line that is not a JSON
    event at the head of the next watch stream it forwards (what a broken proxy or a cut-off write can do).

    Requests reach the API server with the given client's credentials; everything else passes unchanged.
    ``with GarbledWatchProxy(api_client) as proxy: ApiClient(Configuration(host=proxy.url))``
    """

    GARBAGE = b'{"type": "MODIFIED", "object": {"metadata": \n'

    def __init__(self, api_client: client.ApiClient) -> None:
        from kubernetes.client import ApiClient

        from jhtutorial.kubeapi import KubeApi

        self.kube = KubeApi(ApiClient(api_client.configuration))
        self.injected = 0
        self.armed = threading.Event()
        self.armed.set()
        self._upstreams: list[Any] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes: nothing to re-chunk

            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                upstream = proxy.kube.open("GET", url.path, query=query, timeout=(5.0, 120.0))
                with proxy._lock:
                    proxy._upstreams.append(upstream)
                self.send_response(upstream.status)
                self.send_header("Content-Type", upstream.headers.get("Content-Type", "application/json"))
                self.end_headers()
                try:
                    if query.get("watch") == "true" and upstream.status == 200 and proxy.armed.is_set():
                        proxy.armed.clear()
                        proxy.injected += 1
                        self.wfile.write(proxy.GARBAGE)
                        self.wfile.flush()
                    for chunk in upstream.stream(64 * 1024):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except (OSError, urllib3.exceptions.HTTPError):
                    pass  # the client went away (a relist, a stop) or the proxy is closing
                finally:
                    upstream.close()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> GarbledWatchProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            for upstream in self._upstreams:
                with contextlib.suppress(Exception):
                    upstream.shutdown()
        self.kube.api_client.close()


def deploy_workbook(conn: "jhtutorial.Connection", *, timeout: float = 120) -> None:
    """Steps 01-06 applied and waited for, every Service with its endpoints: the namespace as notebook 06
    leaves it, before anyone logs in."""
    import jhtutorial

    for step in jhtutorial.STEPS:
        if step.files:
            jhtutorial.apply(step, conn=conn)
            step.wait(conn, timeout=timeout)
    for name in ("hub", "proxy-api", "proxy-http", "proxy-public"):
        jhtutorial.wait_service_endpoints(name, conn=conn, timeout=timeout)


def until(what: str, check: Callable[[], Any], timeout: float = 60, every: float = 0.5) -> Any:
    """``check()``'s first true answer, asked every ``every`` seconds; AssertionError naming ``what`` (and the
    last answer) after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"not within {timeout:.0f} s: {what} (last: {last!r})")


def read_terminal_until(controller: int, seen: bytearray, wanted: bytes, program: subprocess.Popen[Any],
                        timeout: float = 30) -> None:
    """Read what ``program`` writes on the terminal whose controlling side is ``controller`` into ``seen`` until
    ``wanted`` is there; AssertionError (with what was seen) if ``program`` ends first or after ``timeout``."""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        assert time.monotonic() < deadline and program.poll() is None, bytes(seen)
        if select.select([controller], [], [], 0.5)[0]:
            seen.extend(os.read(controller, 4096))


def hub_api_token(base: str, user: str = "admin", password: str = "admin") -> str:
    """A REST API token of ``user``'s, made as the hub's Token page makes one: log in with the form, then
    ``POST /hub/api/users/NAME/tokens`` with the session cookie and the _xsrf cookie's value (tornado's
    check). ``base`` reaches the hub through the proxy (a port-forward to proxy-public)."""
    import requests

    with requests.Session() as session:
        session.trust_env = False  # the hub is behind a port-forward on 127.0.0.1: no HTTP proxy between
        session.get(f"{base}/hub/login", timeout=30).raise_for_status()
        logged_in = session.post(f"{base}/hub/login", allow_redirects=False, timeout=30,
                                 data={"username": user, "password": password, "_xsrf": session.cookies.get("_xsrf")})
        assert logged_in.status_code == 302, f"the hub refused the login as {user}: HTTP {logged_in.status_code}"
        made = session.post(f"{base}/hub/api/users/{user}/tokens", json={"note": "tests", "expires_in": 3600},
                            headers={"X-XSRFToken": session.cookies.get("_xsrf", ""), "Referer": f"{base}/hub/token"},
                            timeout=30)
        assert made.status_code == 201, f"no token for {user}: HTTP {made.status_code} {made.text[:200]}"
        return str(made.json()["token"])


def sandbox_pid_namespace(report: dict[str, Any]) -> str:
    """A sandboxed pod's PID namespace, as /proc/PID/ns/pid names it, from the pod's report in the supervisor's
    status (by the sandbox's first process; read it while the sandbox runs)."""
    return os.readlink(f"/proc/{report['sandbox_pid']}/ns/pid")


def sandbox_processes(cluster: "jhtutorial.LocalCluster", namespace: str, pod_prefix: str = "") -> dict[str, list[int]]:
    """The processes in each sandbox of the namespace's pods (named ``pod_prefix``...), its first one left out."""
    from jhtutorial.localcluster.backing.sandbox import processes_in_namespace

    found: dict[str, list[int]] = {}
    for key, report in cluster.supervisor.status().get("pods", {}).items():
        if key.startswith(f"{namespace}/{pod_prefix}"):
            init_pid = report["sandbox_pid"]
            found[key] = [pid for pid in processes_in_namespace(sandbox_pid_namespace(report)) if pid != init_pid]
    return found
