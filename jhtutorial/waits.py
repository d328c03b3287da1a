"""Wait for the state that matters, on a watch, and say what blocks it when it does not come.

Each wait lists the objects once and then follows a watch (see
:mod:`jhtutorial.watching`): it returns within a moment of the change, and the
number of requests it makes does not grow with the time it waits.

    >>> wait_deployment_available("hub", timeout=120)       # doctest: +SKIP
    WaitResult(Deployment hub available: 1/1 replicas available, 4.1 s, 2 requests)

    $ kubectl rollout status deployment/hub -n jhtutorial --timeout=120s   # the kubectl equivalent

When the time runs out, :class:`~jhtutorial.errors.WaitTimeout` carries what a
learner would otherwise dig out of ``kubectl describe``: the conditions of the
pods involved and the recent events (an image that cannot be pulled, a pod no
node has room for, a PVC whose StorageClass does not exist, a quota that
refuses the pods), and a fix for the first blocking reason found.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .connect import Connection, current_connection
from .errors import Forbidden, TutorialError, WaitTimeout
from .kubeapi import (
    DEPLOYMENTS,
    ENDPOINT_SLICES,
    EVENTS,
    PODS,
    PVCS,
    REPLICASETS,
    SERVICES,
    STORAGE_CLASSES,
    KubeApi,
    Resource,
)
from .objects import endpoint_is_ready, event_time, pod_is_ready
from .watching import Reflector

Obj = dict[str, Any]
Cache = dict[str, Obj]
RECENT_EVENTS = 8


@dataclass(frozen=True)
class Verdict:
    """Is the awaited state there, and how far along is it (one line for a learner)."""

    done: bool
    summary: str


@dataclass
class WaitResult:
    """What a successful wait saw: the final object(s), the time it took, what it cost."""

    what: str
    summary: str
    seconds: float
    requests: int  # HTTP requests made by the wait, counted on the client
    events: int  # watch events received
    objects: list[Obj] = field(repr=False, default_factory=list)

    @property
    def object(self) -> Obj | None:
        """The awaited object, for waits on one named object."""
        return self.objects[0] if self.objects else None

    def __repr__(self) -> str:
        return f"WaitResult({self.what}: {self.summary}, {self.seconds:.1f} s, {self.requests} requests)"


# --- conditions (pure functions of objects; the step checks use them too) ----------------


def deployment_available(deployment: Obj | None) -> Verdict:
    """The rule ``kubectl rollout status`` applies: the new pods are all up and available."""
    if deployment is None:
        return Verdict(False, "does not exist")
    spec, status = deployment.get("spec") or {}, deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    generation = (deployment.get("metadata") or {}).get("generation", 0)
    if status.get("observedGeneration", 0) < generation:
        return Verdict(False, "the controller has not seen the latest spec yet")
    updated = status.get("updatedReplicas", 0)
    total = status.get("replicas", 0)
    available = status.get("availableReplicas", 0)
    text = f"{available}/{wanted} replicas available"
    if updated < wanted:
        return Verdict(False, f"{text} ({updated}/{wanted} updated)")
    if total > updated:
        return Verdict(False, f"{text} ({total - updated} old replicas still terminating)")
    if available < wanted:
        return Verdict(False, text)
    return Verdict(True, text)


def pods_ready(pods: Iterable[Obj], count: int | None = None) -> Verdict:
    """All (non-terminating) pods Ready, and at least ``count`` of them (default 1)."""
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    ready = [p for p in live if pod_is_ready(p)]
    needed = 1 if count is None else count
    text = f"{len(ready)}/{len(live)} pods ready" + (f" (want {needed})" if count is not None else "")
    return Verdict(len(ready) == len(live) and len(ready) >= needed, text)


def pvc_bound(pvc: Obj | None, binding_mode: str | None = None) -> Verdict:
    """Bound; or Pending on a WaitForFirstConsumer class, which binds once a pod uses it."""
    if pvc is None:
        return Verdict(False, "does not exist")
    phase = (pvc.get("status") or {}).get("phase", "Pending")
    if phase == "Bound":
        return Verdict(True, f"Bound to {(pvc.get('spec') or {}).get('volumeName')}")
    if phase == "Pending" and binding_mode == "WaitForFirstConsumer":
        return Verdict(True, "Pending: its StorageClass binds a volume only when a pod uses it "
                             "(WaitForFirstConsumer, as on kind and k3d); the hub pod will bind it")
    return Verdict(False, phase)


def service_ip_assigned(service: Obj | None) -> Verdict:
    """The API server has given the Service its cluster IP (and node port, for NodePort)."""
    if service is None:
        return Verdict(False, "does not exist")
    spec = service.get("spec") or {}
    ip = spec.get("clusterIP")
    if not ip:
        return Verdict(False, "no cluster IP yet")
    if spec.get("type") in ("NodePort", "LoadBalancer"):
        ports = [p.get("nodePort") for p in spec.get("ports") or []]
        if not all(ports):
            return Verdict(False, "no node port yet")
        return Verdict(True, f"{ip}, node port {', '.join(str(p) for p in ports)}")
    return Verdict(True, "headless (no cluster IP by design)" if ip == "None" else ip)


def ready_endpoints(slices: Iterable[Obj]) -> list[str]:
    """Addresses of ready endpoints across a Service's EndpointSlices."""
    addresses: list[str] = []
    for endpoint_slice in slices:
        for endpoint in endpoint_slice.get("endpoints") or []:
            if endpoint_is_ready(endpoint):
                addresses.extend(endpoint.get("addresses") or [])
    return sorted(set(addresses))


