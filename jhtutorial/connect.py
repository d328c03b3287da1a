"""Connect to a cluster: find credentials, check the server answers, prepare the namespace.

    >>> conn = connect()                                  # doctest: +SKIP
    >>> print(conn)                                       # doctest: +SKIP
    connected to the local simulated cluster (kwok), Kubernetes v1.36.3
      context:       kwok-jhtutorial
      server:        https://127.0.0.1:40213
      namespace:     jhtutorial (created)
      storage:       default StorageClass 'standard' (binds volumes at once)
      kubectl:       export KUBECONFIG=/root/.local/state/jhtutorial/kubeconfig

The kubectl equivalents: ``kubectl version``, ``kubectl get storageclass``,
``kubectl create namespace jhtutorial``.

Where the credentials come from, first match wins (as kubectl does, plus a
fallback for this tutorial):

1. the ``kubeconfig`` argument;
2. the ``KUBECONFIG`` environment variable (one or more paths);
3. ``~/.kube/config``;
4. the pod's service account, when running inside a cluster (e.g. in a JupyterHub);
5. the local simulated cluster's kubeconfig, if ``jhtutorial cluster up`` made one.

The connection is remembered, so later calls (``apply("rbac")``) may leave it out.
"""

from __future__ import annotations

import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.config.config_exception import ConfigException

from .errors import (
    ConnectError,
    Forbidden,
    InvalidNamespace,
    KubeApiError,
    NamespaceNotFound,
    NoDefaultStorageClass,
    NoKubeconfig,
    NotConnected,
    UnknownContext,
)
from .kubeapi import NAMESPACES, NODES, STORAGE_CLASSES, KubeApi
from .localcluster import LocalCluster
from .objects import default_storage_class
from .localcluster.backing.policy import backed_labels
from .readable import Readable

DEFAULT_NAMESPACE = "jhtutorial"
NAMESPACE_ENV = "JHTUTORIAL_NAMESPACE"
CONTEXT_ENV = "JHTUTORIAL_CONTEXT"  # `jhtutorial lab --context` hands its choice to the notebooks this way
# RFC 1123 label: what the API server accepts as a namespace name.
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAMESPACE_MAX = 63
LOCAL_CONTEXT = "kwok-jhtutorial"
MANAGED_BY = {"app.kubernetes.io/managed-by": "jhtutorial"}
IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")

# What connect() can tell apart, and how it names each to a learner.
CLUSTER_KINDS = {
    "local": "the local simulated cluster (kwok)",
    "minikube": "minikube",
    "kind": "kind",
    "k3d": "k3d",
    "other": "a Kubernetes cluster",
}

_current: Connection | None = None


