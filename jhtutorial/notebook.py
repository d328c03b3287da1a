"""Small helpers the numbered notebooks share: the first cell, showing files and commands, tables, checks.

    >>> from jhtutorial import notebook as nb
    >>> conn = nb.begin("05-services", namespace="alice")    # doctest: +SKIP
    connected to the local simulated cluster (kwok), Kubernetes v1.36.3
      context:    kwok-jhtutorial
      namespace:  alice
    earlier steps: 01-rbac done, 02-configmaps done, 03-secret done, 04-pvc done
    >>> nb.show_manifest("svc-hub.yaml")                      # doctest: +SKIP
    >>> print(nb.get(conn, "services"))                       # doctest: +SKIP   (kubectl get services)
    NAME           TYPE        PORT(S)        CLUSTER-IP
    hub            ClusterIP   8081/TCP       10.96.56.202
    proxy-public   NodePort    80:31175/TCP   10.96.177.124

Everything here reads the cluster through the same connection as the rest of
the package; nothing here prints a Secret's value.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from . import manifests
from .connect import Connection, connect, require_namespace
from .errors import Forbidden, StepOutOfOrder, TutorialError
from .kubeapi import (
    CONFIGMAPS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    EVENTS,
    NODES,
    PODS,
    PVCS,
    PVS,
    REPLICASETS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    STORAGE_CLASSES,
    KubeApi,
    Resource,
)
from .steps import STEPS, Step, get_step
from .tokens import request_token
from .yourturn import apply_step, wait_step  # noqa: F401  (nb.apply_step, nb.wait_step)

Obj = dict[str, Any]
PART_OF = "app.kubernetes.io/part-of=jhtutorial"


# --- the first cell ---------------------------------------------------------------------------


def resolve_context(context: str | None = None) -> str | None:
    """The kubeconfig context a notebook uses: the ``context`` parameter, ``$JHTUTORIAL_CONTEXT``
    (set by ``jhtutorial lab --context``), else None: the kubeconfig's current context."""
    from .connect import resolve_context as rule

    return rule(context)


def resolve_namespace(context: str | None = None, namespace: str | None = None) -> str:
    """The namespace a notebook works in, first match wins: the ``namespace`` parameter,
    ``$JHTUTORIAL_NAMESPACE`` (set by ``jhtutorial lab --namespace``), the namespace of the kubeconfig
    context (see :func:`resolve_context`), ``jhtutorial`` (the rule of the ``jhtutorial`` command, so a
    notebook and the CLI pick the same one)."""
    from .cli import resolve_namespace as cli_rule

    return cli_rule(context, namespace)


def begin(notebook: str, *, context: str | None = None, namespace: str | None = None) -> Connection:
    """Connect, print where we are, and stop, naming every earlier step that is not done.

    ``notebook`` is the notebook's key ("05-services"); the steps before it must be done. Only the first
    notebook (00) creates the namespace; the others stop with NamespaceNotFound if it does not exist, so a
    mistyped ``namespace`` parameter is an error, not a new, empty namespace.
    """
    _install_error_display()
    context = resolve_context(context)
    first = notebook.startswith("00")
    conn = connect(context, resolve_namespace(context, namespace), create_namespace=first)
    if not first:
        require_namespace(conn, fix="check the `namespace` parameter (or run 00 first, which creates it)")
    print(f"connected to {_kind(conn)}, Kubernetes {conn.server_version}")
    print(f"  context:    {conn.context or '(in-cluster service account)'}")
    print(f"  namespace:  {conn.namespace}{' (created)' if conn.namespace_created else ''}")
    done = require_steps(conn, notebook)
    if done:
        print("earlier steps: " + ", ".join(f"{status.step.key} done" for status in done))
    return conn