def has_endpoints(slices: Iterable[Obj]) -> Verdict:
    addresses = ready_endpoints(slices)
    if addresses:
        return Verdict(True, f"{len(addresses)} ready endpoint(s): {', '.join(addresses)}")
    return Verdict(False, "no ready endpoints")


# --- the waits ----------------------------------------------------------------------------


def wait_deployment_available(name: str, *, conn: Connection | None = None, timeout: float = 180) -> WaitResult:
    """Wait until Deployment ``name`` is available.

    Like ``kubectl rollout status deployment/NAME -n NS --timeout=...``.
    """
    conn = conn or current_connection()
    return _wait(
        conn, DEPLOYMENTS, name=name, timeout=timeout,
        what=f"Deployment {name} available",
        evaluate=lambda cache: deployment_available(_only(cache)),
        diagnose=lambda kube, cache: _diagnose_deployment(kube, conn.namespace, name, _only(cache)),
    )


def wait_pods_ready(
    label_selector: str, *, count: int | None = None, conn: Connection | None = None, timeout: float = 180
) -> WaitResult:
    """Wait until the pods matching ``label_selector`` are all Ready (at least ``count``, default 1).

    Like ``kubectl wait pod -l SELECTOR --for=condition=Ready -n NS --timeout=...``.
    """
    conn = conn or current_connection()
    return _wait(
        conn, PODS, label_selector=label_selector, timeout=timeout,
        what=f"pods {label_selector} ready",
        evaluate=lambda cache: pods_ready(cache.values(), count),
        diagnose=lambda kube, cache: _diagnose_pods(kube, conn.namespace, list(cache.values())),
    )


def wait_pod_ready(name: str, *, conn: Connection | None = None, timeout: float = 180) -> WaitResult:
    """Wait until pod ``name`` is Ready (``kubectl wait pod/NAME --for=condition=Ready``)."""
    conn = conn or current_connection()
    return _wait(
        conn, PODS, name=name, timeout=timeout,
        what=f"pod {name} ready",
        evaluate=lambda cache: pods_ready(cache.values(), 1),
        diagnose=lambda kube, cache: _diagnose_pods(kube, conn.namespace, list(cache.values()), name=name),
    )