@dataclass(repr=False)
class Connection(Readable):
    """A checked connection: the client, the namespace, and what the cluster is like."""

    api: ApiClient
    namespace: str
    context: str | None  # None when the pod's service account is used
    server: str
    server_version: str
    cluster_kind: str  # a key of CLUSTER_KINDS
    default_storage_class: str | None
    volume_binding_mode: str | None  # of the default StorageClass: Immediate or WaitForFirstConsumer
    storage_checked: bool  # False when listing StorageClasses was not allowed
    namespace_created: bool
    kubeconfig: str | None  # the file(s) the credentials came from
    notes: list[str] = field(default_factory=list)
    # Long-lived users (a running live view) and whether connect() has replaced this connection: a replaced
    # connection closes its sockets at once, or when the last such user lets go.
    _holders: int = field(default=0, init=False, repr=False, compare=False)
    _replaced: bool = field(default=False, init=False, repr=False, compare=False)
    _holding: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def lines(self) -> list[str]:
        out = [f"connected to {CLUSTER_KINDS[self.cluster_kind]}, Kubernetes {self.server_version}"]
        out.append(f"  context:       {self.context or '(in-cluster service account)'}")
        out.append(f"  server:        {self.server}")
        out.append(f"  namespace:     {self.namespace}{' (created)' if self.namespace_created else ''}")
        out.append(f"  storage:       {self._storage_text()}")
        if self.kubeconfig and not _is_kubectl_default(self.kubeconfig):
            out.append(f"  kubectl:       export KUBECONFIG={self.kubeconfig}")
        out.extend(f"  note:          {note}" for note in self.notes)
        return out

    def __repr__(self) -> str:
        return (
            f"Connection(context={self.context!r}, namespace={self.namespace!r}, server={self.server!r}, "
            f"version={self.server_version!r}, cluster={self.cluster_kind!r}, "
            f"default_storage_class={self.default_storage_class!r})"
        )

    def require_default_storage_class(self) -> str:
        """The default StorageClass's name, or NoDefaultStorageClass saying what to do."""
        if self.default_storage_class:
            return self.default_storage_class
        if not self.storage_checked:
            # we could not look; let the PVC itself tell (its events name the problem)
            return ""
        raise NoDefaultStorageClass(
            "the cluster has no default StorageClass, so the hub's PVC (hub-db-dir) would stay Pending forever",
            fix="mark one as default: `kubectl patch storageclass NAME -p "
            "'{\"metadata\": {\"annotations\": {\"storageclass.kubernetes.io/is-default-class\": \"true\"}}}'` "
            "(`kubectl get storageclass` lists them); minikube: `minikube addons enable default-storageclass "
            "storage-provisioner`; or use the local cluster: `jhtutorial cluster up`",
        )

    def close(self) -> None:
        """Close the sockets of the client's connection pool. A later request still works: it opens new ones."""
        self.api.close()
        # ApiClient.close() closes the pool's sockets only from client 37 on; before, just its thread pool
        self.api.rest_client.pool_manager.clear()

    def hold(self) -> None:
        """A background user (a live view's watches) starts using this connection: a connect() that replaces
        it meanwhile leaves it open until :meth:`release`. Pair every hold() with one release()."""
        with self._holding:
            self._holders += 1

    def release(self) -> None:
        """The background user is done; a connection replaced meanwhile is closed now."""
        with self._holding:
            self._holders = max(0, self._holders - 1)
            close = self._replaced and self._holders == 0
        if close:
            self.close()

    def _replace(self) -> None:
        """connect() made a newer connection: close this one, now or when its last holder lets go."""
        with self._holding:
            self._replaced = True
            close = self._holders == 0
        if close:
            self.close()

    def _storage_text(self) -> str:
        if not self.storage_checked:
            return "not checked (no permission to list StorageClasses)"
        if not self.default_storage_class:
            return "NO default StorageClass: the hub's PVC cannot bind (see notebook 04)"
        if self.volume_binding_mode == "WaitForFirstConsumer":
            return (f"default StorageClass '{self.default_storage_class}' "
                    "(binds a volume only once a pod uses it: the PVC stays Pending until the hub starts)")
        return f"default StorageClass '{self.default_storage_class}' (binds volumes at once)"