def require_steps(conn: Connection, notebook: str) -> list:
    """Check every step before ``notebook``; raise StepOutOfOrder naming every one that is not done."""
    from .steps import and_join, steps_named, up_command

    number = int(notebook[:2])
    statuses = [step.check(conn) for step in STEPS
                if step.number < number and step.files and not notebook.startswith("08")]
    behind = [status for status in statuses if not status.done]
    if behind:
        keys = [status.step.key for status in behind]
        raise StepOutOfOrder(
            f"notebook {notebook} needs {steps_named(keys)} first, and in namespace {conn.namespace} "
            f"{'it is' if len(keys) == 1 else 'they are'} not done:\n"
            + "\n".join(f"    {line}" for status in behind for line in str(status).splitlines()),
            fix=f"run notebook{'s' if len(keys) > 1 else ''} {and_join(keys)} first"
            + (", in order" if len(keys) > 1 else "")
            + f" (or all at once from a terminal: `{up_command(behind[-1].step.number, conn.namespace)}`), "
            "then run this notebook again",
        )
    return statuses


def simulated(conn: Connection) -> bool:
    """True on the local cluster, where the control plane is real and no container ever runs."""
    return conn.cluster_kind == "local"


def _kind(conn: Connection) -> str:
    from .connect import CLUSTER_KINDS

    return CLUSTER_KINDS[conn.cluster_kind]