def wait_pvc_bound(
    name: str, *, conn: Connection | None = None, timeout: float = 120, accept_wait_for_first_consumer: bool = True
) -> WaitResult:
    """Wait until PVC ``name`` is Bound (``kubectl wait pvc/NAME --for=jsonpath='{.status.phase}'=Bound``).

    On a StorageClass with ``volumeBindingMode: WaitForFirstConsumer`` (kind,
    k3d) a PVC stays Pending until a pod uses it; that counts as done unless
    ``accept_wait_for_first_consumer`` is False.
    """
    conn = conn or current_connection()
    modes: dict[str | None, str | None] = {}

    def evaluate(cache: Cache) -> Verdict:
        pvc = _only(cache)
        if pvc is None or not accept_wait_for_first_consumer:
            return pvc_bound(pvc)
        class_name = (pvc.get("spec") or {}).get("storageClassName") or conn.default_storage_class
        if class_name not in modes:  # one GET per class, not per event
            modes[class_name] = _binding_mode(conn, class_name)
        return pvc_bound(pvc, modes[class_name])

    return _wait(
        conn, PVCS, name=name, timeout=timeout,
        what=f"PVC {name} bound", evaluate=evaluate,
        diagnose=lambda kube, cache: _diagnose_pvc(kube, conn.namespace, name, _only(cache)),
    )


def wait_service_endpoints(name: str, *, conn: Connection | None = None, timeout: float = 180) -> WaitResult:
    """Wait until Service ``name`` has at least one ready endpoint (a Ready pod behind it).

    Like watching ``kubectl get endpointslices -l kubernetes.io/service-name=NAME -n NS``.
    """
    conn = conn or current_connection()
    return _wait(
        conn, ENDPOINT_SLICES, label_selector=f"kubernetes.io/service-name={name}", timeout=timeout,
        what=f"Service {name} has endpoints",
        evaluate=lambda cache: has_endpoints(cache.values()),
        diagnose=lambda kube, cache: _diagnose_service(kube, conn.namespace, name),
    )


def wait_service_without_endpoints(name: str, *, conn: Connection | None = None, timeout: float = 60) -> WaitResult:
    """Wait until Service ``name`` has no ready endpoint: its selector matches no Ready pod, or the Service
    and its EndpointSlices are gone. Like watching ``kubectl get endpointslices -l kubernetes.io/service-name=NAME``
    until ENDPOINTS reads ``<unset>`` (or nothing is listed)."""
    conn = conn or current_connection()

    def evaluate(cache: Cache) -> Verdict:
        verdict = has_endpoints(cache.values())
        return Verdict(not verdict.done, verdict.summary)

    return _wait(
        conn, ENDPOINT_SLICES, label_selector=f"kubernetes.io/service-name={name}", timeout=timeout,
        what=f"Service {name} without endpoints", evaluate=evaluate,
        diagnose=lambda kube, cache: _diagnose_service(kube, conn.namespace, name),
    )


def wait_deleted(
    resource: Resource, name: str, *, conn: Connection | None = None, timeout: float = 120
) -> WaitResult:
    """Wait until an object is gone (``kubectl wait --for=delete KIND/NAME``)."""
    conn = conn or current_connection()
    return _wait(
        conn, resource, name=name, timeout=timeout,
        what=f"{resource.kind} {name} deleted",
        evaluate=lambda cache: Verdict(not cache, "gone" if not cache else "still there"),
        diagnose=lambda kube, cache: _diagnose_generic(kube, conn.namespace, resource.kind, name, _only(cache)),
    )


# --- the engine -----------------------------------------------------------------------------


@dataclass
class _Diagnosis:
    lines: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    events: list[Obj] = field(default_factory=list)
    fix: str | None = None


def _wait(
    conn: Connection,
    resource: Resource,
    *,
    what: str,
    evaluate: Callable[[Cache], Verdict],
    diagnose: Callable[[KubeApi, Cache], _Diagnosis],
    timeout: float,
    name: str | None = None,
    label_selector: str | None = None,
) -> WaitResult:
    start = time.monotonic()
    reflector = Reflector(
        conn.api, resource, conn.namespace,
        field_selector=f"metadata.name={name}" if name else None,
        label_selector=label_selector,
        # one watch request covers the whole wait, however long it is
        watch_seconds=max(300, int(timeout) + 5),
    )
    verdict = Verdict(False, "no answer from the API server yet")
    stream = reflector.events(timeout=timeout)
    changes = 0
    try:
        # The cache is complete whenever an event is yielded (the list fills it
        # before the first one), so every event is a moment to decide.
        for event in stream:
            changes += event.type != "SYNCED"
            verdict = evaluate(reflector.cache)
            if verdict.done:
                return WaitResult(
                    what=what, summary=verdict.summary, seconds=time.monotonic() - start,
                    requests=reflector.requests, events=changes,
                    objects=list(reflector.cache.values()),
                )
    finally:
        stream.close()
    waited = time.monotonic() - start
    where = f"in namespace {conn.namespace}"
    diagnosis = diagnose(KubeApi(conn.api), reflector.cache)
    problem = f"timed out after {waited:.0f} s waiting for {what} {where}: {verdict.summary}"
    if diagnosis.lines:
        problem += "\n" + "\n".join(f"    {line}" for line in diagnosis.lines)
    raise WaitTimeout(
        problem,
        fix=diagnosis.fix or _generic_fix(what, conn.namespace),
        summary=verdict.summary,
        reasons=[reason for reason in diagnosis.reasons if reason],
        events=diagnosis.events,
    )


