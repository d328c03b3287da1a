"""How to reach the hub from this machine: the proxy-public Service, from outside the cluster.

    >>> access = hub_access()                 # doctest: +SKIP
    >>> print(access)                         # doctest: +SKIP
    http://127.0.0.1:38211 (port-forward)
      the same by hand: kubectl port-forward -n jhtutorial svc/proxy-public 8080:80
      note: forwarded through the API server to pod proxy-6d5b9c7f4-2kq8x, port 8080; close() ends it
    >>> access.close()                        # doctest: +SKIP

proxy-public is a NodePort Service: every node opens the same port (30000-32767)
and passes it to nginx in the proxy pod. Whether this machine can reach a
node's address depends on the cluster, so the ways are tried in this order:

1. **minikube**: ``minikube service proxy-public -n NS --url`` prints a URL that works
   from the host (with the docker driver on macOS/Windows it keeps a tunnel
   open: the process lives as long as the Access);
2. **NodePort**: ``http://NODE-ADDRESS:NODE-PORT``, used only if a TCP connection
   to it succeeds. kind and k3d run their nodes in containers, so their NodePorts
   are reachable from the host only where the container network is (Linux) or
   through port mappings set when the cluster was created (kind's
   ``extraPortMappings``, k3d's ``-p``);
3. **port-forward**: a local port whose connections the API server carries to
   the proxy pod (``kubectl port-forward svc/proxy-public 8080:80``). Works on
   any cluster; opened from Python (the client's websocket port-forward), or by
   running ``kubectl port-forward`` when that fails.

On the local simulated cluster (kwok) the pods of a namespace made by the
tutorial run their programs in sandboxes of their own (see
:mod:`jhtutorial.localcluster.backing`): kwok forwards ``kubectl port-forward`` into
the proxy pod's sandbox, so the same port-forward is the way in there. Where the proxy
pod is not backed (nginx not installed, a namespace not made by the tutorial),
nothing answers, and the Access says why instead of inventing a URL.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .connect import Connection, current_connection
from .errors import AccessError, Forbidden, StepOutOfOrder
from .kubeapi import NAMESPACES, NODES, PODS, SERVICES, KubeApi
from .localcluster.ports import PortTaken, listening_socket, on_preferred_port, says_address_in_use
from .objects import node_is_ready, pod_is_ready
from .readable import Readable
from .steps import STEPS, and_join, get_step, up_command

Obj = dict[str, Any]
SERVICE = "proxy-public"
PROXY_SELECTOR = "app.kubernetes.io/component=proxy,app.kubernetes.io/instance=jhtutorial"
METHODS = ("auto", "minikube", "nodeport", "port-forward", "kubectl")
PROBE_SECONDS = 2.0
HEALTH_PATH = "/hub/health"  # answered by the hub, through nginx and configurable-http-proxy
@dataclass
class Access(Readable):
    """A way to the hub: the URL (None when there is none), how it was found, and how to type it."""

    url: str | None
    how: str  # "minikube", "nodeport", "port-forward", "kubectl", or "simulated"
    kubectl: str  # what a learner would type for the same
    notes: list[str] = field(default_factory=list)
    simulated: bool = False
    _closer: Callable[[], None] | None = field(default=None, repr=False)

    def close(self) -> None:
        """End a port-forward or tunnel this Access holds open (safe to call twice)."""
        closer, self._closer = self._closer, None
        if closer is not None:
            closer()

    @property
    def open(self) -> bool:
        return self._closer is not None

    def lines(self) -> list[str]:
        head = f"{self.url} ({self.how})" if self.url else f"no URL can answer ({self.how})"
        return [head, f"  the same by hand: {self.kubectl}", *(f"  note: {note}" for note in self.notes)]

    def __enter__(self) -> Access:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def hub_access(
    conn: Connection | None = None,
    *,
    method: str = "auto",
    local_port: int = 0,
    verify: bool = True,
    timeout: float = 10.0,
) -> Access:
    """Find (or open) a URL on this machine that reaches the proxy-public Service.

    Args:
        conn: a connection (default: the last one made).
        method: "auto" (try in order), or one of "minikube", "nodeport",
            "port-forward" (from Python), "kubectl" (a ``kubectl port-forward`` process).
        local_port: the local port a port-forward should listen on (0: any free port). When another
            program holds it, the forward takes any free port instead, and a note says which.
        verify: ask ``/hub/health`` through the URL before returning it.
        timeout: seconds for each attempt.

    Raises StepOutOfOrder when the tutorial is not deployed that far (naming the
    missing step), AccessError when the chosen method cannot reach the hub (with
    what each attempt saw).

    Example::

        with hub_access() as access:          # kubectl port-forward svc/proxy-public 8080:80
            print(access.url)
    """
    if method not in METHODS:
        raise AccessError(f"unknown access method {method!r}", fix=f"use one of: {', '.join(METHODS)}")
    conn = conn or current_connection()
    kube = KubeApi(conn.api)
    service = require_deployed(conn, through="deployments")
    node_port = next((p.get("nodePort") for p in (service.get("spec") or {}).get("ports") or [] if p.get("nodePort")),
                     None)
    forward_cmd = f"kubectl port-forward -n {conn.namespace} svc/{SERVICE} 8080:80"

    if method == "auto" and conn.cluster_kind == "local":
        problem = not_backed(conn, kube)
        if problem:
            return Access(None, "simulated", forward_cmd, [problem], simulated=True)

    tried: list[str] = []
    attempts: list[tuple[str, Callable[[], Access]]] = []
    # the simulated cluster's nodes have no reachable address, and kwok forwards kubectl's port-forward
    # (not the client library's websocket one): kubectl it is
    local = method == "auto" and conn.cluster_kind == "local"
    if method in ("auto", "minikube") and (method == "minikube" or conn.cluster_kind == "minikube"):
        attempts.append(("minikube", lambda: _minikube(conn, timeout)))
    if method in ("auto", "nodeport") and not local:
        attempts.append(("nodeport", lambda: _node_port(conn, kube, node_port, timeout)))
    if method in ("auto", "port-forward") and not local:
        attempts.append(("port-forward", lambda: _python_forward(conn, kube, local_port, timeout)))
    if method in ("auto", "kubectl"):
        attempts.append(("kubectl", lambda: _kubectl_forward(conn, local_port, timeout)))

    for name, attempt in attempts:
        try:
            access = attempt()
        except AccessError as err:
            tried.append(f"{name}: {err.problem}")
            continue
        if verify:
            problem = check_health(access, timeout)
            if problem:
                access.close()
                tried.append(f"{name}: {problem}")
                continue
        access.notes[:0] = [f"{n} (tried first)" for n in tried]
        access.simulated = conn.cluster_kind == "local"
        return access

    fix = (f"on any cluster `{forward_cmd}` then open http://localhost:8080; "
           "check that the proxy pod is Ready (`kubectl get pods -n " + conn.namespace + "`)")
    if conn.cluster_kind == "local":
        fix = (f"check that the proxy pod is Ready (`kubectl get pods -n {conn.namespace}`) and what it logs "
               f"(`kubectl logs -n {conn.namespace} deploy/proxy -c nginx`); `jhtutorial cluster status` shows the "
               "supervisor that runs the pods' programs")
    elif conn.cluster_kind == "kind":
        fix = ("kind's NodePorts reach the host only through extraPortMappings set at `kind create cluster`; "
               f"use `{forward_cmd}` instead")
    raise AccessError(f"could not reach Service {SERVICE} in namespace {conn.namespace}:\n  "
                      + "\n  ".join(tried), fix=fix)


def not_backed(conn: Connection, kube: KubeApi | None = None) -> str | None:
    """On the local simulated cluster: None if the proxy pod runs its real programs (backed), else why not."""
    from .localcluster.backing import BACKED_BY_ANNOTATION, BACKED_LABEL, CLASSROOM_LABEL, NOT_BACKED_ANNOTATION
    from .localcluster.backing.policy import backed_labels

    kube = kube or KubeApi(conn.api)
    if kube.get_or_none("/apis/kwok.x-k8s.io/v1alpha1") is None:
        return ("this local cluster was made before kwok's PortForward and Logs resources were enabled, so no "
                "pod runs its programs here: `jhtutorial cluster down` then `jhtutorial cluster up` recreates it")
    pods = kube.get(PODS.path(conn.namespace), labelSelector=PROXY_SELECTOR).get("items", [])
    pods = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    annotations = [(p.get("metadata") or {}).get("annotations") or {} for p in pods]
    if any(BACKED_BY_ANNOTATION in a for a in annotations):
        return None
    why = next((a[NOT_BACKED_ANNOTATION] for a in annotations if NOT_BACKED_ANNOTATION in a), None)
    if why:
        return f"the proxy pod is purely simulated, its programs cannot run here: {why}"
    try:
        namespace = kube.get_or_none(NAMESPACES.path(name=conn.namespace)) or {}
    except Forbidden:
        namespace = {}
    labels = (namespace.get("metadata") or {}).get("labels") or {}
    if CLASSROOM_LABEL in labels and labels.get(BACKED_LABEL) != "true":
        return (f"namespace {conn.namespace} belongs to a classroom whose learners the instructor kept purely "
                "simulated (`classroom up --simulated`): its pods run no program")
    if labels.get(BACKED_LABEL) != "true":
        return (f"namespace {conn.namespace} was not made by `jhtutorial up` or notebook 00, so its pods stay "
                f"purely simulated; to run their programs here: kubectl label namespace {conn.namespace} "
                + " ".join(f"{key}={value}" for key, value in backed_labels().items()))
    if not pods:
        return "there is no proxy pod (step 06 makes it)"
    return ("the proxy pod does not run its programs (yet): is the local cluster's supervisor running? "
            "`jhtutorial cluster status` says; `jhtutorial cluster up` starts it")


def backing_report(conn: Connection) -> list[str]:
    """On the local cluster: how each pod of the namespace runs its programs (in a sandbox of its own), and why
    the others do not (``jhtutorial status``, notebook 07)."""
    from .localcluster.backing import BACKED_BY_ANNOTATION, NOT_BACKED_ANNOTATION

    pods = KubeApi(conn.api).get(PODS.path(conn.namespace)).get("items", [])
    out = ["pods (local simulated cluster: no container runs; these run their real programs on this machine):"]
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        annotations = pod["metadata"].get("annotations") or {}
        how = annotations.get(BACKED_BY_ANNOTATION) or (
            f"purely simulated: {annotations[NOT_BACKED_ANNOTATION]}" if NOT_BACKED_ANNOTATION in annotations
            else "purely simulated")
        out.append(f"  {pod['metadata']['name']}: {how}")
    if not pods:
        out.append("  (none)")
    elif not any(BACKED_BY_ANNOTATION in (p["metadata"].get("annotations") or {}) for p in pods):
        out.append(f"  why: {not_backed(conn) or 'no pod of this tutorial here'}")
    return out


def require_deployed(conn: Connection, *, through: str = "deployments") -> Obj:
    """The proxy-public Service, after checking that every step up to ``through`` is present.

    Raises StepOutOfOrder naming every step whose objects are missing.
    """
    last = get_step(through)
    gaps = [(step, missing) for step in STEPS
            if step.number <= last.number and step.files and (missing := step.missing(conn))]
    if gaps:
        named = and_join([f"{step.key} ({', '.join(missing)})" for step, missing in gaps])
        raise StepOutOfOrder(
            f"the hub is not deployed in namespace {conn.namespace}: step{'s' if len(gaps) > 1 else ''} "
            f"{named} {'are' if len(gaps) > 1 else 'is'} missing",
            fix=f"apply the steps up to {last.key}: `{up_command(last.number, conn.namespace)}` "
            f"(from Python: jhtutorial.apply({gaps[0][0].slug!r}) and the ones after it)",
        )
    service = KubeApi(conn.api).get_or_none(SERVICES.path(conn.namespace, SERVICE))
    if service is None:  # removed between the check and now
        raise StepOutOfOrder(f"Service {SERVICE} is missing in namespace {conn.namespace}",
                             fix="apply step 05: jhtutorial.apply('services')")
    return service


# --- minikube -------------------------------------------------------------------------------


def _minikube(conn: Connection, timeout: float) -> Access:
    binary = shutil.which("minikube")
    command = f"minikube service {SERVICE} -n {conn.namespace} --url"
    if binary is None:
        raise AccessError("the minikube command is not installed here")
    args = [binary, "service", SERVICE, "-n", conn.namespace, "--url"]
    if conn.context and conn.context != "minikube":
        args += ["-p", conn.context]  # minikube names each context after its profile
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    output = PipeReader(process)
    url = output.wait_for(re.compile(r"(https?://\S+)"), timeout)
    if url is None:
        _end(process, output)
        raise AccessError(f"`{command}` printed no URL: {output.tail()}")
    if process.poll() is None:
        # docker driver on macOS/Windows: the command holds a tunnel open for as long as it runs,
        # and its output is read all along (a full pipe would stop it)
        return Access(url, "minikube", command, ["minikube keeps a tunnel open; close() ends it"],
                      _closer=lambda: _end(process, output))
    _end(process, output)
    return Access(url, "minikube", command)


# --- NodePort -------------------------------------------------------------------------------


def _node_port(conn: Connection, kube: KubeApi, node_port: int | None, timeout: float) -> Access:
    if conn.cluster_kind == "local":
        # its nodes' address is where kwok listens, and nothing forwards a NodePort there: a program of the
        # machine that happened to listen on that port would answer in the hub's place
        raise AccessError("the local cluster's nodes are simulated: no node forwards its NodePorts "
                          "(the way in is `kubectl port-forward`)")
    if not node_port:
        raise AccessError(f"Service {SERVICE} has no node port (type is not NodePort?)")
    try:
        nodes = kube.get(NODES.path()).get("items", [])
    except Forbidden:
        raise AccessError("not allowed to list nodes (a cluster-wide read) to find a node address "
                          "for the node port") from None
    addresses = []
    for node in nodes:
        ready = node_is_ready(node)
        for address in (node.get("status") or {}).get("addresses") or []:
            if ready and address.get("type") in ("ExternalIP", "InternalIP"):
                addresses.append((0 if address["type"] == "ExternalIP" else 1, address["address"]))
    command = f"kubectl get service {SERVICE} -n {conn.namespace}   (then http://NODE-ADDRESS:{node_port})"
    if not addresses:
        raise AccessError("no Ready node has an InternalIP or ExternalIP address to reach the node port on")
    failures = []
    for _, address in sorted(addresses):
        host = f"[{address}]" if ":" in address else address
        try:
            with socket.create_connection((address, node_port), timeout=min(timeout, PROBE_SECONDS)):
                pass
        except OSError as err:
            failures.append(f"{address}:{node_port} {err.strerror or err}")
            continue
        return Access(f"http://{host}:{node_port}", "nodeport", command,
                      [f"node port {node_port} on node address {address}"])
    why = "; ".join(failures[:3])
    hint = ""
    if conn.cluster_kind == "kind":
        hint = " (kind: NodePorts reach the host only with extraPortMappings)"
    elif conn.cluster_kind == "k3d":
        hint = " (k3d: map the port when creating the cluster, `k3d cluster create -p ...`)"
    raise AccessError(f"node port {node_port} is not reachable from this machine: {why}{hint}")


# --- port-forward from Python ----------------------------------------------------------------


def _proxy_pod_and_port(conn: Connection, kube: KubeApi) -> tuple[str, int]:
    """A Ready pod behind proxy-public, and the container port its targetPort names."""
    service = kube.get(SERVICES.path(conn.namespace, SERVICE))
    spec = service.get("spec") or {}
    selector = ",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items())
    port = next(iter(spec.get("ports") or []), {})
    target = port.get("targetPort", port.get("port"))
    pods = kube.get(PODS.path(conn.namespace), labelSelector=selector).get("items", []) if selector else []
    ready = [p for p in pods if pod_is_ready(p) and not (p.get("metadata") or {}).get("deletionTimestamp")]
    if not ready:
        raise AccessError(f"no Ready pod behind Service {SERVICE} (selector {selector or 'none'})")
    pod = ready[0]
    if isinstance(target, int) or str(target).isdigit():
        return pod["metadata"]["name"], int(target)
    for container in (pod.get("spec") or {}).get("containers") or []:
        for container_port in container.get("ports") or []:
            if container_port.get("name") == target:
                return pod["metadata"]["name"], int(container_port["containerPort"])
    raise AccessError(f"pod {pod['metadata']['name']} has no container port named {target!r}")


class PortForwarder:
    """A local listening port whose connections go to a pod's port through the API server.

    Each accepted connection opens its own port-forward stream (a websocket to
    ``/api/v1/namespaces/NS/pods/POD/portforward``), the way kubectl does.
    Threads: one accepting, one per open connection; :meth:`close` ends and joins them.
    """

    def __init__(self, conn: Connection, pod: str, port: int, local_port: int = 0) -> None:
        from kubernetes.client import ApiClient

        # Its own ApiClient: kubernetes.stream swaps the client's call_api while a stream
        # opens, which must not touch requests other threads send (a live view's watch).
        self._api = ApiClient(conn.api.configuration)
        self.namespace = conn.namespace
        self.pod = pod
        self.port = port
        self.errors: list[str] = []
        # bound first, any free port when local_port is taken: never "is it free?" then bind
        try:
            self._listener, self.port_note = on_preferred_port(local_port, listening_socket)
        except OSError as err:  # not "taken": a port below 1024 without the right, say
            raise AccessError(f"cannot listen on 127.0.0.1:{local_port}: {err.strerror or err}",
                              fix="pick another local port, or 0 for any free one") from None
        self.local_port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        accept = threading.Thread(target=self._accept, name=f"jhtutorial-port-forward-{self.local_port}", daemon=True)
        self._threads.append(accept)
        accept.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.local_port}"

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(10)
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()
        self._api.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([self._listener, self._wake_r], [], [])
            if self._wake_r in readable or self._stop.is_set():
                return
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            relay = threading.Thread(target=self._relay, args=(client,),
                                     name=f"jhtutorial-port-forward-{self.local_port}-conn", daemon=True)
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()] + [relay]
            relay.start()

    def _relay(self, client: socket.socket) -> None:
        from kubernetes.client import CoreV1Api
        from kubernetes.stream import portforward

        try:
            forward = portforward(CoreV1Api(self._api).connect_get_namespaced_pod_portforward,
                                  self.pod, self.namespace, ports=str(self.port))
        except Exception as err:  # noqa: BLE001 - the handshake's errors come in many types; report them all
            self.errors.append(f"opening the port-forward failed: {_reason(err)}")
            client.close()
            return
        remote = forward.socket(self.port)
        try:
            _pump(client, remote, self._wake_r, self._stop)
        finally:
            error = forward.error(self.port)
            if error:
                self.errors.append(error.strip())
            client.close()
            forward.close()


def _pump(a: socket.socket, b: Any, wake: socket.socket, stop: threading.Event) -> None:
    """Copy bytes both ways until either side closes or stop is set."""
    sockets = [a, b]
    while not stop.is_set():
        try:
            readable, _, _ = select.select([*sockets, wake], [], [], 30)
        except (OSError, ValueError):
            return
        if wake in readable:
            return
        for source in readable:
            target = b if source is a else a
            try:
                data = source.recv(64 * 1024)
                if not data:
                    return
                target.sendall(data)
            except OSError:
                return


def _python_forward(conn: Connection, kube: KubeApi, local_port: int, timeout: float) -> Access:
    try:
        import kubernetes.stream  # noqa: F401 - needs websocket-client
    except ImportError as err:
        raise AccessError(f"the kubernetes client cannot port-forward here: {err}") from None
    pod, port = _proxy_pod_and_port(conn, kube)
    forwarder = PortForwarder(conn, pod, port, local_port)
    access = Access(forwarder.url, "port-forward",
                    f"kubectl port-forward -n {conn.namespace} svc/{SERVICE} {local_port or 8080}:80",
                    [*_port_notes(forwarder.port_note, forwarder.local_port),
                     f"forwarded through the API server to pod {pod}, port {port}; close() ends it"],
                    _closer=forwarder.close)
    access.forwarder = forwarder  # type: ignore[attr-defined]  # tests and curious learners read its errors
    return access


# --- kubectl port-forward --------------------------------------------------------------------


def _kubectl_forward(conn: Connection, local_port: int, timeout: float) -> Access:
    binary = kubectl_command(conn)
    if binary is None:
        raise AccessError("kubectl is not installed here")
    (process, output, port_text), port_note = on_preferred_port(
        local_port, lambda port: _start_kubectl_forward(binary, conn, port, timeout))
    access = Access(f"http://127.0.0.1:{port_text}", "kubectl",
                    f"kubectl port-forward -n {conn.namespace} svc/{SERVICE} {local_port or 8080}:80",
                    [*_port_notes(port_note, int(port_text)),
                     f"a `kubectl port-forward` process (pid {process.pid}) carries the connections; close() ends it"],
                    _closer=lambda: _end(process, output))
    access.forward_errors = output.errors  # type: ignore[attr-defined]  # kubectl reports failed connections
    access.process = process  # type: ignore[attr-defined]
    return access


def _start_kubectl_forward(binary: str, conn: Connection, local_port: int,
                           timeout: float) -> tuple[subprocess.Popen[str], PipeReader, str]:
    """A running ``kubectl port-forward`` on local_port (0: kubectl picks a free one, ``:80``), its output
    and the port it listens on; raises PortTaken when kubectl could not bind local_port."""
    args, env = port_forward_command(binary, conn, local_port)
    # under a keeper that starts it again on the same port: kubectl ends for good on one broken connection,
    # which a restart of the API server or of the proxy pod causes in the middle of a login
    args = [sys.executable, "-m", "jhtutorial.forwardkeeper", *args]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    # Both pipes are read to the end by threads: kubectl writes a "Handling connection" line per
    # connection, and a pipe nobody reads fills up and freezes the forward in a long session.
    output = PipeReader(process)
    port_text = output.wait_for(re.compile(r"Forwarding from 127\.0\.0\.1:(\d+)"), timeout)
    if port_text is None:
        _end(process, output)
        if local_port and says_address_in_use(" ".join(output.errors)):
            raise PortTaken(local_port, "kubectl: " + output.tail(1))
        raise AccessError(f"`kubectl port-forward` did not start: {output.tail()}")
    return process, output, port_text


def port_forward_command(binary: str, conn: Connection, local_port: int) -> tuple[list[str], dict[str, str]]:
    """``kubectl port-forward svc/proxy-public LOCAL:80`` on 127.0.0.1 only (0: kubectl picks the port), for
    this connection's context and kubeconfig: the arguments and the environment to run it with."""
    args = [binary, "port-forward", "-n", conn.namespace, f"svc/{SERVICE}", f"{local_port or ''}:80",
            "--address", "127.0.0.1"]
    if conn.context:
        args[1:1] = ["--context", conn.context]
    env = dict(os.environ)
    if conn.kubeconfig:
        env["KUBECONFIG"] = conn.kubeconfig
    return args, env