def _install_error_display() -> None:
    """In a notebook, show a TutorialError as its message and fix instead of a long traceback.

    The cell still fails (papermill and nbval still stop there)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython else None  # type: ignore[attr-defined]
    if shell is None:
        return

    def handler(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
        stb = [f"\x1b[0;31m{etype.__name__}\x1b[0m: {value}"]
        shell._showtraceback(etype, value, stb)  # the error output papermill and nbval read
        return stb

    shell.set_custom_exc((TutorialError,), handler)


# what a learner needs before step 01: (verb, resource, API group)
NEEDED_PERMISSIONS = (
    ("create", "serviceaccounts", ""), ("create", "roles", "rbac.authorization.k8s.io"),
    ("create", "rolebindings", "rbac.authorization.k8s.io"), ("create", "configmaps", ""),
    ("create", "secrets", ""), ("create", "persistentvolumeclaims", ""), ("create", "services", ""),
    ("create", "deployments", "apps"), ("delete", "pods", ""), ("watch", "pods", ""),
)
# cluster-wide rights a few cells use to show more; a learner limited to a namespace lacks them, and those
# cells say so and go on: (verb, resource, API group, how the prerequisites table names it)
OPTIONAL_PERMISSIONS = (
    ("list", "nodes", "", "you may list nodes (cluster-wide; 00's exercise)"),
    ("list", "storageclasses", "storage.k8s.io", "you may list storageclasses (cluster-wide; 04)"),
    ("list", "persistentvolumes", "", "you may list persistentvolumes (cluster-wide; 04, 08)"),
    ("create", "subjectaccessreviews", "authorization.k8s.io",
     "you may ask about all namespaces (cluster-wide; 01)"),
)


def prerequisites(conn: Connection) -> list[tuple[str, str, bool | None]]:
    """(what, what was found, ok) for each thing the tutorial needs from the cluster.

    ``ok`` is None where nothing is wrong but nothing could be checked either: an optional cluster-wide
    right you lack (the cells that use it say so and go on), or a check that needs one."""
    found: list[tuple[str, str, bool | None]] = []
    minor = _minor(conn.server_version)
    found.append(("Kubernetes 1.28 or newer", conn.server_version, minor is None or minor >= 28))
    if not conn.storage_checked:
        found.append(("a default StorageClass", "not allowed to look (step 04 will tell)", None))
    elif conn.default_storage_class:
        found.append(("a default StorageClass",
                      f"{conn.default_storage_class} ({conn.volume_binding_mode})", True))
    else:
        found.append(("a default StorageClass", "none: the hub's PVC would stay Pending", False))
    for verb, resource, group in NEEDED_PERMISSIONS:
        allowed = can_i(conn, verb, resource, group=group)
        found.append((f"you may {verb} {resource}", "yes" if allowed else "no", allowed))
    try:
        nodes = kube(conn).get(NODES.path()).get("items", [])
        ready = sum(1 for n in nodes for c in (n.get("status") or {}).get("conditions") or []
                    if c.get("type") == "Ready" and c.get("status") == "True")
        found.append(("at least one Ready node", f"{ready}/{len(nodes)} Ready", ready > 0))
    except Forbidden:
        found.append(("at least one Ready node", "not allowed to list nodes (06 will tell)", None))
    for verb, resource, group, what in OPTIONAL_PERMISSIONS:
        if can_i(conn, verb, resource, group=group, namespace=""):
            found.append((what, "yes", True))
        else:
            found.append((what, "no (not needed: those cells say so)", None))
    return found


def prerequisites_table(found: list[tuple[str, str, bool | None]]) -> str:
    """The prerequisites as a table: OK is yes, NO (the workbook cannot work), or "-" (not needed)."""
    marks = {True: "yes", False: "NO", None: "-"}
    return table([(what, text, marks[ok]) for what, text, ok in found], ["CHECK", "FOUND", "OK"])


def _minor(version: str) -> int | None:
    parts = version.lstrip("v").split(".")
    try:
        return int(parts[1].rstrip("+")) if len(parts) > 1 and parts[0] == "1" else None
    except ValueError:
        return None


def explain_cluster(conn: Connection) -> str:
    """What is real and what is not on this cluster, in a few lines."""
    if simulated(conn):
        return (
            "This is the local simulated cluster. Real: the API server, etcd, the scheduler and the\n"
            "controllers, RBAC, ServiceAccount tokens, Service IPs, EndpointSlices, volume provisioning.\n"
            "Simulated: the nodes. A pod scheduled there is marked Running and Ready with an IP, but no\n"
            "image is pulled and no container runs: there are no logs, and nothing answers on a pod IP.\n"
            "The notebooks say so wherever it matters (06: the pods; 07: the login)."
        )
    return (
        f"This is {_kind(conn)}: pods run for real, so images are pulled (the hub image is about\n"
        "300 MB; the user image more) and the first start of each can take minutes."
    )


# --- showing files and commands ----------------------------------------------------------------


def _display(markdown: str, plain: str) -> None:
    from IPython.display import display

    display({"text/markdown": markdown, "text/plain": plain}, raw=True)


def show_manifest(*names: str) -> None:
    """Show manifest files as they are in manifests/ (syntax-highlighted in JupyterLab)."""
    for name in names:
        text = manifests.manifest_path(name).read_text().rstrip("\n")
        _display(f"**`manifests/{name}`**\n\n```yaml\n{text}\n```", f"# manifests/{name}\n{text}")


def show_kubectl(*commands: str) -> None:
    """Show the command(s) a learner would type in a terminal, instead of running this cell.

    Commands that name files in manifests/ get a first line saying where to type them: the folder
    holding manifests/ (the working copy `jhtutorial lab` opens, where its terminals start)."""
    from .steps import MANIFEST_FOLDER, WHERE_TO_TYPE

    where = [f"# {WHERE_TO_TYPE}"] if any(f"{MANIFEST_FOLDER}/" in command for command in commands) else []
    text = "\n".join([*where, *(f"$ {command}" for command in commands)])
    _display(f"```console\n{text}\n```", text)


def show_step_command(step: str | int, conn: Connection) -> None:
    show_kubectl(get_step(step).kubectl(conn.namespace))


# --- tables -------------------------------------------------------------------------------------


def table(rows: Iterable[Iterable[Any]], headers: Iterable[str]) -> str:
    """Columns like kubectl prints them: left-aligned, three spaces apart."""
    rows = [[str(cell) for cell in row] for row in rows]
    headers = [str(h) for h in headers]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines)


def kube(conn: Connection) -> KubeApi:
    return KubeApi(conn.api)


# --- reads that need cluster-wide rights ----------------------------------------------------------
#
# Nodes, StorageClasses and PersistentVolumes belong to no namespace: listing them needs a ClusterRole,
# which a learner limited to their own namespace does not have. The cells that show them use these
# helpers, which say so in one line instead of stopping the notebook.

CLUSTER_WIDE_NAMES = {
    NODES: "nodes (`kubectl get nodes`)",
    STORAGE_CLASSES: "StorageClasses (`kubectl get storageclass`)",
    PVS: "PersistentVolumes (`kubectl get pv`)",
}


def not_allowed(needs: str) -> str:
    """The line a cell prints instead of what a learner's credentials may not read."""
    return f"not allowed to look: needs {needs}; ask your instructor; the rest of the step does not need it"