def _only(cache: Cache) -> Obj | None:
    return next(iter(cache.values()), None)


def claim_binding_mode(conn: Connection, pvc: Obj) -> str | None:
    """The volumeBindingMode of the StorageClass a PVC uses: the one it names, else the default one
    (``kubectl get storageclass NAME -o jsonpath='{.volumeBindingMode}'``); None when unknown.
    WaitForFirstConsumer means a Pending claim is fine until a pod uses it."""
    return _binding_mode(conn, (pvc.get("spec") or {}).get("storageClassName") or conn.default_storage_class)


def _binding_mode(conn: Connection, class_name: str | None) -> str | None:
    if not class_name:
        return None
    if class_name == conn.default_storage_class:
        return conn.volume_binding_mode
    try:
        storage_class = KubeApi(conn.api).get_or_none(STORAGE_CLASSES.path(name=class_name))
    except TutorialError:  # e.g. no permission to read StorageClasses: judge by the phase alone
        return None
    return (storage_class or {}).get("volumeBindingMode")


# --- diagnosis: what blocks it, in a learner's words ------------------------------------------

# (substring of an event reason or message, what it means and what to do), first match wins
_ADVICE: tuple[tuple[str, str], ...] = (
    ("ImagePullBackOff", "the image cannot be pulled: check the image name and tag in the manifest, and that "
                         "the cluster can reach the registry (`kubectl describe pod` shows the pull error)"),
    ("ErrImagePull", "the image cannot be pulled: check the image name and tag in the manifest, and that "
                     "the cluster can reach the registry (`kubectl describe pod` shows the pull error)"),
    ("exceeded quota", "a ResourceQuota in the namespace refuses the pods: `kubectl describe resourcequota` "
                       "shows the limits; lower the pods' resource requests or raise the quota"),
    ("unbound immediate PersistentVolumeClaims", "the pod waits for its PVC to bind: see step 04 "
                                                 "(`kubectl describe pvc` shows why it is Pending)"),
    ("Insufficient", "no node has room for the pod's resource requests: lower resources.requests in the "
                     "manifest, or give the cluster more (e.g. `minikube start --cpus 4 --memory 8g`)"),
    ("storageclass.storage.k8s.io", "the PVC names a StorageClass the cluster does not have: leave "
                                    "storageClassName out to use the default, or pick one from "
                                    "`kubectl get storageclass`"),
    ("no persistent volumes available", "nothing can provide a volume for the PVC: the cluster needs a "
                                        "default StorageClass with a provisioner (`kubectl get storageclass`)"),
    ("waiting for a volume to be created", "the PVC waits for an external provisioner: check that the "
                                           "StorageClass's provisioner is running"),
    ("serviceaccount", "the pods' ServiceAccount is missing: apply step 01 (rbac.yaml) first"),
    ("FailedMount", "a volume the pod mounts is missing (a ConfigMap, Secret or PVC): apply steps 02-04 first"),
    ("CrashLoopBackOff", "the container starts and exits again: `kubectl logs POD --previous` shows why"),
    ("Unschedulable", "the scheduler found no node for the pod: `kubectl describe pod` lists each node's reason"),
    ("FailedScheduling", "the scheduler found no node for the pod: `kubectl describe pod` lists each node's reason"),
    ("FailedCreate", "the controller could not create the pods: the event's message says why"),
)


