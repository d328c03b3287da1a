"""Tables like kubectl prints them: ``kubectl get KIND``, the events of one object, quantities.

    >>> print(nb.get(conn, "services"))                     # doctest: +SKIP   (kubectl get services)
    NAME           TYPE        CLUSTER-IP      EXTERNAL-IP   PORT(S)
    hub            ClusterIP   10.96.56.202    <none>        8081/TCP
    proxy-public   NodePort    10.96.177.124   <none>        80:31175/TCP
    >>> print(nb.table([("hub", "ClusterIP")], ["NAME", "TYPE"]))
    NAME   TYPE
    hub    ClusterIP
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from .. import printers
from ..connect import Connection
from ..errors import Forbidden
from ..kubeapi import EVENTS, KNOWN_RESOURCES, NODES
from ..objects import name_of, node_is_ready, oldest_first
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


def get(conn: Connection, kind: str, *, selector: str | None = PART_OF, objects: list[Obj] | None = None,
        wide: bool = False, columns: dict[str, str] | None = None) -> str:
    """What ``kubectl get KIND -n NS -l SELECTOR`` prints, without the columns that hold a moment in time
    (AGE, CREATED AT, a restart's "(5m ago)"); or kubectl's "No resources found ..." line.

    ``wide=True``: the columns ``-o wide`` adds (pods: IP, NODE; services: SELECTOR; rolebindings: USERS,
    GROUPS, SERVICEACCOUNTS). ``columns={"NAME": ".metadata.name", ...}``: ``-o custom-columns=NAME:PATH,...``
    instead, for what kubectl has no column for. ``objects``: these objects instead of a list request.
    Kinds: pods, services, endpointslices, deployments, replicasets, pvc, pv, storageclasses, configmaps,
    secrets, serviceaccounts, roles, rolebindings (and kubectl's short names: svc, sa, cm, ...).

        >>> print(nb.get(conn, "services"))                  # doctest: +SKIP
        NAME           TYPE        CLUSTER-IP      EXTERNAL-IP   PORT(S)
        hub            ClusterIP   10.96.94.94     <none>        8081/TCP
        proxy-public   NodePort    10.96.102.82    <none>        80:32045/TCP
        >>> print(nb.get(conn, "sa", columns={"NAME": ".metadata.name",
        ...                                   "AUTOMOUNT": ".automountServiceAccountToken"}))   # doctest: +SKIP
        NAME    AUTOMOUNT
        hub     true
        proxy   false
    """
    resource = printers.columns(kind).resource
    if objects is None and not resource.namespaced:
        try:
            objects = items(conn, resource, selector=selector)
        except Forbidden:
            return cluster_wide_refusal(resource)
    found = objects if objects is not None else items(conn, resource, selector=selector)
    if not found:
        return f"No resources found in {conn.namespace} namespace." if resource.namespaced else "No resources found"
    if columns is not None:
        return table([printers.custom_row(obj, columns) for obj in found], list(columns))
    headers, rows = printers.table_rows(kind, found, wide=wide)
    return table(rows, headers)


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