def cluster_items(conn: Connection, resource: Resource, *, quiet: bool = False) -> list[Obj] | None:
    """Every object of a cluster-scoped kind (nodes, StorageClasses, PersistentVolumes), sorted by name,
    or None when your credentials may not list them (and, unless ``quiet``, a line saying so)."""
    try:
        return items(conn, resource)
    except Forbidden:
        if not quiet:
            print(not_allowed(f"cluster-wide read of {CLUSTER_WIDE_NAMES.get(resource, resource.plural)}"))
        return None


def claimed_volumes(conn: Connection, *, quiet: bool = False) -> list[Obj] | None:
    """The PersistentVolumes bound to claims of this namespace (PVs belong to no namespace: their claimRef
    says whose they are), or None when you may not list PersistentVolumes."""
    volumes = cluster_items(conn, PVS, quiet=quiet)
    if volumes is None:
        return None
    return [pv for pv in volumes if ((pv.get("spec") or {}).get("claimRef") or {}).get("namespace") == conn.namespace]


def items(conn: Connection, resource: Resource, *, selector: str | None = None,
          namespace: str | None = None) -> list[Obj]:
    """The objects of one kind in the namespace, sorted by name (``kubectl get KIND -l SELECTOR``)."""
    where = None if not resource.namespaced else (namespace or conn.namespace)
    found = kube(conn).get(resource.path(where), labelSelector=selector).get("items", [])
    return sorted(found, key=lambda obj: obj["metadata"]["name"])


def memory(value: Any) -> str:
    """A memory quantity as kubectl users write it: ``1073741824`` (bytes, as KubeSpawner sets limits) is
    ``1Gi``, ``268435456`` is ``256Mi``; a quantity with a unit already stays as it is."""
    text = str(value).strip()
    if not text.isdigit():
        return text
    number = int(text)
    for unit, size in (("Ti", 1 << 40), ("Gi", 1 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)):
        if number >= size and number % size == 0:
            return f"{number // size}{unit}"
    for unit, size in (("Gi", 1 << 30), ("Mi", 1 << 20)):
        if number >= size:
            return f"{number / size:.1f}{unit}"
    return text


def _name(obj: Obj) -> str:
    return obj["metadata"]["name"]


def _ports(service: Obj) -> str:
    out = []
    for port in (service.get("spec") or {}).get("ports") or []:
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        out.append(f"{port['port']}{node}/{port.get('protocol', 'TCP')}")
    return ",".join(out)


def _ready(pod: Obj) -> str:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(pod: Obj) -> str:
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        reason = ((status.get("state") or {}).get("waiting") or {}).get("reason")
        if reason:
            return reason
    return (pod.get("status") or {}).get("phase", "Pending")


def _default_class(storage_class: Obj) -> str:
    annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
    default = annotations.get("storageclass.kubernetes.io/is-default-class") == "true"
    return _name(storage_class) + (" (default)" if default else "")


def _endpoint_text(slices: list[Obj]) -> str:
    out = []
    for endpoint_slice in slices:
        ports = [p.get("port") for p in endpoint_slice.get("ports") or []]
        for endpoint in endpoint_slice.get("endpoints") or []:
            if (endpoint.get("conditions") or {}).get("ready", True) is False:
                continue
            out.extend(f"{address}:{port}" for address in endpoint.get("addresses") or [] for port in ports)
    return ",".join(sorted(out)) or "<none>"