def _port_notes(port_note: str | None, used: int) -> list[str]:
    """The note that says which local port a forward took when the one asked for was taken."""
    return [f"{port_note}: forwarding from port {used} instead"] if port_note else []


def kubectl_command(conn: Connection) -> str | None:
    """kubectl from PATH, else (on the local cluster) the one built with it."""
    found = shutil.which("kubectl")
    if found is None and conn.cluster_kind == "local":
        from .localcluster import ensure_binaries

        with contextlib.suppress(Exception):  # a missing build is reported as "not installed" by the caller
            built = ensure_binaries(lambda _: None).kubectl
            found = str(built) if built.is_file() else None
    return found


class PipeReader:
    """Reads a process's stdout and stderr line by line in two threads, for as long as it runs.

    Nothing else reads the pipes (no select() on a buffered stream): :meth:`wait_for` waits on a
    condition that the threads signal. Keeps the last lines of both, and stderr's error lines.
    """

    def __init__(self, process: subprocess.Popen[str], keep: int = 200) -> None:
        self.lines: list[str] = []
        self.errors: list[str] = []
        self._keep = keep
        self._changed = threading.Condition()
        self._open = 0
        self._threads = [threading.Thread(target=self._read, args=(stream, is_err), daemon=True,
                                          name=f"jhtutorial-pipe-{process.pid}-{'err' if is_err else 'out'}")
                         for stream, is_err in ((process.stdout, False), (process.stderr, True)) if stream]
        self._open = len(self._threads)
        for thread in self._threads:
            thread.start()

    def _read(self, stream: Any, is_err: bool) -> None:
        with contextlib.suppress(OSError, ValueError):
            for line in stream:
                with self._changed:
                    self.lines = [*self.lines[-self._keep + 1:], line.rstrip()]
                    if is_err and "Handling connection" not in line:
                        self.errors.append(line.strip())
                    self._changed.notify_all()
        with self._changed:
            self._open -= 1
            self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> str | None:
        """Group 1 of the first line that matches, or None (the process ended, or time ran out)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    match = pattern.search(line)
                    if match:
                        return match.group(1)
                remaining = deadline - time.monotonic()
                if self._open == 0 or remaining <= 0:
                    return None
                self._changed.wait(remaining)

    def tail(self, count: int = 3) -> str:
        with self._changed:
            lines = [line for line in self.lines if line.strip()]
        return " / ".join(lines[-count:]) or "no output"

    def join(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout)


# --- helpers ----------------------------------------------------------------------------------


def check_health(access: Access, timeout: float) -> str | None:
    """None if the hub answers /hub/health through the URL; else what went wrong."""
    import requests

    try:
        response = requests.get(access.url + HEALTH_PATH, timeout=min(timeout, 10.0), allow_redirects=False)
    except requests.RequestException as err:
        problem = f"{access.url}{HEALTH_PATH} did not answer ({_reason(err)})"
    else:
        if response.status_code == 200:
            return None
        problem = f"{access.url}{HEALTH_PATH} answered HTTP {response.status_code}, not the hub's 200"
    # a port-forward knows why a connection died: the kubelet's (or kwok's) own words
    time.sleep(0.2)  # the forward's error frame can trail the closed connection by a moment
    details = list(getattr(getattr(access, "forwarder", None), "errors", []) or [])
    details += list(getattr(access, "forward_errors", []) or [])
    details = [d for d in details if d]
    if details:
        # kubectl ends with "lost connection to pod"; the line before it says why
        best = next((d for d in reversed(details) if "error forwarding" in d), details[-1])
        quoted = re.search(r'err="(.*)"', best)
        problem += f"; the port-forward reported: {(quoted.group(1) if quoted else best)[:400]}"
    return problem


def _end(process: subprocess.Popen[str], output: PipeReader) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output.join()  # the readers end with the process's pipes
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            with contextlib.suppress(OSError, ValueError):
                stream.close()


def _reason(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0][:300]



