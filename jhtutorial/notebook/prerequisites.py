"""What the tutorial needs from the cluster, checked from notebook 00, and what is real on it.

    >>> print(nb.prerequisites_table(nb.prerequisites(conn)))   # doctest: +SKIP
    CHECK                      FOUND                 OK
    Kubernetes 1.28 or newer   v1.36.3               yes
    a default StorageClass     standard (Immediate)  yes
    ...
"""

from __future__ import annotations

from ..connect import Connection
from ..errors import Forbidden
from ..kubeapi import NODES
from ..objects import node_is_ready
from .first_cell import cluster_name, simulated
from .permissions import can_i
from .reads import kube
from .tables import table

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
        ready = sum(1 for node in nodes if node_is_ready(node))
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
            "Simulated: the nodes. A pod scheduled there gets an IP, but no image is pulled and no container\n"
            "runs. In a namespace this notebook makes, the tutorial's pods run their real programs on this\n"
            "machine instead (nginx, configurable-http-proxy, JupyterHub, JupyterLab), each pod in a sandbox\n"
            "of its own with its pod IP (not a container: no image), so `kubectl logs`, `kubectl exec` and\n"
            "`kubectl port-forward` reach inside; any other pod is only marked Running and Ready. The notebooks\n"
            "say so wherever it matters (06: the pods; 07: the login)."
        )
    return (
        f"This is {cluster_name(conn)}: pods run for real, so images are pulled (the hub image is about\n"
        "300 MB; the user image more) and the first start of each can take minutes."
    )
