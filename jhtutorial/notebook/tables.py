"""Tables like kubectl prints them: ``kubectl get KIND``, the events of one object, quantities.

    >>> print(nb.get(conn, "services"))                     # doctest: +SKIP   (kubectl get services)
    NAME           TYPE        PORT(S)        CLUSTER-IP
    hub            ClusterIP   8081/TCP       10.96.56.202
    proxy-public   NodePort    80:31175/TCP   10.96.177.124
    >>> print(nb.table([("hub", "ClusterIP")], ["NAME", "TYPE"]))
    NAME   TYPE
    hub    ClusterIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from ..connect import Connection
from ..errors import Forbidden
from ..kubeapi import (
    KNOWN_RESOURCES,
    NODES,
    CONFIGMAPS,
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    EVENTS,
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
    Resource,
)
from ..objects import (
    node_is_ready,
    endpoint_is_ready,
    is_default_storage_class,
    name_of,
    oldest_first,
    pod_restarts,
    pod_status,
    ready_containers,
)
from .reads import PART_OF, cluster_items, cluster_wide_refusal, items, kube

Obj = dict[str, Any]


def table(rows: Iterable[Iterable[Any]], headers: Iterable[str]) -> str:
    """Columns like kubectl prints them: left-aligned, three spaces apart."""
    rows = [[str(cell) for cell in row] for row in rows]
    headers = [str(h) for h in headers]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(headers)]
    lines = ["   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in [headers, *rows]]
    return "\n".join(lines)


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


def _ports(service: Obj) -> str:
    out = []
    for port in (service.get("spec") or {}).get("ports") or []:
        node = f":{port['nodePort']}" if port.get("nodePort") else ""
        out.append(f"{port['port']}{node}/{port.get('protocol', 'TCP')}")
    return ",".join(out)


def _storage_class_name(storage_class: Obj) -> str:
    return name_of(storage_class) + (" (default)" if is_default_storage_class(storage_class) else "")


def _endpoint_text(slices: list[Obj]) -> str:
    out = []
    for endpoint_slice in slices:
        ports = [p.get("port") for p in endpoint_slice.get("ports") or []]
        for endpoint in endpoint_slice.get("endpoints") or []:
            if not endpoint_is_ready(endpoint):
                continue
            out.extend(f"{address}:{port}" for address in endpoint.get("addresses") or [] for port in ports)
    return ",".join(sorted(out)) or "<none>"


# kind -> (resource, headers, row function); the columns of `kubectl get`, minus AGE
_COLUMNS: dict[str, tuple[Resource, tuple[str, ...], Callable[[Obj], tuple[Any, ...]]]] = {
    "serviceaccounts": (SERVICE_ACCOUNTS, ("NAME", "AUTOMOUNT TOKEN"),
                        lambda o: (name_of(o), str(o.get("automountServiceAccountToken", True)).lower())),
    "roles": (ROLES, ("NAME", "RULES"), lambda o: (name_of(o), len(o.get("rules") or []))),
    "rolebindings": (ROLE_BINDINGS, ("NAME", "ROLE", "SERVICEACCOUNTS"),
                     lambda o: (name_of(o), f"{o['roleRef']['kind']}/{o['roleRef']['name']}",
                                ",".join(s["name"] for s in o.get("subjects") or []))),
    "configmaps": (CONFIGMAPS, ("NAME", "DATA", "KEYS"),
                   lambda o: (name_of(o), len(o.get("data") or {}), ",".join(sorted(o.get("data") or {})))),
    "secrets": (SECRETS, ("NAME", "TYPE", "DATA"),
                lambda o: (name_of(o), o.get("type", ""), len(o.get("data") or {}))),
    "storageclasses": (STORAGE_CLASSES, ("NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE"),
                       lambda o: (_storage_class_name(o), o.get("provisioner"), o.get("reclaimPolicy", "Delete"),
                                  o.get("volumeBindingMode", "Immediate"))),
    "pvc": (PVCS, ("NAME", "STATUS", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "VOLUME"),
            lambda o: (name_of(o), (o.get("status") or {}).get("phase", ""),
                       ((o.get("status") or {}).get("capacity") or {}).get("storage", ""),
                       ",".join(o["spec"].get("accessModes") or []), o["spec"].get("storageClassName", ""),
                       o["spec"].get("volumeName", ""))),
    "pv": (PVS, ("NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM"),
           lambda o: (name_of(o), (o["spec"].get("capacity") or {}).get("storage"),
                      ",".join(o["spec"].get("accessModes") or []), o["spec"].get("persistentVolumeReclaimPolicy"),
                      (o.get("status") or {}).get("phase"),
                      "{namespace}/{name}".format(**(o["spec"].get("claimRef") or {"namespace": "", "name": ""})))),
    "services": (SERVICES, ("NAME", "TYPE", "PORT(S)", "CLUSTER-IP"),
                 lambda o: (name_of(o), o["spec"].get("type"), _ports(o), o["spec"].get("clusterIP"))),
    "deployments": (DEPLOYMENTS, ("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "STRATEGY"),
                    lambda o: (name_of(o),
                               f"{(o.get('status') or {}).get('readyReplicas', 0)}/{o['spec'].get('replicas', 1)}",
                               (o.get("status") or {}).get("updatedReplicas", 0),
                               (o.get("status") or {}).get("availableReplicas", 0),
                               (o["spec"].get("strategy") or {}).get("type"))),
    "replicasets": (REPLICASETS, ("NAME", "DESIRED", "CURRENT", "READY"),
                    lambda o: (name_of(o), o["spec"].get("replicas", 0), (o.get("status") or {}).get("replicas", 0),
                               (o.get("status") or {}).get("readyReplicas", 0))),
    "pods": (PODS, ("NAME", "READY", "STATUS", "RESTARTS", "IP"),
             lambda o: (name_of(o), ready_containers(o), pod_status(o), pod_restarts(o),
                        (o.get("status") or {}).get("podIP", "<none>"))),
}


def get(conn: Connection, kind: str, *, selector: str | None = PART_OF, objects: list[Obj] | None = None) -> str:
    """A table like ``kubectl get KIND -l SELECTOR`` (without AGE), or "No resources found."

    Kinds: serviceaccounts, roles, rolebindings, configmaps, secrets, storageclasses, pvc, pv,
    services, deployments, replicasets, pods, endpoints.
    """
    if kind == "endpoints":
        services = objects if objects is not None else items(conn, SERVICES, selector=selector)
        rows = [(name_of(s), _endpoint_text(items(conn, ENDPOINT_SLICES,
                                                  selector=f"kubernetes.io/service-name={name_of(s)}")))
                for s in services]
        return table(rows, ("SERVICE", "ENDPOINTS")) if rows else "No resources found."
    resource, headers, row = _COLUMNS[kind]
    if objects is None and not resource.namespaced:
        try:
            objects = items(conn, resource, selector=selector)
        except Forbidden:
            return cluster_wide_refusal(resource)
    found = objects if objects is not None else items(conn, resource, selector=selector)
    if not found:
        return f"No resources found in {conn.namespace} namespace." if resource.namespaced else "No resources found."
    return table([row(obj) for obj in found], headers)


def events(conn: Connection, kind: str, name: str, *, wait: float = 0) -> str:
    """The events about one object, oldest first, without timestamps (``kubectl describe`` shows them).

    Only the events of the object that exists now, as ``kubectl describe`` does: an object deleted and made
    again under the same name keeps its old events for an hour. ``wait``: seconds to wait for a first event
    (a controller writes it a moment after the object is made)."""
    resource = next((r for r in KNOWN_RESOURCES.values() if r.kind == kind), None)
    live = kube(conn).get_or_none(resource.path(conn.namespace, name)) if resource else None
    uid = (live or {}).get("metadata", {}).get("uid")
    deadline = time.monotonic() + wait
    while True:
        found = oldest_first(e for e in items(conn, EVENTS)
                             if (e.get("involvedObject") or {}).get("kind") == kind
                             and e["involvedObject"].get("name") == name
                             and (uid is None or e["involvedObject"].get("uid") in (uid, None)))
        if found or time.monotonic() >= deadline:
            break
        time.sleep(0.5)  # events cannot be awaited more cheaply than by asking again: a watch costs more here
    rows = [(e.get("type"), e.get("reason"), str(e.get("message", "")).strip()) for e in found]
    return table(rows, ("TYPE", "REASON", "MESSAGE")) if rows else "No events."


def nodes_table(conn: Connection) -> str | None:
    """``kubectl get nodes`` with a SIMULATED column (kwok's annotation ``kwok.x-k8s.io/node: fake``), or None
    (after a line saying so) when you may not list nodes."""
    nodes = cluster_items(conn, NODES)
    if nodes is None:
        return None
    rows = [(name_of(node), "Ready" if node_is_ready(node) else "NotReady",
             "yes (annotation kwok.x-k8s.io/node: fake)"
             if (node["metadata"].get("annotations") or {}).get("kwok.x-k8s.io/node") == "fake" else "no")
            for node in nodes]
    return table(rows, ["NAME", "STATUS", "SIMULATED"])