# kind -> (resource, headers, row function); the columns of `kubectl get`, minus AGE
_COLUMNS: dict[str, tuple[Resource, tuple[str, ...], Callable[[Obj], tuple[Any, ...]]]] = {
    "serviceaccounts": (SERVICE_ACCOUNTS, ("NAME", "AUTOMOUNT TOKEN"),
                        lambda o: (_name(o), str(o.get("automountServiceAccountToken", True)).lower())),
    "roles": (ROLES, ("NAME", "RULES"), lambda o: (_name(o), len(o.get("rules") or []))),
    "rolebindings": (ROLE_BINDINGS, ("NAME", "ROLE", "SERVICEACCOUNTS"),
                     lambda o: (_name(o), f"{o['roleRef']['kind']}/{o['roleRef']['name']}",
                                ",".join(s["name"] for s in o.get("subjects") or []))),
    "configmaps": (CONFIGMAPS, ("NAME", "DATA", "KEYS"),
                   lambda o: (_name(o), len(o.get("data") or {}), ",".join(sorted(o.get("data") or {})))),
    "secrets": (SECRETS, ("NAME", "TYPE", "DATA"),
                lambda o: (_name(o), o.get("type", ""), len(o.get("data") or {}))),
    "storageclasses": (STORAGE_CLASSES, ("NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE"),
                       lambda o: (_default_class(o), o.get("provisioner"), o.get("reclaimPolicy", "Delete"),
                                  o.get("volumeBindingMode", "Immediate"))),
    "pvc": (PVCS, ("NAME", "STATUS", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUME"),
            lambda o: (_name(o), (o.get("status") or {}).get("phase", ""),
                       ((o.get("status") or {}).get("capacity") or {}).get("storage", ""),
                       ",".join(o["spec"].get("accessModes") or []), o["spec"].get("storageClassName", ""),
                       o["spec"].get("volumeName", ""))),
    "pv": (PVS, ("NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM"),
           lambda o: (_name(o), (o["spec"].get("capacity") or {}).get("storage"),
                      ",".join(o["spec"].get("accessModes") or []), o["spec"].get("persistentVolumeReclaimPolicy"),
                      (o.get("status") or {}).get("phase"),
                      "{namespace}/{name}".format(**(o["spec"].get("claimRef") or {"namespace": "", "name": ""})))),
    "services": (SERVICES, ("NAME", "TYPE", "PORT(S)", "CLUSTER-IP"),
                 lambda o: (_name(o), o["spec"].get("type"), _ports(o), o["spec"].get("clusterIP"))),
    "deployments": (DEPLOYMENTS, ("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "STRATEGY"),
                    lambda o: (_name(o), f"{(o.get('status') or {}).get('readyReplicas', 0)}/{o['spec'].get('replicas', 1)}",
                               (o.get("status") or {}).get("updatedReplicas", 0),
                               (o.get("status") or {}).get("availableReplicas", 0),
                               (o["spec"].get("strategy") or {}).get("type"))),
    "replicasets": (REPLICASETS, ("NAME", "DESIRED", "CURRENT", "READY"),
                    lambda o: (_name(o), o["spec"].get("replicas", 0), (o.get("status") or {}).get("replicas", 0),
                               (o.get("status") or {}).get("readyReplicas", 0))),
    "pods": (PODS, ("NAME", "READY", "STATUS", "RESTARTS", "IP"),
             lambda o: (_name(o), _ready(o), _pod_status(o),
                        sum(s.get("restartCount", 0) for s in (o.get("status") or {}).get("containerStatuses") or []),
                        (o.get("status") or {}).get("podIP", "<none>"))),
}


def get(conn: Connection, kind: str, *, selector: str | None = PART_OF, objects: list[Obj] | None = None) -> str:
    """A table like ``kubectl get KIND -l SELECTOR`` (without AGE), or "No resources found."

    Kinds: serviceaccounts, roles, rolebindings, configmaps, secrets, storageclasses, pvc, pv,
    services, deployments, replicasets, pods, endpoints.
    """
    if kind == "endpoints":
        services = objects if objects is not None else items(conn, SERVICES, selector=selector)
        rows = [(_name(s), _endpoint_text(items(conn, ENDPOINT_SLICES,
                                                selector=f"kubernetes.io/service-name={_name(s)}")))
                for s in services]
        return table(rows, ("SERVICE", "ENDPOINTS")) if rows else "No resources found."
    resource, headers, row = _COLUMNS[kind]
    if objects is None and not resource.namespaced:
        try:
            objects = items(conn, resource, selector=selector)
        except Forbidden:
            return not_allowed(f"cluster-wide read of {CLUSTER_WIDE_NAMES.get(resource, resource.plural)}")
    found = objects if objects is not None else items(conn, resource, selector=selector)
    if not found:
        return f"No resources found in {conn.namespace} namespace." if resource.namespaced else "No resources found."
    return table([row(obj) for obj in found], headers)


def events(conn: Connection, kind: str, name: str) -> str:
    """The events about one object, oldest first, without timestamps (``kubectl describe`` shows them)."""
    found = [e for e in items(conn, EVENTS)
             if (e.get("involvedObject") or {}).get("kind") == kind and e["involvedObject"].get("name") == name]
    found.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or e["metadata"]["creationTimestamp"])
    rows = [(e.get("type"), e.get("reason"), str(e.get("message", "")).strip()) for e in found]
    return table(rows, ("TYPE", "REASON", "MESSAGE")) if rows else "No events."


# --- permissions --------------------------------------------------------------------------------


def can_i(conn: Connection, verb: str, resource: str, *, service_account: str | None = None,
          group: str = "", namespace: str | None = None) -> bool | None:
    """Ask the API server's authorizer, like ``kubectl auth can-i VERB RESOURCE [--as=system:serviceaccount:NS:SA]``.

    ``namespace=""`` asks about all namespaces (a cluster-wide permission).
    Without ``service_account`` it asks about you (the kubeconfig's user): anyone may ask that.
    A question about an account in all namespaces is a SubjectAccessReview, a cluster-wide right
    that a learner limited to a namespace lacks: then the answer is None (not allowed to ask).
    """
    where = conn.namespace if namespace is None else namespace
    attributes = {"verb": verb, "resource": resource, "group": group, "namespace": where}
    spec: Obj = {"resourceAttributes": attributes}
    if service_account is None:
        kind, path = "SelfSubjectAccessReview", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    else:
        ns = conn.namespace
        spec.update(user=f"system:serviceaccount:{ns}:{service_account}",
                    groups=["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"])
        # a question about one namespace is a LocalSubjectAccessReview there: a namespace admin may ask it
        kind, path = (("LocalSubjectAccessReview",
                       f"/apis/authorization.k8s.io/v1/namespaces/{where}/localsubjectaccessreviews") if where
                      else ("SubjectAccessReview", "/apis/authorization.k8s.io/v1/subjectaccessreviews"))
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec,
            "metadata": {"namespace": where} if kind.startswith("Local") else {}}
    try:
        answer = kube(conn).call("POST", path, body=body)
    except Forbidden:
        if kind != "SubjectAccessReview":
            raise
        return None
    return bool((answer.get("status") or {}).get("allowed"))