def _diagnose_deployment(kube: KubeApi, namespace: str, name: str, deployment: Obj | None) -> _Diagnosis:
    if deployment is None:
        return _Diagnosis(
            [f"Deployment {name} does not exist"],
            fix="apply step 06 first: jhtutorial.apply('deployments')",
        )
    diagnosis = _Diagnosis()
    for condition in _conditions(deployment):
        if condition.get("status") != "True" or condition.get("type") == "ReplicaFailure":
            diagnosis.lines.append(_condition_line(f"Deployment {name}", condition))
            diagnosis.reasons.append(str(condition.get("reason", "")))
    selector = _selector((deployment.get("spec") or {}).get("selector") or {})
    pods = kube.get(PODS.path(namespace), labelSelector=selector).get("items", []) if selector else []
    replica_sets = kube.get(REPLICASETS.path(namespace), labelSelector=selector).get("items", []) if selector else []
    involved = {("Deployment", name)}
    involved |= {("ReplicaSet", rs["metadata"]["name"]) for rs in replica_sets}
    _describe_pods(pods, diagnosis, involved)
    _add_events(kube, namespace, involved, diagnosis)
    return diagnosis


def _diagnose_pods(kube: KubeApi, namespace: str, pods: list[Obj], name: str | None = None) -> _Diagnosis:
    diagnosis = _Diagnosis()
    if not pods:
        diagnosis.lines.append(f"pod {name} does not exist" if name else "no pod matches the selector")
    involved: set[tuple[str, str]] = {("Pod", name)} if name else set()
    _describe_pods(pods, diagnosis, involved)
    _add_events(kube, namespace, involved, diagnosis)
    return diagnosis


def _diagnose_pvc(kube: KubeApi, namespace: str, name: str, pvc: Obj | None) -> _Diagnosis:
    if pvc is None:
        return _Diagnosis([f"PVC {name} does not exist"], fix="apply step 04 first: jhtutorial.apply('pvc')")
    diagnosis = _Diagnosis()
    spec = pvc.get("spec") or {}
    diagnosis.lines.append(
        f"PVC {name}: {(pvc.get('status') or {}).get('phase', 'Pending')}, "
        f"storageClassName={spec.get('storageClassName') or '(default)'}"
    )
    _add_events(kube, namespace, {("PersistentVolumeClaim", name)}, diagnosis)
    if spec.get("storageClassName") and not diagnosis.fix:
        try:
            exists: Obj | None = kube.get_or_none(STORAGE_CLASSES.path(name=spec["storageClassName"]))
        except Forbidden:  # a cluster-wide read a learner limited to a namespace lacks: the events must do
            exists = {}
        if exists is None:
            diagnosis.lines.append(f"StorageClass {spec['storageClassName']!r} does not exist")
            diagnosis.reasons.append("StorageClassNotFound")
            diagnosis.fix = _advice("storageclass.storage.k8s.io")
    return diagnosis


def _diagnose_service(kube: KubeApi, namespace: str, name: str) -> _Diagnosis:
    service = kube.get_or_none(SERVICES.path(namespace, name))
    if service is None:
        return _Diagnosis([f"Service {name} does not exist"], fix="apply step 05 first: jhtutorial.apply('services')")
    selector = ",".join(f"{k}={v}" for k, v in ((service.get("spec") or {}).get("selector") or {}).items())
    if not selector:
        return _Diagnosis([f"Service {name} has no selector: its EndpointSlices are managed by hand"])
    pods = kube.get(PODS.path(namespace), labelSelector=selector).get("items", [])
    diagnosis = _Diagnosis()
    if not pods:
        diagnosis.lines.append(f"no pod matches the Service's selector {selector}")
        diagnosis.fix = "the pods come with step 06 (the Deployments); check that their labels match the selector"
        return diagnosis
    involved: set[tuple[str, str]] = set()
    _describe_pods(pods, diagnosis, involved)
    _add_events(kube, namespace, involved, diagnosis)
    return diagnosis


def _diagnose_generic(kube: KubeApi, namespace: str, kind: str, name: str, obj: Obj | None) -> _Diagnosis:
    diagnosis = _Diagnosis()
    if obj is not None and (obj.get("metadata") or {}).get("finalizers"):
        diagnosis.lines.append(f"{kind} {name} waits for finalizers: {', '.join(obj['metadata']['finalizers'])}")
    _add_events(kube, namespace, {(kind, name)}, diagnosis)
    return diagnosis


