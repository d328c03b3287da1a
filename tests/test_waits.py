"""Waits: they return on the change, cost the same requests however long they wait, and explain a timeout.

The blocking situations are ones the real control plane produces (the
simulated nodes make every pod Ready, whatever its image): a pod no node has
room for (kube-scheduler), a PVC naming a StorageClass that does not exist
(the PV controller), a quota that refuses pods (the ReplicaSet controller).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from jhtutorial.connect import Connection, connect
from jhtutorial.errors import WaitTimeout
from jhtutorial.kubeapi import CONFIGMAPS
from jhtutorial.waits import (
    Verdict,
    deployment_available,
    has_endpoints,
    pods_ready,
    pvc_bound,
    service_ip_assigned,
    wait_deleted,
    wait_deployment_available,
    wait_pod_ready,
    wait_pods_ready,
    wait_pvc_bound,
    wait_service_endpoints,
)
from tests.kubehelpers import restricted

# --- the conditions, on objects as the API returns them -------------------------------------------


def test_deployment_available_follows_the_rollout_rules() -> None:
    base = {"metadata": {"generation": 2}, "spec": {"replicas": 1}}
    assert deployment_available(None) == Verdict(False, "does not exist")
    assert not deployment_available({**base, "status": {"observedGeneration": 1}}).done
    rolling = {**base, "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1}}
    assert "old replicas" in deployment_available(rolling).summary and not deployment_available(rolling).done
    done = {**base, "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, "availableReplicas": 1}}
    assert deployment_available(done) == Verdict(True, "1/1 replicas available")


def test_pods_ready_ignores_terminating_pods_and_wants_at_least_one() -> None:
    ready = {"metadata": {}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
    leaving = {"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}, "status": {}}
    assert not pods_ready([]).done
    assert pods_ready([ready, leaving]).done
    assert not pods_ready([ready], count=2).done


def test_pvc_and_service_conditions() -> None:
    assert pvc_bound({"status": {"phase": "Bound"}, "spec": {"volumeName": "pv-1"}}).done
    waiting = {"status": {"phase": "Pending"}, "spec": {}}
    assert not pvc_bound(waiting).done
    assert "WaitForFirstConsumer" in pvc_bound(waiting, "WaitForFirstConsumer").summary
    assert pvc_bound(waiting, "WaitForFirstConsumer").done
    node_port = {"spec": {"type": "NodePort", "clusterIP": "10.96.0.9", "ports": [{"nodePort": 30001}]}}
    assert service_ip_assigned(node_port) == Verdict(True, "10.96.0.9, node port 30001")
    assert not has_endpoints([{"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": False}}]}]).done


# --- against the cluster ----------------------------------------------------------------------------



@pytest.fixture(scope="module")
def conn(kubeconfig: Path, namespace: str) -> Iterator[Connection]:
    connection = connect(namespace=namespace, kubeconfig=kubeconfig)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)


@pytest.fixture(scope="module")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def deployment(name: str, *, cpu: str = "10m", replicas: int = 1) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": replicas, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": restricted({"containers": [{
                "name": "main", "image": "registry.example/never-pulled:1",
                "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}, "limits": {"cpu": cpu, "memory": "16Mi"}},
            }]})},
        },
    }


@pytest.mark.cluster
def test_wait_deployment_available_and_its_service_endpoints(conn: Connection, apps, core) -> None:
    apps.create_namespaced_deployment(conn.namespace, deployment("web"))
    core.create_namespaced_service(conn.namespace, {"metadata": {"name": "web"}, "spec": {
        "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    result = wait_deployment_available("web", conn=conn, timeout=60)
    assert result.summary == "1/1 replicas available"
    assert result.object["metadata"]["name"] == "web"
    assert result.requests in (1, 2)  # one list, and a watch unless the list already showed it available
    assert f"{result.requests} requests" in repr(result)
    pods = wait_pods_ready("app=web", conn=conn, timeout=30)
    assert pods.summary.startswith("1/1 pods ready")
    endpoints = wait_service_endpoints("web", conn=conn, timeout=30)
    pod_ip = pods.objects[0]["status"]["podIP"]
    assert pod_ip in endpoints.summary


@pytest.mark.cluster
def test_requests_do_not_grow_with_the_time_a_wait_takes(conn: Connection, core) -> None:
    """The condition comes after 0.3 s or after 3 s: the wait makes the same two requests."""
    core.create_namespaced_config_map(conn.namespace, {"metadata": {"name": "short"}})
    core.create_namespaced_config_map(conn.namespace, {"metadata": {"name": "long"}})
    costs = {}
    for name, delay in (("short", 0.3), ("long", 3.0)):
        timer = threading.Timer(delay, core.delete_namespaced_config_map, (name, conn.namespace))
        timer.start()
        result = wait_deleted(CONFIGMAPS, name, conn=conn, timeout=30)
        timer.join()
        assert result.seconds >= delay * 0.9
        costs[name] = result.requests
    assert costs == {"short": 2, "long": 2}


@pytest.mark.cluster
def test_a_pod_no_node_can_hold_times_out_naming_the_scheduler_reason(conn: Connection, apps) -> None:
    apps.create_namespaced_deployment(conn.namespace, deployment("too-big", cpu="1000"))
    with pytest.raises(WaitTimeout) as caught:
        wait_deployment_available("too-big", conn=conn, timeout=4)
    err = caught.value
    assert "0/1 replicas available" in err.problem
    assert "Insufficient cpu" in err.problem  # the scheduler's own words, from the pod and its event
    assert "FailedScheduling" in err.reasons or "Unschedulable" in err.reasons
    assert "resources.requests" in err.fix
    assert err.exit_code == 7


@pytest.mark.cluster
def test_a_pvc_with_an_unknown_storage_class_times_out_naming_it(conn: Connection, core) -> None:
    core.create_namespaced_persistent_volume_claim(conn.namespace, {"metadata": {"name": "no-class"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "storageClassName": "does-not-exist",
        "resources": {"requests": {"storage": "1Gi"}}}})
    with pytest.raises(WaitTimeout) as caught:
        wait_pvc_bound("no-class", conn=conn, timeout=3)
    err = caught.value
    assert "does-not-exist" in err.problem
    assert "Pending" in err.summary
    assert "StorageClass" in err.fix and "kubectl get storageclass" in err.fix


@pytest.mark.cluster
def test_pods_refused_by_a_quota_time_out_naming_the_quota(kubeconfig: Path, api_client, apps, core) -> None:
    name = f"jht-quota-{int(time.time() * 1000) % 10**8}"
    try:
        conn = connect(namespace=name, kubeconfig=kubeconfig)
        core.create_namespaced_resource_quota(name, {"metadata": {"name": "tiny"}, "spec": {"hard": {"pods": "0"}}})
        wait_for_quota_status(core, name)
        apps.create_namespaced_deployment(name, deployment("refused"))
        with pytest.raises(WaitTimeout) as caught:
            wait_deployment_available("refused", conn=conn, timeout=4)
        err = caught.value
        assert "exceeded quota" in err.problem
        assert "FailedCreate" in err.reasons
        assert "ResourceQuota" in err.fix
    finally:
        core.delete_namespace(name)


@pytest.mark.cluster
def test_waiting_for_something_that_does_not_exist_says_which_step_makes_it(conn: Connection) -> None:
    with pytest.raises(WaitTimeout) as caught:
        wait_deployment_available("hub-that-is-not-there", conn=conn, timeout=1)
    assert "does not exist" in caught.value.problem
    assert "apply('deployments')" in caught.value.fix
    with pytest.raises(WaitTimeout) as caught:
        wait_service_endpoints("nobody", conn=conn, timeout=1)
    assert "apply('services')" in caught.value.fix


@pytest.mark.cluster
def test_service_without_matching_pods_times_out_saying_so(conn: Connection, core) -> None:
    core.create_namespaced_service(conn.namespace, {"metadata": {"name": "lonely"}, "spec": {
        "selector": {"app": "nobody-has-this-label"}, "ports": [{"port": 80}]}})
    with pytest.raises(WaitTimeout) as caught:
        wait_service_endpoints("lonely", conn=conn, timeout=1.5)
    assert "no pod matches the Service's selector app=nobody-has-this-label" in caught.value.problem


@pytest.mark.cluster
def test_wait_pod_ready_and_timeout_returns_on_time(conn: Connection, core) -> None:
    core.create_namespaced_pod(conn.namespace, {"metadata": {"name": "solo"}, "spec": {"containers": [
        {"name": "c", "image": "registry.example/x:1"}]}})
    assert wait_pod_ready("solo", conn=conn, timeout=30).object["metadata"]["name"] == "solo"
    start = time.monotonic()
    with pytest.raises(WaitTimeout):
        wait_pods_ready("app=none", conn=conn, timeout=1)
    assert time.monotonic() - start < 3  # the timeout is kept even though the stream is silent


def wait_for_quota_status(core: client.CoreV1Api, namespace: str) -> None:
    """The quota controller fills status.hard shortly after creation; until then pods are not checked."""
    from jhtutorial.kubeapi import RESOURCE_QUOTAS
    from jhtutorial.watching import Reflector

    reflector = Reflector(core.api_client, RESOURCE_QUOTAS, namespace)
    for _ in reflector.events(timeout=10):
        quota = reflector.cache.get(f"{namespace}/tiny")
        if quota and (quota.get("status") or {}).get("hard"):
            reflector.stop()
            return
    raise AssertionError("the quota controller did not fill the quota's status")