def connect(
    context: str | None = None,
    namespace: str | None = None,
    *,
    kubeconfig: str | os.PathLike[str] | None = None,
    timeout: float = 5.0,
    create_namespace: bool = True,
) -> Connection:
    """Connect to the cluster and make sure the tutorial's namespace exists.

    Args:
        context: a kubeconfig context (``kubectl config get-contexts``); default: ``$JHTUTORIAL_CONTEXT``,
            else the kubeconfig's current one (with an explicit ``kubeconfig``, always its current one).
        namespace: where the tutorial's objects go; default: see :func:`resolve_namespace` (``$JHTUTORIAL_NAMESPACE``,
            the context's namespace, ``jhtutorial``).
        kubeconfig: a kubeconfig file to use instead of the usual search.
        timeout: seconds to wait for the server's first answer.
        create_namespace: create the namespace if it is missing.

    Raises (all ConnectError, exit code 4): NoKubeconfig, UnknownContext,
    ClusterUnreachable, Unauthorized, InvalidNamespace; Forbidden (6) when the
    namespace is missing and may not be created.

    Example::

        conn = connect(namespace="jhub")        # like: kubectl create namespace jhub
        conn = connect("minikube", "jhub")      # like: kubectl --context minikube -n jhub ...
    """
    global _current
    if kubeconfig is None:
        context = resolve_context(context)
    namespace = resolve_namespace(context, namespace, kubeconfig=kubeconfig)
    validate_namespace(namespace)  # before any network traffic: a typo costs nothing

    api, used_context, source = _load_client(context, kubeconfig)
    kube = KubeApi(api)
    try:
        version = kube.probe("/version", timeout=timeout)
        conn = Connection(
            api=api,
            namespace=namespace,
            context=used_context,
            server=api.configuration.host,
            server_version=str(version.get("gitVersion", "unknown")),
            cluster_kind="other",
            default_storage_class=None,
            volume_binding_mode=None,
            storage_checked=False,
            namespace_created=False,
            kubeconfig=source,
        )
        conn.cluster_kind = _cluster_kind(kube, used_context, conn.server_version, conn.notes)
        _inspect_storage(kube, conn)
        if create_namespace:
            conn.namespace_created = _ensure_namespace(kube, namespace, conn.notes, timeout=max(timeout, 60.0),
                                                       backed=conn.cluster_kind == "local")
    except BaseException:
        api.close()
        raise
    # Every nb.begin() connects anew; the connection it replaces must not keep its pool of sockets open.
    previous, _current = _current, conn
    if previous is not None and previous is not conn:
        previous._replace()
    return conn


def resolve_context(explicit: str | None = None) -> str | None:
    """The kubeconfig context to use: the one given (``context`` parameter, ``--context``), else
    ``$JHTUTORIAL_CONTEXT``, else None (the kubeconfig's current context, as for kubectl)."""
    return explicit or os.environ.get(CONTEXT_ENV) or None


def resolve_namespace(context: str | None = None, namespace: str | None = None, *,
                      kubeconfig: str | os.PathLike[str] | None = None) -> str:
    """The namespace to work in, first match wins: ``namespace`` (the notebooks' parameter, ``--namespace``),
    ``$JHTUTORIAL_NAMESPACE`` (set by ``jhtutorial lab --namespace``), the namespace of the kubeconfig
    context (see :func:`resolve_context`; with an explicit ``kubeconfig``, that file's context), else
    ``jhtutorial``. connect(), the notebooks and the CLI share this rule.

        $ kubectl config set-context --current --namespace alice && jhtutorial status   # works in alice
    """
    if kubeconfig is None:
        context = resolve_context(context)
    return (namespace or os.environ.get(NAMESPACE_ENV) or context_namespace(context, kubeconfig=kubeconfig)
            or DEFAULT_NAMESPACE)


def context_namespace(context: str | None, *, kubeconfig: str | os.PathLike[str] | None = None) -> str | None:
    """The namespace a kubeconfig context names (what plain ``kubectl`` would use), if any.

    ``context`` None means the current context. The kubeconfig is ``kubeconfig``, else found as
    :func:`connect` finds it (``KUBECONFIG``'s files merged, ``~/.kube/config``, the local cluster's); a
    kubeconfig that cannot be read names no namespace here, and :func:`connect` reports what is wrong."""
    try:
        files = _kubeconfig_files(kubeconfig) or _local_cluster_kubeconfig(context)
        contexts, current = kubeconfig_contexts(files)
    except ConnectError:
        return None
    namespace = (contexts.get(context or current or "") or {}).get("namespace")
    return str(namespace) if namespace else None


def current_connection() -> Connection:
    """The connection made by the last connect() call."""
    if _current is None:
        raise NotConnected(
            "not connected to a cluster yet",
            fix="run `conn = jhtutorial.connect()` first (the first notebook does), or pass a connection",
        )
    return _current


