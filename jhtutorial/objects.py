"""What a Kubernetes object says, read the way kubectl reads it: one answer per question.

Every table, live view, wait and check of the package reads pods, events and
StorageClasses through these functions, so that two places never show the same
object differently.

    >>> pod = {"status": {"phase": "Pending", "containerStatuses": [
    ...     {"ready": False, "state": {"waiting": {"reason": "ContainerCreating"}}}]},
    ...     "spec": {"containers": [{"name": "notebook"}]}}
    >>> pod_status(pod), ready_containers(pod)    # kubectl get pod: STATUS, READY
    ('ContainerCreating', '0/1')
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


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _sidecars(pod: Obj) -> set[str]:
    """Init containers with ``restartPolicy: Always`` (sidecars): kubectl counts them as containers."""
    return {c["name"] for c in (pod.get("spec") or {}).get("initContainers") or [] if c.get("restartPolicy") == "Always"}


def _initializing(pod: Obj) -> str | None:
    """STATUS while an init container has not finished (``Init:1/2``, ``Init:ImagePullBackOff``), else None."""
    sidecars = _sidecars(pod)
    total = len((pod.get("spec") or {}).get("initContainers") or [])
    for index, container in enumerate(_status(pod).get("initContainerStatuses") or []):
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting") or {}
        if terminated is not None and terminated.get("exitCode", 0) == 0:
            continue
        if container.get("name") in sidecars and container.get("started"):
            continue
        if terminated is not None:
            if terminated.get("reason"):
                return "Init:" + terminated["reason"]
            if terminated.get("signal"):
                return f"Init:Signal:{terminated['signal']}"
            return f"Init:ExitCode:{terminated.get('exitCode', 0)}"
        if waiting.get("reason") and waiting["reason"] != "PodInitializing":
            return "Init:" + waiting["reason"]
        return f"Init:{index}/{total}"
    return None


def pod_status(pod: Obj) -> str:
    """STATUS of ``kubectl get pods``, by kubectl's rules: the pod's reason or phase; an init container's
    trouble (``Init:ImagePullBackOff``); else the app containers' waiting or terminated reason
    (``ContainerCreating``, ``CrashLoopBackOff``, ``Error``); ``Terminating`` while it is being deleted."""
    status = _status(pod)
    phase = status.get("phase") or ""
    reason = status.get("reason") or phase
    if any(c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated"
           for c in status.get("conditions") or []):
        reason = "SchedulingGated"
    initializing = _initializing(pod)
    if initializing is not None:
        reason = initializing
    if initializing is None or _condition_true(pod, "Initialized"):
        has_running, error_reason = False, ""
        for container in reversed(status.get("containerStatuses") or []):
            state = container.get("state") or {}
            waiting, terminated = state.get("waiting") or {}, state.get("terminated")
            if waiting.get("reason"):
                reason = waiting["reason"]
            elif terminated is not None:
                if terminated.get("reason"):
                    reason = terminated["reason"]
                elif terminated.get("signal"):
                    reason = f"Signal:{terminated['signal']}"
                else:
                    reason = f"ExitCode:{terminated.get('exitCode', 0)}"
                if terminated.get("exitCode", 0) != 0:
                    error_reason = reason
            elif container.get("ready") and state.get("running") is not None:
                has_running = True
        if reason == "Completed":
            if has_running and _condition_true(pod, "Ready"):
                reason = "Running"
            elif error_reason:
                reason = error_reason
            elif has_running:
                reason = "NotReady"
    deleting = bool((pod.get("metadata") or {}).get("deletionTimestamp"))
    if deleting and status.get("reason") == "NodeLost":
        return "Unknown"
    if deleting and phase not in ("Succeeded", "Failed"):
        return "Terminating"
    return reason


def ready_containers(pod: Obj) -> str:
    """READY of ``kubectl get pods``: containers that are ready and running, of all (sidecars included)."""
    sidecars = _sidecars(pod)
    total = len((pod.get("spec") or {}).get("containers") or []) + len(sidecars)
    ready = sum(1 for c in _status(pod).get("initContainerStatuses") or []
                if c.get("name") in sidecars and c.get("started") and c.get("ready"))
    ready += sum(1 for c in _status(pod).get("containerStatuses") or []
                 if c.get("ready") and (c.get("state") or {}).get("running") is not None)
    return f"{ready}/{total}"


def pod_is_ready(pod: Obj) -> bool:
    """The pod's Ready condition is True (``kubectl wait --for=condition=Ready pod/NAME``): what a Service,
    a Deployment and a wait go by, readiness gates included, not only the containers' own flags."""
    return _condition_true(pod, "Ready")


def pod_restarts(pod: Obj) -> int:
    """RESTARTS of ``kubectl get pods`` (without its "(5m ago)"): the init containers' while the pod is
    initialising, else the app containers' and sidecars'."""
    init = _status(pod).get("initContainerStatuses") or []
    if _initializing(pod) is not None and not _condition_true(pod, "Initialized"):
        return sum(int(c.get("restartCount") or 0) for c in init)
    sidecars = _sidecars(pod)
    return (sum(int(c.get("restartCount") or 0) for c in init if c.get("name") in sidecars)
            + sum(int(c.get("restartCount") or 0) for c in _status(pod).get("containerStatuses") or []))


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