def yes_no(answer: bool | None) -> str:
    """A can_i answer as a table cell: yes, no, or ? (not allowed to ask)."""
    return "?" if answer is None else ("yes" if answer else "no")


def service_account_client(conn: Connection, name: str, *, seconds: int = 600) -> KubeApi:
    """A client that acts as ServiceAccount ``name``, with a short-lived token from the TokenRequest API
    (``kubectl create token NAME --duration 10m``). The token stays in memory and is never shown."""
    import copy

    from kubernetes.client import ApiClient

    token = request_token(kube(conn), conn.namespace, name, seconds=seconds)
    configuration = copy.copy(conn.api.configuration)
    configuration.api_key = {"authorization": "Bearer " + token.value}
    configuration.api_key_prefix = {}
    # nothing of the kubeconfig's user may come along: not its client certificate, and not the hook that
    # refreshes its token (exec plugins, cloud logins) and would put that token back in place of ours
    configuration.cert_file = configuration.key_file = None
    configuration.refresh_api_key_hook = None
    configuration.username = configuration.password = None
    return KubeApi(ApiClient(configuration))


# --- manifests, read as data --------------------------------------------------------------------


def manifest_objects(*names: str) -> list[Obj]:
    return [obj for name in names for obj in manifests.load_manifest(name)]


