"""Remove everything the tutorial put in the namespace, check it is gone, and say what went.

    >>> print(clean_up())                     # doctest: +SKIP
    removed 17 objects from namespace jhtutorial in 2.3 s; nothing of the tutorial is left
      Deployment/hub, Deployment/proxy
      Pod/jupyter-admin (created by the hub), PersistentVolumeClaim/claim-admin (created by the hub)
      ...
      the same by hand (in the folder holding manifests/): kubectl delete -n jhtutorial deployment hub proxy ... && ...
    >>> print(clean_up())                     # doctest: +SKIP
    nothing to remove in namespace jhtutorial: none of the tutorial's objects is there

What goes, in this order, and why:

1. the Deployments (hub and proxy), with foreground propagation: their
   ReplicaSets and pods go first, so no hub is left that could start a new user
   pod while the rest is deleted;
2. what the hub created, which no manifest names: the user pods and their
   home PVCs. They are found by KubeSpawner's labels
   (``app.kubernetes.io/managed-by=kubespawner``, ``component=singleuser-server``
   / ``singleuser-storage``) and, for anything relabelled, by name
   (``jupyter-*`` pods, ``claim-*`` PVCs);
3. every other object of the manifests, the last step first (Services, the
   hub's PVC, the Secret, the ConfigMaps, RBAC).

Then it waits, on a watch, until each one is really gone (a PVC stays until no
pod uses it; a pod until its grace period ends). Running it again removes
nothing and says so. The namespace itself stays unless ``delete_namespace=True``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .connect import Connection, current_connection
from .errors import KubeApiError, WaitTimeout
from .kubeapi import NAMESPACES, PODS, PVCS, KubeApi, Resource
from .steps import STEPS, by_hand, cleanup_commands
from .waits import wait_deleted

Obj = dict[str, Any]
SPAWNER_SELECTORS = {
    PODS: ("app.kubernetes.io/managed-by=kubespawner", "component=singleuser-server"),
    PVCS: ("app.kubernetes.io/managed-by=kubespawner", "component=singleuser-storage"),
}
NAME_PREFIXES = {PODS: "jupyter-", PVCS: "claim-"}  # KubeSpawner's pod/pvc_name_template in hub-config


@dataclass
class CleanupResult:
    """What clean_up() removed and checked."""

    namespace: str
    removed: list[str] = field(default_factory=list)  # "Kind/name" of objects deleted by this run
    from_hub: list[str] = field(default_factory=list)  # the removed objects the hub made (user pods, PVCs)
    left: list[str] = field(default_factory=list)  # objects still there at the end (empty on success)
    namespace_deleted: bool = False
    seconds: float = 0.0
    kubectl: str = ""

    @property
    def nothing_to_do(self) -> bool:
        return not self.removed and not self.namespace_deleted

    def lines(self) -> list[str]:
        if self.nothing_to_do:
            out = [f"nothing to remove in namespace {self.namespace}: none of the tutorial's objects is there"]
        elif not self.removed:
            out = [f"none of the tutorial's objects was left in namespace {self.namespace}; "
                   f"the namespace went in {self.seconds:.1f} s"]
        else:
            out = [f"removed {len(self.removed)} objects from namespace {self.namespace} in {self.seconds:.1f} s; "
                   + ("nothing of the tutorial is left" if not self.left else f"STILL THERE: {', '.join(self.left)}")]
            out += [f"  {name}{' (created by the hub)' if name in self.from_hub else ''}" for name in self.removed]
        if self.namespace_deleted:
            out.append(f"  namespace {self.namespace} deleted")
        out.append(f"  {by_hand(self.kubectl)}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines())


def clean_up(conn: Connection | None = None, *, delete_namespace: bool = False, timeout: float = 120.0) -> CleanupResult:
    """Delete the tutorial's objects and the user pods/PVCs the hub made; wait until they are gone.

    Args:
        conn: a connection (default: the last one made).
        delete_namespace: also delete the namespace (and wait for it to go).
        timeout: seconds to wait for everything to disappear.

    Raises WaitTimeout (naming what is still there and why, e.g. a finalizer),
    Forbidden when the credentials may not delete.

    Example::

        clean_up()                          # kubectl delete -f manifests/ && kubectl delete pod,pvc -l ...
        clean_up(delete_namespace=True)     # kubectl delete namespace NS
    """
    conn = conn or current_connection()
    kube = KubeApi(conn.api)
    started = time.monotonic()
    result = CleanupResult(namespace=conn.namespace, kubectl=_kubectl(conn.namespace, delete_namespace))
    deleted: list[tuple[Resource, str]] = []

    objects = [obj for step in reversed(STEPS) for obj in step.objects()]
    deployments = [o for o in objects if o["kind"] == "Deployment"]
    others = [o for o in objects if o["kind"] != "Deployment"]

    # 1. the hub and proxy first: a running hub must not start anything new meanwhile
    for obj in deployments:
        _delete_manifest_object(kube, conn, obj, result, deleted, propagation="Foreground")
    # 2. what the hub made
    for resource, name in _spawned(kube, conn.namespace):
        if _delete(kube, resource, conn.namespace, name, propagation="Background"):
            label = f"{resource.kind}/{name}"
            result.removed.append(label)
            result.from_hub.append(label)
            deleted.append((resource, name))
    # 3. the rest of the manifests, last step first
    for obj in others:
        _delete_manifest_object(kube, conn, obj, result, deleted, propagation="Background")

    deadline = started + timeout
    for resource, name in deleted:
        try:
            wait_deleted(resource, name, conn=conn, timeout=max(1.0, deadline - time.monotonic()))
        except WaitTimeout:
            result.left.append(f"{resource.kind}/{name}")
    if delete_namespace and kube.get_or_none(NAMESPACES.path(name=conn.namespace)) is not None:
        _delete(kube, NAMESPACES, None, conn.namespace, propagation="Background")
        result.namespace_deleted = True
        try:
            wait_deleted(NAMESPACES, conn.namespace, conn=conn, timeout=max(1.0, deadline - time.monotonic()))
        except WaitTimeout:
            result.left.append(f"Namespace/{conn.namespace}")
    result.seconds = time.monotonic() - started
    if result.left:
        raise WaitTimeout(
            f"clean-up of namespace {conn.namespace} did not finish in {timeout:.0f} s: "
            f"{', '.join(result.left)} still there",
            fix=f"`kubectl get {' '.join(result.left)} -n {conn.namespace} -o yaml` shows finalizers or a "
            "deletion grace period; run the clean-up again to wait longer",
            summary=str(result),
        )
    return result


def leftovers(conn: Connection | None = None) -> list[str]:
    """``Kind/name`` of every tutorial object, user pod and user PVC still in the namespace."""
    conn = conn or current_connection()
    kube = KubeApi(conn.api)
    found = []
    for step in STEPS:
        for obj in step.objects():
            resource = kube.resource_for(obj["apiVersion"], obj["kind"])
            if kube.get_or_none(resource.path(conn.namespace, obj["metadata"]["name"])) is not None:
                found.append(f"{obj['kind']}/{obj['metadata']['name']}")
    found += [f"{resource.kind}/{name}" for resource, name in _spawned(kube, conn.namespace)]
    return found


# --- helpers ----------------------------------------------------------------------------------


def _spawned(kube: KubeApi, namespace: str) -> list[tuple[Resource, str]]:
    """The user pods and PVCs the hub made: by KubeSpawner's labels, then by name."""
    found: dict[tuple[str, str], tuple[Resource, str]] = {}
    for resource, selectors in SPAWNER_SELECTORS.items():
        for selector in selectors:
            for item in kube.get(resource.path(namespace), labelSelector=selector).get("items", []):
                found[(resource.kind, item["metadata"]["name"])] = (resource, item["metadata"]["name"])
        prefix = NAME_PREFIXES[resource]
        for item in kube.get(resource.path(namespace)).get("items", []):
            if item["metadata"]["name"].startswith(prefix):
                found[(resource.kind, item["metadata"]["name"])] = (resource, item["metadata"]["name"])
    # pods before PVCs: a PVC in use is only removed once its pod is gone
    return sorted(found.values(), key=lambda pair: (pair[0].kind != "Pod", pair[1]))


def _delete_manifest_object(kube: KubeApi, conn: Connection, obj: Obj, result: CleanupResult,
                            deleted: list[tuple[Resource, str]], *, propagation: str) -> None:
    resource = kube.resource_for(obj["apiVersion"], obj["kind"])
    name = obj["metadata"]["name"]
    if _delete(kube, resource, conn.namespace, name, propagation=propagation):
        result.removed.append(f"{obj['kind']}/{name}")
        deleted.append((resource, name))


def _delete(kube: KubeApi, resource: Resource, namespace: str | None, name: str, *, propagation: str) -> bool:
    """DELETE one object; False if it was not there."""
    body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation}
    try:
        kube.call("DELETE", resource.path(namespace, name), body=body)
    except KubeApiError as err:
        if err.status == 404:
            return False
        raise
    return True


def _kubectl(namespace: str, delete_namespace: bool) -> str:
    return " && ".join(cleanup_commands(namespace, delete_namespace=delete_namespace))
