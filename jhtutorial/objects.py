"""What a Kubernetes object says, read the way kubectl reads it: one answer per question.

Every table, live view, wait and check of the package reads pods, events and
StorageClasses through these functions, so that two places never show the same
object differently.

    >>> pod = {"status": {"phase": "Pending", "containerStatuses": [
    ...     {"ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}]},
    ...     "spec": {"containers": [{"name": "notebook"}]}}
    >>> pod_status(pod), ready_containers(pod)    # kubectl get pod: STATUS, READY
    ('Pending (ContainerCreating)', '0/1')
    >>> event_time({"lastTimestamp": "2026-01-01T10:00:00Z"})
    '2026-01-01T10:00:00.000000Z'
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

Obj = dict[str, Any]

# The GA annotation and the beta one it replaced: the API server's admission still honours both.
DEFAULT_STORAGE_ANNOTATIONS = (
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
)


def name_of(obj: Obj) -> str:
    return obj["metadata"]["name"]


# --- pods ---------------------------------------------------------------------------------------


def pod_status(pod: Obj) -> str:
    """The pod's state in one word or two (``kubectl get pods``' STATUS): Terminating wins, then the phase
    with the first waiting reason of an init or app container, e.g. ``Pending (ContainerCreating)``."""
    status = pod.get("status") or {}
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return "Terminating"
    phase = str(status.get("phase") or "Pending")
    for container in (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or []):
        waiting = (container.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            return f"{phase} ({waiting['reason']})"
    return phase


def ready_containers(pod: Obj) -> str:
    """Ready containers out of all, as ``kubectl get pods`` prints READY: ``1/2``."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    total = len((pod.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def pod_is_ready(pod: Obj) -> bool:
    """The pod's Ready condition is True (``kubectl wait --for=condition=Ready pod/NAME``): what a Service,
    a Deployment and a wait go by, readiness gates included, not only the containers' own flags."""
    return _condition_true(pod, "Ready")


def pod_restarts(pod: Obj) -> int:
    """RESTARTS: the restarts of all the pod's containers."""
    return sum(int(s.get("restartCount") or 0) for s in (pod.get("status") or {}).get("containerStatuses") or [])


def node_is_ready(node: Obj) -> bool:
    """The node's Ready condition is True (``kubectl get nodes`` STATUS Ready)."""
    return _condition_true(node, "Ready")


def endpoint_is_ready(endpoint: Obj) -> bool:
    """An endpoint of an EndpointSlice may take traffic; the API's rule: a missing ``ready`` means ready."""
    return (endpoint.get("conditions") or {}).get("ready", True) is not False


def _condition_true(obj: Obj, kind: str) -> bool:
    return any(c.get("type") == kind and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or [])


# --- events -------------------------------------------------------------------------------------


def event_time(event: Obj) -> str:
    """When an Event last happened, as a string that sorts in time order (newer string = newer event).

    Whichever field is set: ``series.lastObservedTime``, ``lastTimestamp``, ``eventTime``, then
    ``metadata.creationTimestamp``. Whole-second stamps (``...T10:00:00Z``) are padded to the
    microsecond form (``...T10:00:00.000000Z``): compared as written, ``Z`` sorts after ``.``, so a
    whole-second stamp would count as later than a fractional one of the same second."""
    series = event.get("series") or {}
    stamp = str(
        series.get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
        or ""
    )
    if stamp.endswith("Z") and "." not in stamp:
        stamp = stamp[:-1] + ".000000Z"
    return stamp


def oldest_first(events: Iterable[Obj]) -> list[Obj]:
    """Events in the order they happened (``kubectl get events --sort-by=.lastTimestamp``, fractions too)."""
    return sorted(events, key=event_time)


# --- StorageClasses -------------------------------------------------------------------------------


def is_default_storage_class(storage_class: Obj) -> bool:
    """Is this StorageClass marked as the default (the GA annotation or the older beta one)?"""
    annotations = (storage_class.get("metadata") or {}).get("annotations") or {}
    return any(annotations.get(key) == "true" for key in DEFAULT_STORAGE_ANNOTATIONS)


def default_storage_class(classes: Iterable[Obj]) -> Obj | None:
    """The StorageClass a PVC without ``storageClassName`` gets, as the API server picks it: of those
    marked default, the newest (then the first by name); None when none is marked."""
    marked = sorted((sc for sc in classes if is_default_storage_class(sc)), key=name_of)
    # reverse keeps the sort stable: among equally new classes the first by name stays first
    marked.sort(key=lambda sc: str((sc.get("metadata") or {}).get("creationTimestamp") or ""), reverse=True)
    return marked[0] if marked else None
