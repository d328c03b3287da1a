"""Remove everything the tutorial put in the namespace, check it is gone, and say what went.

    >>> print(clean_up(progress=print))       # doctest: +SKIP
    deleting the home volume of user admin: PersistentVolumeClaim/claim-admin
    removed 17 objects from namespace jhtutorial in 2.3 s; nothing of the tutorial is left
      Deployment/hub, Deployment/proxy
      Pod/jupyter-admin (created by the hub for user admin), PersistentVolumeClaim/claim-admin (...)
      ...
      the same by hand: kubectl delete -n jhtutorial deployments -l app.kubernetes.io/part-of=jhtutorial ...
    >>> print(clean_up())                     # doctest: +SKIP
    nothing to remove in namespace jhtutorial: none of the tutorial's objects is there

What goes is found by ONE label, ``app.kubernetes.io/part-of=jhtutorial``:
every object of the manifests carries it, and the hub config makes KubeSpawner
put it on the user pods and PVCs it creates. Nothing is chosen by name or by
KubeSpawner's own labels, which another JupyterHub in the same namespace
shares: its users' pods and home volumes stay. The same by hand::

    kubectl get pod,pvc -n NS -l app.kubernetes.io/part-of=jhtutorial

The order, and why:

1. the Deployments (hub and proxy), with foreground propagation: their
   ReplicaSets and pods go first, so no hub is left that could start a new user
   pod while the rest is deleted;
2. what the hub created, which no manifest names: the user pods and their home
   PVCs (each home volume is named with its user before it goes);
3. every other object of the manifests, the last step first (Services, the
   hub's PVC, the Secret, the ConfigMaps, RBAC).

Objects that have an owner (the Deployments' ReplicaSets and pods) are left to
the garbage collector, which removes them with their owner. Then it waits, on
a watch, until each one is really gone (a PVC stays until no pod uses it; a pod
until its grace period ends). Running it again removes nothing and says so. The
namespace itself stays unless ``delete_namespace=True``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .connect import Connection, current_connection
from .errors import KubeApiError, WaitTimeout
from .kubeapi import DEPLOYMENTS, NAMESPACES, PVCS, KubeApi, Resource
from .manifests import PART_OF
from .readable import Readable
from .steps import CLEANUP_RESOURCES, STEPS, by_hand, cleanup_commands
from .waits import wait_deleted
from .wayin import close_way_in

USERNAME_ANNOTATION = "hub.jupyter.org/username"  # KubeSpawner's: the hub user a pod or PVC belongs to


@dataclass(frozen=True)
class Found:
    """One object of the tutorial in the namespace, as the label found it."""

    resource: Resource
    name: str
    from_hub: bool  # made by the hub (KubeSpawner), not named in any manifest
    user: str | None = None  # whose server or home it is (the hub's objects only)

    @property
    def label(self) -> str:
        return f"{self.resource.kind}/{self.name}"


@dataclass
class CleanupResult(Readable):
    """What clean_up() removed and checked."""

    namespace: str
    removed: list[str] = field(default_factory=list)  # "Kind/name" of objects deleted by this run
    from_hub: list[str] = field(default_factory=list)  # the removed objects the hub made (user pods, PVCs)
    users: dict[str, str] = field(default_factory=dict)  # "Kind/name" of a removed hub object -> its user
    left: list[str] = field(default_factory=list)  # objects still there at the end (empty on success)
    namespace_deleted: bool = False
    way_in_closed: str | None = None  # the way in notebook 07 (or `jhtutorial access open`) left open
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
            out += [f"  {name}{self._made_by(name)}" for name in self.removed]
        if self.namespace_deleted:
            out.append(f"  namespace {self.namespace} deleted")
        if self.way_in_closed:
            out.append(f"  {self.way_in_closed}")
        out.append(f"  {by_hand(self.kubectl)}")
        return out

    def changes(self) -> list[str]:
        """What went, one line per object and who made it, without the time it took or the command: for a
        notebook that showed the commands just above, and whose saved output must not change with the clock."""
        closed = [self.way_in_closed] if self.way_in_closed else []
        if self.nothing_to_do:
            return [*closed, f"nothing to remove in namespace {self.namespace}: none of the tutorial's objects is there"]
        out = [*closed, *(f"deleted {name}{self._made_by(name)}" for name in self.removed)]
        if self.namespace_deleted:
            out.append(f"deleted namespace {self.namespace}")
        return out

    def _made_by(self, name: str) -> str:
        if name not in self.from_hub:
            return ""
        return f" (created by the hub for user {self.users[name]})" if name in self.users else " (created by the hub)"


def clean_up(conn: Connection | None = None, *, delete_namespace: bool = False, timeout: float = 120.0,
             progress: Callable[[str], None] | None = None) -> CleanupResult:
    """Delete the tutorial's objects and the user pods/PVCs the hub made; wait until they are gone.

    Args:
        conn: a connection (default: the last one made).
        delete_namespace: also delete the namespace (and wait for it to go).
        timeout: seconds to wait for everything to disappear.
        progress: called with a line before each user's home volume (PVC) is deleted, naming it and its
            user (the CLI prints them).

    Raises WaitTimeout (naming what is still there and why, e.g. a finalizer),
    Forbidden when the credentials may not delete.

    Example::

        clean_up()                          # kubectl delete -n NS deployments,pods,... -l app.kubernetes.io/part-of=jhtutorial
        clean_up(delete_namespace=True)     # kubectl delete namespace NS
    """
    conn = conn or current_connection()
    kube = KubeApi(conn.api)
    started = time.monotonic()
    result = CleanupResult(namespace=conn.namespace, kubectl=_kubectl(conn.namespace, delete_namespace))
    deleted: list[tuple[Resource, str]] = []
    if close_way_in(conn) is not None:  # first: nothing should reach the hub while it goes
        result.way_in_closed = f"closed the way in to the hub (kubectl port-forward -n {conn.namespace} svc/proxy-public)"

    def remove(found: Found) -> None:
        if found.from_hub and found.resource == PVCS and progress is not None:
            progress(f"deleting the home volume of {_whose(found)}: {found.label}")
        propagation = "Foreground" if found.resource == DEPLOYMENTS else "Background"
        if _delete(kube, found.resource, conn.namespace, found.name, propagation=propagation):
            result.removed.append(found.label)
            deleted.append((found.resource, found.name))
            if found.from_hub:
                result.from_hub.append(found.label)
                if found.user:
                    result.users[found.label] = found.user

    # the hub and proxy first, in the foreground: a running hub must not start anything new meanwhile;
    # then a fresh look, which also sees a user pod the hub started just before it went
    for found in _tutorial_objects(kube, conn.namespace):
        if found.resource == DEPLOYMENTS:
            remove(found)
    for found in _tutorial_objects(kube, conn.namespace, deletion_order=True):
        if found.resource != DEPLOYMENTS:
            remove(found)

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
    """``Kind/name`` of every object of the tutorial still in the namespace: the manifests' in step order,
    then the user pods and PVCs the hub made (``kubectl get ... -l app.kubernetes.io/part-of=jhtutorial``)."""
    return [found.label for found in inventory(conn)]


def inventory(conn: Connection | None = None) -> list[Found]:
    """What :func:`leftovers` lists, with who made each object and, for the hub's, whose it is.

    Example::

        for found in inventory():      # kubectl get pod,pvc -l app.kubernetes.io/part-of=jhtutorial -L hub.jupyter.org/username
            print(found.label, "the hub, for " + str(found.user) if found.from_hub else "manifests/")
    """
    conn = conn or current_connection()
    return _tutorial_objects(KubeApi(conn.api), conn.namespace)


# --- helpers ----------------------------------------------------------------------------------


def _tutorial_objects(kube: KubeApi, namespace: str, *, deletion_order: bool = False) -> list[Found]:
    """Everything in the namespace that carries the tutorial's label, except what an owner takes with it.

    Step order (the manifests' objects as the files list them, then the hub's); with ``deletion_order``:
    the Deployments, the hub's pods then PVCs, then the manifests' objects the last step first."""
    # (kind, name) of each object the files define -> (its step's number, its place in the step's files)
    in_files = {(obj["kind"], obj["metadata"]["name"]): (step.number, place)
                for step in STEPS for place, obj in enumerate(step.objects())}
    found = []
    for resource in CLEANUP_RESOURCES:
        for item in kube.get(resource.path(namespace), labelSelector=PART_OF).get("items", []):
            meta = item["metadata"]
            if meta.get("ownerReferences"):
                continue  # a Deployment's ReplicaSet or pod: the garbage collector removes it with its owner
            from_hub = (resource.kind, meta["name"]) not in in_files
            user = (meta.get("annotations") or {}).get(USERNAME_ANNOTATION) if from_hub else None
            found.append(Found(resource, meta["name"], from_hub, user))

    def hub_rank(item: Found) -> tuple[int, str]:  # pods before PVCs: a PVC in use only goes once its pod has
        return (CLEANUP_RESOURCES.index(item.resource), item.name)

    def step_order(item: Found) -> tuple[int, int, int, str]:
        if item.from_hub:
            return (1, 0, *hub_rank(item))
        number, place = in_files[(item.resource.kind, item.name)]
        return (0, number, place, "")

    def deletion(item: Found) -> tuple[int, int, int, str]:
        if item.resource == DEPLOYMENTS and not item.from_hub:
            return (0, *in_files[(item.resource.kind, item.name)], "")
        if item.from_hub:
            return (1, 0, *hub_rank(item))
        number, place = in_files[(item.resource.kind, item.name)]
        return (2, -number, place, "")  # the last step first; within a step, as its files list them

    return sorted(found, key=deletion if deletion_order else step_order)


def _whose(found: Found) -> str:
    return f"user {found.user}" if found.user else "a user the hub did not name"


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
