"""The kwok objects that let kubectl reach a backed pod through the API server, as a kubelet's server does.

kwok serves ``kubectl port-forward``, ``kubectl logs`` and ``kubectl exec`` for its simulated pods from three
custom resources named like the pod: ``PortForward`` (where a container port leads: a command that enters the
pod's network namespace), ``Logs`` (the file a container's output goes to) and ``Exec`` (how a
command runs in the container). The backing writes them when a pod starts and removes them when it hands the pod
back to kwok; each names the pod as its owner, so the garbage collector removes them with the pod.

    $ kubectl get portforwards.kwok.x-k8s.io,logs.kwok.x-k8s.io,execs.kwok.x-k8s.io -n jhtutorial
"""

from __future__ import annotations

from typing import Any

from ...errors import KubeApiError
from ...kubeapi import PODS, KubeApi, Resource
from . import BACKED_BY_ANNOTATION, KWOK_STATUS_ANNOTATION

Obj = dict[str, Any]
PORT_FORWARDS = Resource("kwok.x-k8s.io/v1alpha1", "PortForward", "portforwards")
LOGS = Resource("kwok.x-k8s.io/v1alpha1", "Logs", "logs")
EXECS = Resource("kwok.x-k8s.io/v1alpha1", "Exec", "execs")
# what earlier versions wrote on a pod they ran as processes (its loopback ports, what was mapped): removed
FORMER_ANNOTATIONS = ("jhtutorial/local-ports", "jhtutorial/mapped")
# what the backing writes on a pod; without them, kwok simulates the pod as any other
BACKING_ANNOTATIONS = (KWOK_STATUS_ANNOTATION, BACKED_BY_ANNOTATION, *FORMER_ANNOTATIONS)


def apply_kwok_objects(kube: KubeApi, pod: Obj, specs: list[tuple[Resource, Obj]]) -> list[str]:
    """kwok's objects for this pod (one of each kind, named like it, owned by it), by server-side apply; returns
    what could not be written (a cluster made before kwok's resources were enabled), to say once."""
    meta = pod["metadata"]
    owner = [{"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"]}]
    problems = []
    for resource, spec in specs:
        body = {"apiVersion": resource.api_version, "kind": resource.kind,
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "ownerReferences": owner},
                "spec": spec}
        try:
            kube.call("PATCH", resource.path(meta["namespace"], meta["name"]), body=body,
                      query={"fieldManager": "jhtutorial-backing", "force": True},
                      content_type="application/apply-patch+yaml")
        except KubeApiError as err:
            problems.append(f"no kwok {resource.kind} objects on this cluster ({err.problem}): kubectl cannot reach "
                            "the pod's programs; the cluster was made before they were enabled: `jhtutorial cluster "
                            "up --recreate` makes it anew with them (keeping a copy of this one)")
    return problems


def withdraw(kube: KubeApi, namespace: str, name: str, kwok_objects_only: bool = False) -> None:
    """Hand a pod back to kwok: no kwok objects pointing at what ran it (its sandbox is gone), and
    none of the backing's annotations, so kwok simulates it as every other pod."""
    for resource in (PORT_FORWARDS, LOGS, EXECS):
        try:
            kube.call("DELETE", resource.path(namespace, name))
        except KubeApiError as err:
            if err.status != 404:
                raise
    if kwok_objects_only:
        return
    try:
        kube.call("PATCH", PODS.path(namespace, name), body={"metadata": {"annotations": dict.fromkeys(
            BACKING_ANNOTATIONS, None)}}, content_type="application/merge-patch+json")
    except KubeApiError as err:
        if err.status != 404:
            raise
