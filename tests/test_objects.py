"""One answer per question about an object: the pod's status, the order of events, the default
StorageClass. Every table, live view and wait reads them through jhtutorial.objects; the tests below
make the objects for real where the API server lets a test make them, and compare what each reader says.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from jhtutorial import notebook as nb
from jhtutorial.connect import Connection, connect
from jhtutorial.errors import WaitTimeout
from jhtutorial.kubeapi import EVENTS, PODS, KubeApi
from jhtutorial.liveview import LiveView
from jhtutorial.objects import (
    default_storage_class,
    event_time,
    is_default_storage_class,
    oldest_first,
    pod_is_ready,
    pod_restarts,
    pod_status,
    ready_containers,
)
from jhtutorial.waits import wait_pod_ready

WHOLE_SECOND = "2026-01-01T10:00:00Z"
HALF_A_SECOND_LATER = "2026-01-01T10:00:00.500000Z"


# --- pure: objects shaped as the API returns them -----------------------------------------------


def test_pod_status_reads_like_kubectl() -> None:
    assert pod_status({"status": {"phase": "Running"}}) == "Running"
    assert pod_status({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"},
                       "status": {"phase": "Running"}}) == "Terminating"
    waiting = {"status": {"phase": "Pending", "containerStatuses": [
        {"state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    assert pod_status(waiting) == "ContainerCreating"
    # an init container that waits holds the whole pod: its reason is the one to show, marked Init:
    init = {"status": {"phase": "Pending", "initContainerStatuses": [
        {"state": {"waiting": {"reason": "ImagePullBackOff"}}}],
        "containerStatuses": [{"state": {"waiting": {"reason": "PodInitializing"}}}]}}
    assert pod_status(init) == "Init:ImagePullBackOff"
    crashed = {"status": {"phase": "Running", "containerStatuses": [
        {"restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}}
    assert pod_status(crashed) == "CrashLoopBackOff" and pod_restarts(crashed) == 4


def test_ready_is_the_pods_condition_and_the_containers_count() -> None:
    pod = {"spec": {"containers": [{"name": "a"}, {"name": "b"}]},
           "status": {"containerStatuses": [{"ready": True, "state": {"running": {}}},
                                            {"ready": True, "state": {"running": {}}}],
                      # a readiness gate not yet met: the containers are ready, the pod is not
                      "conditions": [{"type": "Ready", "status": "False"}]}}
    assert ready_containers(pod) == "2/2" and not pod_is_ready(pod)
    pod["status"]["conditions"][0]["status"] = "True"
    assert pod_is_ready(pod)


def test_events_order_by_time_fractions_included() -> None:
    older = {"reason": "Older", "lastTimestamp": WHOLE_SECOND}
    newer = {"reason": "Newer", "eventTime": HALF_A_SECOND_LATER}
    # compared as written, "...00Z" sorts after "...00.500000Z": the older event would come last
    assert WHOLE_SECOND > HALF_A_SECOND_LATER
    assert event_time(older) < event_time(newer)
    assert [e["reason"] for e in oldest_first([newer, older])] == ["Older", "Newer"]
    assert event_time({"series": {"lastObservedTime": HALF_A_SECOND_LATER}, "lastTimestamp": WHOLE_SECOND}) \
        == HALF_A_SECOND_LATER


def _storage_class(name: str, created: str, annotation: str | None) -> dict:
    annotations = {annotation: "true"} if annotation else {}
    return {"metadata": {"name": name, "creationTimestamp": created, "annotations": annotations},
            "provisioner": "example.com/none"}


def test_the_beta_annotation_marks_a_default_storage_class_too() -> None:
    beta = _storage_class("old-style", WHOLE_SECOND, "storageclass.beta.kubernetes.io/is-default-class")
    plain = _storage_class("plain", WHOLE_SECOND, None)
    assert is_default_storage_class(beta) and not is_default_storage_class(plain)
    assert default_storage_class([plain, beta]) is beta


def test_of_several_defaults_the_newest_wins_as_in_the_api_server() -> None:
    ga = "storageclass.kubernetes.io/is-default-class"
    old = _storage_class("a-old", "2026-01-01T10:00:00Z", ga)
    new = _storage_class("z-new", "2026-01-02T10:00:00Z", ga)
    twin = _storage_class("b-twin", "2026-01-02T10:00:00Z", ga)
    assert default_storage_class([old, new]) is new
    assert default_storage_class([new, twin, old]) is twin  # same age: the first by name
    assert default_storage_class([_storage_class("x", WHOLE_SECOND, None)]) is None


# --- against the API server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def conn(kubeconfig: Path, namespace: str) -> Iterator[Connection]:
    connection = connect(namespace=namespace, kubeconfig=kubeconfig, create_namespace=False)
    yield connection
    connection.close()


@pytest.fixture
def unscheduled_pod(conn: Connection) -> Iterator[dict]:
    """A pod no scheduler takes (it names one that does not run), so no simulated node writes its status
    and no scheduler adds events: the test writes its status, as a kubelet would, through the status
    subresource."""
    kube = KubeApi(conn.api)
    name = f"waiting-{secrets.token_hex(3)}"
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"test": name}},
           "spec": {"schedulerName": "jhtutorial-test-no-such-scheduler",
                    "initContainers": [{"name": "setup", "image": "registry.k8s.io/pause:3.10"}],
                    "containers": [{"name": "main", "image": "registry.k8s.io/pause:3.10"}]}}
    created = kube.call("POST", PODS.path(conn.namespace), body=pod)
    status = {"status": {"phase": "Pending",
                         "initContainerStatuses": [{"name": "setup", "image": "registry.k8s.io/pause:3.10",
                                                    "imageID": "", "ready": False, "restartCount": 0,
                                                    "state": {"waiting": {"reason": "ImagePullBackOff"}}}],
                         "containerStatuses": [{"name": "main", "image": "registry.k8s.io/pause:3.10",
                                                "imageID": "", "ready": False, "restartCount": 0,
                                                "state": {"waiting": {"reason": "PodInitializing"}}}]}}
    kube.call("PATCH", PODS.path(conn.namespace, name, "status"), body=status,
              content_type="application/strategic-merge-patch+json")
    yield created
    kube.call("DELETE", PODS.path(conn.namespace, name), query={"gracePeriodSeconds": 0})


def _event(conn: Connection, pod: dict, reason: str, **stamps: str) -> dict:
    meta = pod["metadata"]
    body = {"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{reason.lower()}", "namespace": conn.namespace},
            "involvedObject": {"kind": "Pod", "name": meta["name"], "namespace": conn.namespace,
                               "uid": meta["uid"], "apiVersion": "v1"},
            "reason": reason, "message": f"{reason} event", "type": "Normal",
            "source": {"component": "jhtutorial-test"}, **stamps}
    if "eventTime" in stamps:  # a new-style event names who reported it
        body.update(reportingComponent="jhtutorial-test", reportingInstance="test", action="Testing")
    return KubeApi(conn.api).call("POST", EVENTS.path(conn.namespace), body=body)


@pytest.mark.cluster
def test_a_waiting_pod_reads_the_same_in_the_table_and_the_live_view(
    conn: Connection, unscheduled_pod: dict
) -> None:
    name = unscheduled_pod["metadata"]["name"]
    table = nb.get(conn, "pods", selector=f"test={name}")
    header, row = table.splitlines()
    status = row.split()[header.split().index("STATUS")]
    assert status == "Init:ImagePullBackOff", table  # what kubectl get pods prints
    view = LiveView(conn, events=False)  # never started: lists once
    [seen] = [r for r in view.rows() if r.name == name]
    assert seen.phase == "Init:ImagePullBackOff" and seen.ready == "0/1"


@pytest.mark.cluster
def test_events_a_fraction_of_a_second_apart_keep_their_order_everywhere(
    conn: Connection, unscheduled_pod: dict
) -> None:
    name = unscheduled_pod["metadata"]["name"]
    older = _event(conn, unscheduled_pod, "Older", firstTimestamp=WHOLE_SECOND, lastTimestamp=WHOLE_SECOND)
    newer = _event(conn, unscheduled_pod, "Newer", eventTime=HALF_A_SECOND_LATER)
    assert older["lastTimestamp"] == WHOLE_SECOND and newer["eventTime"] == HALF_A_SECOND_LATER  # as stored
    # the events of one object, oldest first (kubectl describe)
    assert [line.split()[1] for line in nb.events(conn, "Pod", name).splitlines()[1:]] == ["Older", "Newer"]
    # the live view's latest event of the pod
    [seen] = [r for r in LiveView(conn).rows() if r.name == name]
    assert seen.event_reason == "Newer"
    # a wait that times out names the events in the order they happened
    with pytest.raises(WaitTimeout) as caught:
        wait_pod_ready(name, conn=conn, timeout=1)
    text = str(caught.value)
    assert "Older" in text and "Newer" in text and text.index("Older") < text.index("Newer"), text


@pytest.mark.cluster
def test_a_claim_on_a_class_that_waits_for_its_pod_is_judged_alike_by_the_step_check_and_the_wait(
    conn: Connection,
) -> None:
    """A PVC naming a (non-default) StorageClass with WaitForFirstConsumer stays Pending until a pod uses it:
    the step check, the classroom and the wait must all read that class's mode, not only the default's."""
    from jhtutorial.kubeapi import PVCS, STORAGE_CLASSES
    from jhtutorial.steps import _check_pvcs
    from jhtutorial.waits import claim_binding_mode, pvc_bound, wait_pvc_bound

    kube = KubeApi(conn.api)
    class_name = f"jht-test-waits-{secrets.token_hex(3)}"  # not marked default: other namespaces never see it
    kube.call("POST", STORAGE_CLASSES.path(), body={
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": class_name},
        "provisioner": "example.com/none", "volumeBindingMode": "WaitForFirstConsumer"})
    try:
        claim = kube.call("POST", PVCS.path(conn.namespace), body={
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "waits-for-its-pod"},
            "spec": {"storageClassName": class_name, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Mi"}}}})
        assert claim_binding_mode(conn, claim) == "WaitForFirstConsumer"
        assert claim_binding_mode(conn, {"spec": {}}) == conn.volume_binding_mode  # no class: the default's
        [(_, verdict)] = _check_pvcs(conn, [claim])
        assert verdict.done, verdict.summary
        assert pvc_bound(claim, claim_binding_mode(conn, claim)) == verdict
        assert wait_pvc_bound("waits-for-its-pod", conn=conn, timeout=10).object["status"]["phase"] == "Pending"
    finally:
        kube.call("DELETE", STORAGE_CLASSES.path(name=class_name))