def mounted_files(deployments: list[Obj], volume_kind: str) -> list[tuple[str, str, str, str, str]]:
    """Where each key of each ConfigMap (``volume_kind="configMap"``) or Secret lands in which container:
    (source, key, deployment/container, path, follows edits)."""
    rows = []
    for deployment in deployments:
        spec = deployment["spec"]["template"]["spec"]
        volumes = {v["name"]: v[volume_kind] for v in spec.get("volumes") or [] if volume_kind in v}
        for container in spec.get("containers") or []:
            for mount in container.get("volumeMounts") or []:
                source = volumes.get(mount["name"])
                if source is None:
                    continue
                name = source.get("name") or source.get("secretName")
                where = f"{_name(deployment)}/{container['name']}"
                if mount.get("subPath"):
                    rows.append((name, mount["subPath"], where, mount["mountPath"], "no (subPath)"))
                else:
                    keys = _keys_of(volume_kind, name)
                    rows.extend((name, key, where, f"{mount['mountPath'].rstrip('/')}/{key}", "yes (folder)")
                                for key in keys)
    return rows


def _keys_of(volume_kind: str, name: str) -> list[str]:
    kind = {"configMap": "ConfigMap", "secret": "Secret"}[volume_kind]
    for obj in manifest_objects(*manifests.MANIFEST_FILES):
        if obj["kind"] == kind and _name(obj) == name:
            return sorted({**(obj.get("data") or {}), **(obj.get("stringData") or {})})
    return ["(all keys)"]


def secret_env(deployments: list[Obj]) -> list[tuple[str, str, str, str]]:
    """Every environment variable filled from a Secret: (deployment/container, variable, secret, key)."""
    rows = []
    for deployment in deployments:
        for container in deployment["spec"]["template"]["spec"].get("containers") or []:
            for env in container.get("env") or []:
                ref = (env.get("valueFrom") or {}).get("secretKeyRef")
                if ref:
                    rows.append((f"{_name(deployment)}/{container['name']}", env["name"], ref["name"], ref["key"]))
    return rows


def security_settings(pod_spec: Obj) -> str:
    """What each container of a pod may do, as a table: the non-root and least-privilege settings."""
    pod_context = pod_spec.get("securityContext") or {}
    rows = []
    for container in pod_spec.get("containers") or []:
        context = container.get("securityContext") or {}
        rows.append((
            container["name"],
            context.get("runAsUser", pod_context.get("runAsUser", "(image)")),
            str(context.get("runAsNonRoot", pod_context.get("runAsNonRoot", False))).lower(),
            str(context.get("allowPrivilegeEscalation", True)).lower(),
            ",".join((context.get("capabilities") or {}).get("drop") or []) or "-",
            str(context.get("readOnlyRootFilesystem", False)).lower(),
            ((context.get("seccompProfile") or pod_context.get("seccompProfile")) or {}).get("type", "-"),
        ))
    return table(rows, ("CONTAINER", "USER", "NON-ROOT", "PRIV-ESCALATION", "CAPS DROPPED", "READ-ONLY ROOT",
                        "SECCOMP"))


# --- checks -------------------------------------------------------------------------------------