def validate_namespace(name: str) -> None:
    """Raise InvalidNamespace unless ``name`` is a valid namespace name."""
    if isinstance(name, str) and len(name) <= NAMESPACE_MAX and NAMESPACE_PATTERN.match(name):
        return
    suggestion = re.sub(r"[^a-z0-9-]+", "-", str(name).lower()).strip("-")[:NAMESPACE_MAX].strip("-")
    problem = f"{name!r} is not a valid namespace name"
    if isinstance(name, str) and len(name) > NAMESPACE_MAX:
        problem += f" (it has {len(name)} characters; at most {NAMESPACE_MAX} are allowed)"
    raise InvalidNamespace(
        problem,
        fix="use lowercase letters, digits and '-', starting and ending with a letter or digit"
        + (f", for example {suggestion!r}" if suggestion else ""),
    )


# --- credentials ---------------------------------------------------------------------


def _load_client(
    context: str | None, kubeconfig: str | os.PathLike[str] | None
) -> tuple[ApiClient, str | None, str | None]:
    """An ApiClient, the context actually used, and where the credentials came from."""
    configuration = Configuration()
    files = _kubeconfig_files(kubeconfig)
    if files is None:  # no kubeconfig anywhere: the pod's service account?
        if _in_cluster() and context is None:
            kube_config.load_incluster_config(client_configuration=configuration)
            return _client(configuration), None, None
        files = _local_cluster_kubeconfig(context)
    joined = os.pathsep.join(files)
    contexts, active = kubeconfig_contexts(files)
    names = list(contexts)
    wanted = context or active
    if not wanted or wanted not in names:
        listed = ", ".join(repr(n) for n in names) or "none"
        problem = (f"the kubeconfig {joined} has no context {context!r}" if context
                   else f"the kubeconfig {joined} has no current context")
        raise UnknownContext(
            problem,
            fix=f"pass one of its contexts: {listed} (`kubectl config get-contexts` lists them)",
        )
    try:
        kube_config.load_kube_config(config_file=joined, context=wanted, client_configuration=configuration)
    except (ConfigException, OSError, ValueError) as err:
        raise UnknownContext(
            f"the context {wanted!r} in {joined} cannot be used: {err}",
            fix="repair its cluster/user entries (`kubectl config view`), or pick another context",
        ) from None
    return _client(configuration), wanted, joined


def kubeconfig_contexts(files: list[str]) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Each context of the kubeconfig files (name -> its ``context`` entry, in file order) and the current
    context, merged as kubectl merges ``KUBECONFIG=a:b``: the first file to name a context, or to set
    ``current-context``, wins (``kubectl config get-contexts``).

    The client's own ``kubernetes.config.list_kube_config_contexts`` cannot stand in for this: it fails
    on a kubeconfig without a ``current-context`` (exactly when a learner must be shown the contexts to
    pick from), and a later file's ``current-context`` overrides an earlier one, unlike kubectl."""
    contexts: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for path in files:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as err:
            raise UnknownContext(
                f"cannot read the kubeconfig {path}: {err}",
                fix="check the file (`kubectl config view`); for the local cluster run `jhtutorial cluster up`",
            ) from None
        if not isinstance(data, dict):
            raise UnknownContext(f"the kubeconfig {path} is not a kubeconfig (no mapping at the top)",
                                 fix="point KUBECONFIG at a real kubeconfig file")
        for entry in data.get("contexts") or []:
            if isinstance(entry, dict) and entry.get("name") and entry["name"] not in contexts:
                contexts[entry["name"]] = entry.get("context") or {}
        current = current or data.get("current-context") or None
    return contexts, current


def _client(configuration: Configuration) -> ApiClient:
    # Fail fast when nobody listens (a connect error is not retried: the caller
    # reports it, or the watch loop retries on its own schedule), but let
    # urllib3 retry a request on a pooled connection the server closed.
    configuration.retries = urllib3.Retry(total=3, connect=0, backoff_factor=0.1)
    return ApiClient(configuration)


