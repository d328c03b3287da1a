"""Reading the cluster from a notebook cell: the client, lists of objects, and cluster-wide reads.

    >>> nb.items(conn, SERVICES, selector=nb.PART_OF)      # doctest: +SKIP   (kubectl get services -l ...)
    >>> nb.cluster_items(conn, NODES)                      # doctest: +SKIP   (kubectl get nodes)
    not allowed to look: needs cluster-wide read of nodes (`kubectl get nodes`); ask your instructor; ...

Nodes, StorageClasses and PersistentVolumes belong to no namespace: listing them needs a ClusterRole,
which a learner limited to their own namespace does not have. The cells that show them use these
helpers, which say so in one line instead of stopping the notebook.
"""

from __future__ import annotations

from typing import Any

from ..connect import Connection
from ..errors import Forbidden
from ..kubeapi import CONFIGMAPS, NODES, PODS, PVS, STORAGE_CLASSES, KubeApi, Resource
from ..objects import name_of

Obj = dict[str, Any]
PART_OF = "app.kubernetes.io/part-of=jhtutorial"
COMPONENT = "app.kubernetes.io/component"  # hub, proxy, singleuser-server, ...

CLUSTER_WIDE_NAMES = {
    NODES: "nodes (`kubectl get nodes`)",
    STORAGE_CLASSES: "StorageClasses (`kubectl get storageclass`)",
    PVS: "PersistentVolumes (`kubectl get pv`)",
}


def kube(conn: Connection) -> KubeApi:
    """The connection's client, for the requests a cell makes itself (``kube(conn).get(PODS.path(ns))``)."""
    return KubeApi(conn.api)


def items(conn: Connection, resource: Resource, *, selector: str | None = None,
          namespace: str | None = None) -> list[Obj]:
    """The objects of one kind in the namespace, sorted by name (``kubectl get KIND -l SELECTOR``)."""
    where = None if not resource.namespaced else (namespace or conn.namespace)
    found = kube(conn).get(resource.path(where), labelSelector=selector).get("items", [])
    return sorted(found, key=name_of)


def not_allowed(needs: str) -> str:
    """The line a cell prints instead of what a learner's credentials may not read."""
    return f"not allowed to look: needs {needs}; ask your instructor; the rest of the step does not need it"


def cluster_wide_refusal(resource: Resource) -> str:
    """The not-allowed line for a cluster-scoped kind."""
    return not_allowed(f"cluster-wide read of {CLUSTER_WIDE_NAMES.get(resource, resource.plural)}")


def cluster_items(conn: Connection, resource: Resource, *, quiet: bool = False) -> list[Obj] | None:
    """Every object of a cluster-scoped kind (nodes, StorageClasses, PersistentVolumes), sorted by name,
    or None when your credentials may not list them (and, unless ``quiet``, a line saying so)."""
    try:
        return items(conn, resource)
    except Forbidden:
        if not quiet:
            print(cluster_wide_refusal(resource))
        return None


def claimed_volumes(conn: Connection, *, quiet: bool = False) -> list[Obj] | None:
    """The PersistentVolumes bound to claims of this namespace (PVs belong to no namespace: their claimRef
    says whose they are), or None when you may not list PersistentVolumes."""
    volumes = cluster_items(conn, PVS, quiet=quiet)
    if volumes is None:
        return None
    return [pv for pv in volumes if ((pv.get("spec") or {}).get("claimRef") or {}).get("namespace") == conn.namespace]


def pods(conn: Connection, component: str | None = None) -> list[str]:
    """Names of the workbook's pods (``kubectl get pods -l app.kubernetes.io/part-of=jhtutorial``), or of
    one component's (``hub``, ``proxy``)."""
    selector = PART_OF + (f",{COMPONENT}={component}" if component else "")
    return [name_of(pod) for pod in items(conn, PODS, selector=selector)]


def configmap_value(conn: Connection, name: str, key: str) -> str:
    """One key of a ConfigMap as the API server has it now
    (``kubectl get configmap NAME -o jsonpath='{.data.KEY}'``)."""
    return (kube(conn).get(CONFIGMAPS.path(conn.namespace, name)).get("data") or {})[key]