def check(condition: Any, what: str, detail: str = "") -> None:
    """One line of a check cell: prints ``ok  what``, or raises AssertionError saying what is wrong."""
    if not condition:
        raise AssertionError(f"{what}: NO" + (f" ({detail})" if detail else ""))
    print(f"ok  {what}")


def skip(what: str, why: str) -> None:
    """One line of a check cell for something not checked, and why: ``--  what: why``."""
    print(f"--  {what}: {why}")


def check_step(conn: Connection, step: str | int | Step) -> None:
    """Assert that a step is done, with the step's own per-object lines as the explanation."""
    status = get_step(step).check(conn)
    print(status)
    if not status.done:
        raise AssertionError(f"step {status.step.key} is not done:\n{status}")


# --- watching a pod being replaced ----------------------------------------------------------------


@dataclass
class Replacement:
    """What a watch saw while pods were replaced: milestones in the order they happened."""

    old: list[str]
    new: list[str]
    milestones: list[tuple[str, str]]  # (what, pod name): terminating, deleted, created, ready

    def index(self, what: str, name: str) -> int:
        return self.milestones.index((what, name))

    @property
    def new_created_after_old_gone(self) -> bool:
        """What the Recreate strategy promises: every new pod was created after every old one was deleted."""
        gone = max(self.index("deleted", name) for name in self.old)
        return all(self.index("created", name) > gone for name in self.new)

    def __str__(self) -> str:
        return "\n".join(f"{number}. pod {name} {what}"
                         for number, (what, name) in enumerate(self.milestones, 1))


def watch_replacement(conn: Connection, selector: str, action: Callable[[], Any], *,
                      timeout: float = 180) -> Replacement:
    """Run ``action`` (which deletes or restarts pods) while watching the pods of ``selector``;
    return once every old pod is gone and as many new pods are Ready."""
    import time

    from .watching import Reflector

    reflector = Reflector(conn.api, PODS, conn.namespace, label_selector=selector)
    old: list[str] = []
    milestones: list[tuple[str, str]] = []
    started = time.monotonic()

    def note(what: str, name: str) -> None:
        if (what, name) not in milestones:
            milestones.append((what, name))

    for event in reflector.events(timeout=timeout):
        if event.type == "SYNCED" and not old:
            old = sorted(_name(pod) for pod in reflector.cache.values())
            if not old:
                raise TutorialError(f"no pod matches {selector} in namespace {conn.namespace}",
                                    fix="run the step that creates it first (notebook 06)")
            action()
            continue
        if not old or event.type not in ("ADDED", "MODIFIED", "DELETED"):
            continue
        pod, name = event.object, _name(event.object)
        if event.type == "DELETED":
            note("deleted", name)
        else:
            if name not in old:
                note("created", name)
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                note("terminating", name)
            elif name not in old and _ready(pod).split("/")[0] == _ready(pod).split("/")[1] != "0":
                note("ready", name)
        new = [n for what, n in milestones if what == "created"]
        ready = [n for what, n in milestones if what == "ready"]
        if all(("deleted", n) in milestones for n in old) and len(ready) >= len(old):
            return Replacement(old, new, milestones)
    raise TutorialError(
        f"after {time.monotonic() - started:.0f} s the pods of {selector} were not replaced; "
        "seen so far:\n" + str(Replacement(old, [], milestones)),
        fix=f"`kubectl get pods -l {selector} -n {conn.namespace}` and `kubectl describe` the new pod",
    )


def delete_pods(conn: Connection, names: Iterable[str]) -> None:
    """``kubectl delete pod NAME ...`` (without waiting)."""
    for name in names:
        kube(conn).call("DELETE", PODS.path(conn.namespace, name))


def rollout_restart(conn: Connection, deployment: str) -> None:
    """``kubectl rollout restart deployment/NAME``: a new annotation in the pod template makes a new ReplicaSet."""
    from datetime import datetime, timezone

    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch = {"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": stamp}}}}}
    kube(conn).call("PATCH", DEPLOYMENTS.path(conn.namespace, deployment), body=patch,
                    content_type="application/strategic-merge-patch+json")