def _kubeconfig_files(explicit: str | os.PathLike[str] | None) -> list[str] | None:
    """Kubeconfig files to read, or None when none is configured."""
    if explicit is not None:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise NoKubeconfig(
                f"the kubeconfig file {path} does not exist",
                fix="check the path; for the local cluster use `jhtutorial cluster kubeconfig`",
            )
        return [str(path)]
    variable = os.environ.get("KUBECONFIG")
    if variable:
        listed = [p for p in variable.split(os.pathsep) if p]
        existing = [str(Path(p).expanduser()) for p in listed if Path(p).expanduser().is_file()]
        if not existing:
            raise NoKubeconfig(
                f"KUBECONFIG is set to {variable!r}, but no such file exists",
                fix="point KUBECONFIG at your cluster's kubeconfig, or unset it to use ~/.kube/config; "
                "no cluster at all? `make run` (or `jhtutorial cluster up`) starts a local one",
            )
        return existing
    default = _kubectl_default()
    return [str(default)] if default.is_file() else None


def cluster_configured() -> bool:
    """Is a cluster of the user's own configured, as kubectl would find it: ``KUBECONFIG`` (even naming
    files that are missing: connect() says so), ``~/.kube/config``, or the pod's service account?
    When not, connect() falls back to the local simulated cluster."""
    return bool(os.environ.get("KUBECONFIG")) or _kubectl_default().is_file() or _in_cluster()


def _kubectl_default() -> Path:
    return Path.home() / ".kube" / "config"


def _local_cluster_kubeconfig(context: str | None) -> list[str]:
    local = LocalCluster(progress=lambda _message: None).kubeconfig
    if local.is_file():
        return [str(local)]
    raise NoKubeconfig(
        "no kubeconfig found: KUBECONFIG is not set, ~/.kube/config does not exist and the local cluster "
        "is not running" + (f" (so there is no context {context!r})" if context else ""),
        fix="start the local cluster with `make run` or `jhtutorial cluster up`, "
        "or point KUBECONFIG at your own cluster's kubeconfig",
    )


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and IN_CLUSTER_TOKEN.is_file()


def _is_kubectl_default(source: str) -> bool:
    """Would a plain `kubectl` in a terminal read the same kubeconfig?"""
    return source == (os.environ.get("KUBECONFIG") or str(_kubectl_default()))


# --- what kind of cluster ---------------------------------------------------------------


def _cluster_kind(kube: KubeApi, context: str | None, version: str, notes: list[str]) -> str:
    try:
        nodes = kube.get(NODES.path(), limit=20).get("items", [])
    except Forbidden:
        # A learner limited to a namespace may not list nodes: the local cluster is still known by its
        # address (its API server listens on this machine only), anything else by the context's name.
        if is_local_server(kube.server):
            notes.append("not allowed to list nodes: this is the local cluster's API server (same address)")
            return "local"
        nodes = []
        notes.append("not allowed to list nodes: the cluster kind is guessed from the context name")
    for node in nodes:
        meta = node.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        labels = meta.get("labels") or {}
        provider = (node.get("spec") or {}).get("providerID", "")
        if annotations.get("kwok.x-k8s.io/node") == "fake":
            return "local"
        if "minikube.k8s.io/name" in labels:
            return "minikube"
        if provider.startswith("kind://"):
            return "kind"
        if provider.startswith("k3s://") and meta.get("name", "").startswith("k3d-"):
            return "k3d"
    name = context or ""
    if name == LOCAL_CONTEXT:
        return "local"
    if name == "minikube":
        return "minikube"
    if name.startswith("kind-"):
        return "kind"
    if name.startswith("k3d-") or ("+k3s" in version and name.startswith("k3d")):
        return "k3d"
    return "other"