def _describe_pods(pods: list[Obj], diagnosis: _Diagnosis, involved: set[tuple[str, str]]) -> None:
    """One line per pod with what keeps it from being Ready; its events join the search."""
    for pod in pods[:5]:
        pod_name = pod["metadata"]["name"]
        involved.add(("Pod", pod_name))
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                involved.add(("PersistentVolumeClaim", claim))
        status = pod.get("status") or {}
        parts = [status.get("phase", "Pending")]
        for condition in _conditions(pod):
            if condition.get("status") != "True" and (condition.get("reason") or condition.get("message")):
                parts.append(f"{condition['type']}={condition['status']} {condition.get('reason', '')}: "
                             f"{condition.get('message', '')}".rstrip(": "))
                diagnosis.reasons.append(str(condition.get("reason", "")))
        for container in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or []):
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason"):
                parts.append(f"container {container.get('name')}: {waiting['reason']} {waiting.get('message', '')}"
                             .rstrip())
                diagnosis.reasons.append(waiting["reason"])
        diagnosis.lines.append(f"pod {pod_name}: " + "; ".join(parts))
    if len(pods) > 5:
        diagnosis.lines.append(f"... and {len(pods) - 5} more pods")


def _add_events(kube: KubeApi, namespace: str, involved: set[tuple[str, str]], diagnosis: _Diagnosis) -> None:
    """The newest events about the objects involved (one list request for the namespace)."""
    events = [
        e for e in kube.get(EVENTS.path(namespace)).get("items", [])
        if ((e.get("involvedObject") or {}).get("kind"), (e.get("involvedObject") or {}).get("name")) in involved
    ]
    events.sort(key=event_time)
    # the same complaint recorded twice (two Event objects, e.g. after a retry) is shown once
    unique: dict[tuple[str, str, str, str], Obj] = {}
    for event in events:
        involved_object = event.get("involvedObject") or {}
        key = (str(event.get("reason")), str(involved_object.get("kind")), str(involved_object.get("name")),
               str(event.get("message", "")).strip())
        unique.pop(key, None)  # keep the newest, in time order
        unique[key] = event
    events = list(unique.values())
    # warnings first: they are the ones that explain a stall
    chosen = [e for e in events if e.get("type") == "Warning"][-RECENT_EVENTS:]
    if not chosen:
        chosen = events[-RECENT_EVENTS:]
    for event in chosen:
        involved_object = event.get("involvedObject") or {}
        count = f" (x{event['count']})" if (event.get("count") or 1) > 1 else ""
        message = str(event.get("message", "")).strip()
        diagnosis.lines.append(
            f"event {event.get('type', 'Normal')} {event.get('reason')} on "
            f"{involved_object.get('kind')} {involved_object.get('name')}{count}: {message}"
        )
        diagnosis.reasons.append(str(event.get("reason", "")))
        diagnosis.events.append(event)
    if diagnosis.fix is None:
        texts = diagnosis.reasons + [line for line in diagnosis.lines]
        for needle, advice in _ADVICE:
            if any(needle.lower() in text.lower() for text in texts):
                diagnosis.fix = advice
                break


def _advice(needle: str) -> str:
    return next(advice for key, advice in _ADVICE if key == needle)


def _generic_fix(what: str, namespace: str) -> str:
    return (f"nothing in the events explains it yet: `kubectl get events -n {namespace} --sort-by=.lastTimestamp` "
            "shows the latest; a longer timeout may be all it needs")


def _conditions(obj: Obj) -> list[Obj]:
    return list((obj.get("status") or {}).get("conditions") or [])


def _condition_line(owner: str, condition: Obj) -> str:
    return (f"{owner}: {condition.get('type')}={condition.get('status')} {condition.get('reason', '')}: "
            f"{condition.get('message', '')}").rstrip(": ")


def _selector(selector: Obj) -> str:
    parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or []:
        values = ",".join(expression.get("values") or [])
        operator = expression.get("operator")
        if operator == "In":
            parts.append(f"{expression['key']} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{expression['key']} notin ({values})")
        elif operator == "Exists":
            parts.append(expression["key"])
        elif operator == "DoesNotExist":
            parts.append(f"!{expression['key']}")
    return ",".join(parts)
