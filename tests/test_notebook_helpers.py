"""The helpers behind notebooks 05, 06 and 08, against a real API server: what they show is what the cluster
holds, the exercises' answers break and fix for real, and running an answer again changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

import jhtutorial
from jhtutorial import notebook as nb

SERVICES = ["hub", "proxy-api", "proxy-http", "proxy-public"]


def test_services_show_what_each_selects_and_its_endpoints(deployed: jhtutorial.Connection) -> None:
    services = {service.name: service for service in nb.services(deployed)}
    assert list(services) == SERVICES
    assert services["hub"].matching_pods == nb.pods(deployed, "hub") and len(services["hub"].matching_pods) == 1
    assert all(services[name].matching_pods == nb.pods(deployed, "proxy") for name in SERVICES[1:])
    assert all(len(service.endpoints) == 1 for service in services.values())
    assert {name: service.component for name, service in services.items()} == {
        "hub": "hub", "proxy-api": "proxy", "proxy-http": "proxy", "proxy-public": "proxy"}
    assert services["proxy-public"].type == "NodePort" and services["hub"].target_port == "http"
    assert nb.service(deployed, "no-such-service") is None
    addresses = nb.service_addresses(deployed)
    assert f"http://hub.{deployed.namespace}.svc.cluster.local:8081" in addresses.splitlines()[1].split()


def test_a_broken_selector_empties_the_endpoints_and_the_fix_brings_them_back(
    deployed: jhtutorial.Connection,
) -> None:
    broken = nb.set_selector(deployed, "hub", component="hubb", timeout=60)
    assert "it selects 0 pod(s) with component=hubb" in broken and "<unset>" in broken
    hub = nb.service(deployed, "hub")
    assert hub is not None and hub.matching_pods == [] and hub.endpoints == []
    assert nb.pods(deployed, "hub"), "the hub pod itself is untouched"
    fixed = nb.set_selector(deployed, "hub", component="hub", timeout=60)
    assert "it selects 1 pod(s) with component=hub" in fixed and "<unset>" not in fixed
    hub = nb.service(deployed, "hub")
    assert hub is not None and hub.matching_pods == nb.pods(deployed, "hub") and len(hub.endpoints) == 1


def test_recreating_a_service_gives_a_new_object_once(deployed: jhtutorial.Connection,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    before = nb.service(deployed, "hub")
    assert before is not None
    nb.recreate_service(deployed, "hub", since=before, timeout=60)
    said = capsys.readouterr().out
    assert f"$ kubectl delete service hub -n {deployed.namespace}" in said
    assert f"No resources found in {deployed.namespace} namespace." in said  # its EndpointSlices went with it
    assert "Service/hub" in said and "created" in said
    after = nb.service(deployed, "hub")
    assert after is not None and after.uid != before.uid
    assert len(after.endpoints) == 1  # the pods were there: it waited for the new Service's endpoints
    nb.recreate_service(deployed, "hub", since=before, timeout=60)  # the learner did it already: nothing to do
    assert "nothing to do" in capsys.readouterr().out
    again = nb.service(deployed, "hub")
    assert again is not None and again.uid == after.uid


def test_owners_and_security_settings_are_read_from_the_running_pods(deployed: jhtutorial.Connection) -> None:
    chains = nb.owner_chains(deployed).splitlines()
    assert len(chains) == 2
    for line, deployment in zip(chains, ("hub", "proxy")):
        pod, replicaset, owner = line.split("  <- ")
        assert pod.startswith(f"Pod {deployment}-") and replicaset.startswith(f"ReplicaSet {deployment}-")
        assert owner == f"Deployment {deployment}"
    containers = {c.where: c for c in nb.containers(deployed)}
    assert set(containers) == {"hub/hub", "proxy/nginx", "proxy/chp"}
    assert all(c.non_root and not c.privilege_escalation and c.capabilities_dropped == "ALL"
               for c in containers.values())
    assert containers["proxy/chp"].read_only_root and not containers["hub/hub"].read_only_root
    assert "ServiceAccount proxy, token mounted: false" in nb.pod_security(deployed)
    assert [(d.name, d.replicas, d.strategy) for d in nb.deployments(deployed)] == [
        ("hub", 1, "Recreate"), ("proxy", 1, "Recreate")]


def test_a_deleted_pod_is_replaced_and_the_summary_says_by_whom(deployed: jhtutorial.Connection) -> None:
    old = nb.pods(deployed, "proxy")
    replaced = nb.delete_and_watch(deployed, "proxy", timeout=120)
    assert replaced.old == old and replaced.new == nb.pods(deployed, "proxy") and replaced.new != old
    replicaset = old[0].rsplit("-", 1)[0]
    assert replaced.summary().splitlines() == [
        f"deleted:     pod {old[0]}",
        f"replacement: pod {replaced.new[0]}, Ready, made by ReplicaSet {replicaset} like the one before"]


def test_the_clean_up_lists_what_is_there_and_says_what_went_without_times(
    deployed: jhtutorial.Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = nb.workbook_objects(deployed).splitlines()
    assert listed[0].split() == ["OBJECT", "MADE", "BY"] and len(listed) == 1 + 15
    assert all(line.endswith("manifests/") for line in listed[1:])
    volumes = nb.claimed_volumes(deployed, quiet=True)
    assert volumes is not None and len(volumes) == 1
    result = jhtutorial.clean_up(deployed, timeout=120)
    assert result.changes()[:2] == ["deleted Deployment/hub", "deleted Deployment/proxy"]
    assert len(result.changes()) == 15 and not any("kubectl" in line or " s" in line for line in result.changes())
    nb.wait_volumes_gone(deployed, volumes, timeout=120)
    assert capsys.readouterr().out == "volumes deleted with their claims: 1\n"
    assert nb.claimed_volumes(deployed, quiet=True) == []
    assert jhtutorial.clean_up(deployed).changes() == [
        f"nothing to remove in namespace {deployed.namespace}: none of the tutorial's objects is there"]
    assert nb.workbook_objects(deployed) == "nothing of the workbook is here"


def test_recreating_a_service_before_any_pod_exists_waits_for_its_endpointslices_to_go(
    kubeconfig: Path, other_namespace: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Notebook 05's case: no pod yet, so the EndpointSlice is empty from the start; it still goes with its
    Service, and the cell shows that only once it has gone."""
    conn = jhtutorial.connect(namespace=other_namespace, kubeconfig=kubeconfig, create_namespace=False)
    try:
        for step in jhtutorial.STEPS[:5]:
            jhtutorial.apply(step, conn=conn)
            step.wait(conn, timeout=60)
        before = nb.service(conn, "hub")
        assert before is not None and before.endpoints == [] and before.matching_pods == []
        for _ in range(3):  # a race shows rarely: try it more than once
            capsys.readouterr()
            nb.recreate_service(conn, "hub", since=before, timeout=60)
            assert f"No resources found in {other_namespace} namespace." in capsys.readouterr().out
            before = nb.service(conn, "hub")
            assert before is not None
    finally:
        conn.close()