def is_local_server(server: str) -> bool:
    """Is ``server`` the address of this machine's local simulated cluster (``jhtutorial cluster up``)?

    Compared with the server its kubeconfig names, so a kwok cluster elsewhere does not count."""
    local = LocalCluster(progress=lambda _message: None).kubeconfig
    try:
        data = yaml.safe_load(local.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return False
    servers = {str((entry.get("cluster") or {}).get("server", "")).rstrip("/")
               for entry in (data.get("clusters") or []) if isinstance(entry, dict)} if isinstance(data, dict) else set()
    return server.rstrip("/") in servers - {""}


def _inspect_storage(kube: KubeApi, conn: Connection) -> None:
    try:
        classes = kube.get(STORAGE_CLASSES.path()).get("items", [])
    except Forbidden:
        return  # storage_checked stays False; the PVC's own events will speak later
    conn.storage_checked = True
    chosen = default_storage_class(classes)
    if chosen is not None:
        conn.default_storage_class = chosen["metadata"]["name"]
        conn.volume_binding_mode = chosen.get("volumeBindingMode", "Immediate")


# --- the namespace ------------------------------------------------------------------------


def _ensure_namespace(kube: KubeApi, name: str, notes: list[str], *, timeout: float, backed: bool = False) -> bool:
    """Make sure the namespace exists; True if this call created it.

    ``backed``: on the local simulated cluster, a namespace made here is marked (label
    ``jhtutorial/backed=true``) so that the cluster's supervisor runs its pods' programs as this
    machine's user; namespaces made any other way stay purely simulated. Such a namespace enforces Pod
    Security ``restricted`` (:func:`~.localcluster.backing.policy.backed_labels`)."""
    try:
        existing = kube.get_or_none(NAMESPACES.path(name=name))
    except Forbidden:
        # Namespaced users often may not read Namespace objects; their admin made it.
        notes.append(f"not allowed to read namespace {name!r}: assuming it exists")
        return False
    if existing is not None and (existing.get("status") or {}).get("phase") == "Terminating":
        _wait_until_deleted(kube, name, timeout)
        existing = None
    if existing is not None:
        return False
    labels = {**MANAGED_BY, **(backed_labels() if backed else {})}
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    try:
        kube.call("POST", NAMESPACES.path(), body=body)
    except Forbidden as err:
        raise Forbidden(
            f"namespace {name!r} does not exist and you may not create it: {err.problem}",
            fix="ask your instructor or a cluster admin to create it (`kubectl create namespace " + name + "`) "
            "and give you a Role in it, or use a namespace you already own: the notebooks' `namespace` "
            "parameter (`JHTUTORIAL_NAMESPACE`, `--namespace` on the command line)",
            status=403,
            reason="Forbidden",
        ) from None
    except KubeApiError as err:
        if err.status != 409:  # 409: someone created it a moment ago, which is fine
            raise
        return False
    return True


def require_namespace(conn: Connection, *, fix: str | None = None) -> None:
    """Raise NamespaceNotFound unless the connection's namespace exists (``kubectl get namespace NS``).

    For the steps after the first: they work in the namespace notebook 00 made and never create one,
    so a mistyped name stops at once instead of becoming a new, empty namespace. Credentials that may not
    read the Namespace object are taken at their word (their admin made it)."""
    kube = KubeApi(conn.api)
    try:
        found = kube.get_or_none(NAMESPACES.path(name=conn.namespace))
    except Forbidden:
        return
    if found is None:
        raise NamespaceNotFound(
            f"namespace {conn.namespace} does not exist",
            fix=fix or f"check the namespace you gave (or create it: `jhtutorial up -n {conn.namespace}`)",
        )
    if (found.get("status") or {}).get("phase") == "Terminating":
        raise NamespaceNotFound(
            f"namespace {conn.namespace} is being deleted (an earlier clean-up): nothing can be created in it",
            fix=fix or f"wait until `kubectl get namespace {conn.namespace}` finds nothing, then start again",
        )


def _wait_until_deleted(kube: KubeApi, name: str, timeout: float) -> None:
    """A namespace being deleted (an earlier clean-up) cannot take new objects: let it finish."""
    from .watching import Reflector  # local import: watching imports kubeapi, not us

    reflector = Reflector(kube.api_client, NAMESPACES, field_selector=f"metadata.name={name}")
    start = time.monotonic()
    for event in reflector.events(timeout=timeout):
        if event.type in ("SYNCED", "DELETED") and not reflector.cache:
            return
    raise ConnectError(
        f"namespace {name!r} is still being deleted after {time.monotonic() - start:.0f} s "
        "(an earlier clean-up); no new objects can be created in it until it is gone",
        fix=f"watch it go with `kubectl get namespace {name} --watch`, then run the cell again; "
        "or use another namespace: the notebooks' `namespace` parameter (`--namespace` on the command line)",
    )
