"""The notebooks' tables say what `kubectl get` says: the same columns, the same values, for the same objects.

A table captioned as a kubectl command must show what that command prints for those columns. Each test
deploys the workbook's objects (steps 01-06) into a namespace of its own, runs the real kubectl of the
cluster under test, and compares its output with ``nb.get`` column by column and row by row. Only the
columns that hold a moment in time (AGE, CREATED AT) are left out of the helper's tables, on purpose: a
committed notebook must not change with the clock.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

import jhtutorial
from jhtutorial import notebook as nb

TIME_COLUMNS = {"AGE", "CREATED AT"}


def parse_table(text: str) -> tuple[list[str], list[dict[str, str]]]:
    """A `kubectl get` table (or one of ours) as headers and rows.

    kubectl left-aligns every column and separates columns by at least three spaces, so each value starts
    where its header starts; headers may hold one space ("ACCESS MODES"), values too ("standard (default)")."""
    lines = [line for line in text.splitlines() if line.strip()]
    header = lines[0]
    starts = [match.start() for match in re.finditer(r"(?:^|(?<=\s{2}))\S", header)]
    names = [header[start:end].strip() for start, end in zip(starts, [*starts[1:], None])]
    rows = []
    for line in lines[1:]:
        cells = [line[start:end].strip() for start, end in zip(starts, [*starts[1:], None])]
        rows.append(dict(zip(names, cells)))
    return names, rows


def test_parse_table_reads_columns_with_spaces_in_headers_and_values() -> None:
    names, rows = parse_table("NAME                 PROVISIONER   ACCESS MODES   AGE\n"
                              "standard (default)   host-path     RWO            5s\n")
    assert names == ["NAME", "PROVISIONER", "ACCESS MODES", "AGE"]
    assert rows == [{"NAME": "standard (default)", "PROVISIONER": "host-path", "ACCESS MODES": "RWO", "AGE": "5s"}]


def kubectl_get(kubectl: Path, kubeconfig: Path, *args: str) -> str:
    done = subprocess.run([str(kubectl), "get", *args], env={**os.environ, "KUBECONFIG": str(kubeconfig)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def assert_same_table(ours: str, theirs: str) -> None:
    our_names, our_rows = parse_table(ours)
    their_names, their_rows = parse_table(theirs)
    assert our_names == [name for name in their_names if name not in TIME_COLUMNS], (ours, theirs)
    assert len(our_rows) == len(their_rows) > 0, (ours, theirs)
    for our_row, their_row in zip(our_rows, their_rows):
        for name in our_names:
            # RESTARTS "4 (5m ago)": the time since the last restart is left out on purpose
            expected = re.sub(r" \(\S+ ago\)$", "", their_row[name]) if name == "RESTARTS" else their_row[name]
            assert our_row[name] == expected, f"column {name}:\nours:\n{ours}\nkubectl:\n{theirs}"


NAMESPACED = ["pods", "services", "pvc", "deployments", "replicasets", "endpointslices", "configmaps", "secrets",
              "serviceaccounts", "roles", "rolebindings"]


@pytest.mark.parametrize("kind", NAMESPACED)
def test_a_namespaced_table_matches_kubectl_get(kind: str, deployed: jhtutorial.Connection, kubectl: Path,
                                                kubeconfig: Path) -> None:
    ours = nb.get(deployed, kind)
    theirs = kubectl_get(kubectl, kubeconfig, kind, "-n", deployed.namespace, "-l", nb.PART_OF)
    assert_same_table(ours, theirs)


def test_every_object_of_the_namespace_when_no_selector_is_given(
    deployed: jhtutorial.Connection, kubectl: Path, kubeconfig: Path
) -> None:
    """`kubectl get configmaps` without -l also shows kube-root-ca.crt, which Kubernetes puts in every namespace."""
    ours = nb.get(deployed, "configmaps", selector=None)
    assert "kube-root-ca.crt" in ours
    assert_same_table(ours, kubectl_get(kubectl, kubeconfig, "configmaps", "-n", deployed.namespace))


def test_storage_classes_match_kubectl_get(deployed: jhtutorial.Connection, kubectl: Path, kubeconfig: Path) -> None:
    assert_same_table(nb.get(deployed, "storageclasses", selector=None),
                      kubectl_get(kubectl, kubeconfig, "storageclasses"))


def test_persistent_volumes_match_kubectl_get(deployed: jhtutorial.Connection, kubectl: Path,
                                              kubeconfig: Path) -> None:
    volumes = nb.claimed_volumes(deployed, quiet=True)
    assert volumes, "hub-db-dir is bound to a volume"
    names = [volume["metadata"]["name"] for volume in volumes]
    assert_same_table(nb.get(deployed, "pv", objects=volumes), kubectl_get(kubectl, kubeconfig, "pv", *names))


def test_an_endpointslice_without_endpoints_reads_unset_like_kubectl(
    deployed: jhtutorial.Connection, kubectl: Path, kubeconfig: Path
) -> None:
    """A selector that matches no pod: kubectl prints <unset> for PORTS and ENDPOINTS, and so do we."""
    printed = nb.set_selector(deployed, "hub", component="no-such-pod", timeout=60)
    try:
        selector = ("-l", "kubernetes.io/service-name=hub")
        theirs = kubectl_get(kubectl, kubeconfig, "endpointslices", "-n", deployed.namespace, *selector)
        assert "<unset>" in theirs
        assert_same_table(nb.get(deployed, "endpointslices", selector="kubernetes.io/service-name=hub"), theirs)
        assert "<unset>" in printed
    finally:
        nb.set_selector(deployed, "hub", component="hub", timeout=60)


def test_custom_columns_match_kubectl_custom_columns(deployed: jhtutorial.Connection, kubectl: Path,
                                                    kubeconfig: Path) -> None:
    """What kubectl has no column for is shown the way kubectl shows it: -o custom-columns, <none> when unset."""
    columns = {"NAME": ".metadata.name", "AUTOMOUNT": ".automountServiceAccountToken",
               "OWNER": ".metadata.ownerReferences[0].name"}
    spec = ",".join(f"{name}:{path}" for name, path in columns.items())
    for kind in ("serviceaccounts", "pods"):
        ours = nb.get(deployed, kind, columns=columns)
        theirs = kubectl_get(kubectl, kubeconfig, kind, "-n", deployed.namespace, "-l", nb.PART_OF,
                             "-o", f"custom-columns={spec}")
        assert_same_table(ours, theirs)
        assert "<none>" in ours


def test_an_empty_answer_reads_like_kubectl(deployed: jhtutorial.Connection, kubectl: Path,
                                            kubeconfig: Path) -> None:
    done = subprocess.run([str(kubectl), "get", "pods", "-n", deployed.namespace, "-l", "no-such=label"],
                          env={**os.environ, "KUBECONFIG": str(kubeconfig)}, capture_output=True, text=True,
                          timeout=60)
    assert nb.get(deployed, "pods", selector="no-such=label") == done.stderr.strip()



def test_pods_that_are_not_running_read_like_kubectl(deployed: jhtutorial.Connection, kubectl: Path,
                                                     kubeconfig: Path) -> None:
    """STATUS follows kubectl's rules, not the phase: a pod no node can take is Pending, a pod being deleted
    (held by a finalizer) is Terminating; READY counts only ready, running containers."""
    selector = "jhtutorial.test/table=pods"
    kube = nb.kube(deployed)
    path = f"/api/v1/namespaces/{deployed.namespace}/pods"
    container = {"name": "c", "image": "registry.k8s.io/pause:3.10"}
    labels = {"jhtutorial.test/table": "pods"}
    kube.call("POST", path, body={"metadata": {"name": "nowhere", "labels": labels},
                                  "spec": {"containers": [container], "nodeSelector": {"no-such": "node"}}})
    kube.call("POST", path, body={"metadata": {"name": "held", "labels": labels,
                                               "finalizers": ["jhtutorial.test/hold"]},
                                  "spec": {"containers": [container, {**container, "name": "d"}]}})
    try:
        jhtutorial.wait_pod_ready("held", conn=deployed, timeout=60)
        kube.call("DELETE", f"{path}/held")
        theirs = kubectl_get(kubectl, kubeconfig, "pods", "-n", deployed.namespace, "-l", selector)
        assert "Terminating" in theirs and "Pending" in theirs, theirs
        assert_same_table(nb.get(deployed, "pods", selector=selector), theirs)
    finally:
        kube.call("PATCH", f"{path}/held", body={"metadata": {"finalizers": None}},
                  content_type="application/merge-patch+json")
        kube.call("DELETE", f"{path}/nowhere")


def test_pods_in_trouble_read_like_kubectl(deployed: jhtutorial.Connection, kubectl: Path, kubeconfig: Path) -> None:
    """Statuses a kubelet writes (set here through the status subresource, on pods no scheduler takes, so no
    simulated node overwrites them): an init container that cannot pull, a crash loop with restarts, a
    container that exited with an error, one that completed while another still runs."""
    kube = nb.kube(deployed)
    path = f"/api/v1/namespaces/{deployed.namespace}/pods"
    labels = {"jhtutorial.test/table": "trouble"}
    pause = "registry.k8s.io/pause:3.10"
    finished = {"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": "2026-01-01T10:00:00Z",
                               "finishedAt": "2026-01-01T10:00:01Z"}}

    def status(name: str, **fields: object) -> dict:
        return {"name": name, "image": pause, "imageID": "", "ready": False, "restartCount": 0, **fields}

    pods = {
        "init-pull": ({"initContainers": [{"name": "setup", "image": pause}]},
                      {"phase": "Pending",
                       "initContainerStatuses": [status("setup", state={"waiting": {"reason": "ImagePullBackOff"}})],
                       "containerStatuses": [status("c", state={"waiting": {"reason": "PodInitializing"}})]}),
        "crash-loop": ({}, {"phase": "Running", "containerStatuses": [status(
            "c", restartCount=4, state={"waiting": {"reason": "CrashLoopBackOff"}},
            lastState={"terminated": {"exitCode": 1, "reason": "Error", "startedAt": "2026-01-01T10:00:00Z",
                                      "finishedAt": "2026-01-01T10:00:01Z"}})]}),
        "exit-code": ({}, {"phase": "Failed", "containerStatuses": [status(
            "c", state={"terminated": {"exitCode": 3, "startedAt": "2026-01-01T10:00:00Z",
                                       "finishedAt": "2026-01-01T10:00:01Z"}})]}),
        "half-done": ({"containers": [{"name": "c", "image": pause}, {"name": "d", "image": pause}]},
                      {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}],
                       "containerStatuses": [status("c", ready=True, state={"running": {"startedAt": "2026-01-01T10:00:00Z"}}),
                                             status("d", state=finished)]}),
    }
    try:
        for name, (spec, pod_status) in pods.items():
            body = {"metadata": {"name": name, "labels": labels},
                    "spec": {"schedulerName": "jhtutorial-test-no-such-scheduler",
                             "containers": [{"name": "c", "image": pause}], **spec}}
            kube.call("POST", path, body=body)
            kube.call("PATCH", f"{path}/{name}/status", body={"status": pod_status},
                      content_type="application/strategic-merge-patch+json")
        theirs = kubectl_get(kubectl, kubeconfig, "pods", "-n", deployed.namespace, "-l", "jhtutorial.test/table")
        for expected in ("Init:ImagePullBackOff", "CrashLoopBackOff", "ExitCode:3", "NotReady"):
            assert expected in theirs, theirs
        assert_same_table(nb.get(deployed, "pods", selector="jhtutorial.test/table"), theirs)
    finally:
        for name in pods:
            kube.call("DELETE", f"{path}/{name}", query={"gracePeriodSeconds": 0})
