"""Clean-up: everything the tutorial and its hub made goes, nothing else does, and twice is harmless.

The user pod and PVC come from the real KubeSpawner (through login()), so
their labels are the ones KubeSpawner 7 really sets from the tutorial's hub
config; another hub's user pod and PVC (KubeSpawner's generic labels, the same
name pattern) must survive every form of the clean-up.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jhtutorial import STEPS, apply
from jhtutorial import cleanup as cleanup_module
from jhtutorial.cleanup import clean_up, inventory, leftovers
from jhtutorial.connect import Connection, connect
from jhtutorial.errors import Forbidden
from jhtutorial.kubeapi import NAMESPACES, KubeApi
from jhtutorial.localcluster.backing import BACKED_LABEL
from jhtutorial.login import login
from jhtutorial.steps import cleanup_commands
from tests.kubehelpers import foreign_user_server, service_account_kubeconfig

pytestmark = pytest.mark.cluster

PAUSE = "registry.k8s.io/pause:3.10"
TUTORIAL_OBJECTS = 15  # what the twelve manifest files define
PART_OF = "app.kubernetes.io/part-of"
MANIFEST_OBJECTS = [f"{obj['kind']}/{obj['metadata']['name']}" for step in STEPS for obj in step.objects()]


def _deploy(conn: Connection) -> None:
    for step in STEPS:
        if step.files:
            apply(step, conn=conn)
            step.wait(conn)


@pytest.fixture(scope="module")
def conn(kubeconfig: Path, namespace: str) -> Iterator[Connection]:
    connection = connect(namespace=namespace, kubeconfig=kubeconfig)
    yield connection
    connection.close()


def test_after_login_everything_goes_and_a_second_run_removes_nothing(
    conn: Connection, api_client: client.ApiClient, backing
) -> None:
    # marked as `jhtutorial up` marks its namespaces, so the hub runs (a local process on the local cluster)
    KubeApi(conn.api).call("PATCH", NAMESPACES.path(name=conn.namespace), content_type="application/merge-patch+json",
                           body={"metadata": {"labels": {BACKED_LABEL: "true"}}})
    _deploy(conn)
    login(conn=conn)  # the real KubeSpawner makes jupyter-admin and claim-admin
    core = client.CoreV1Api(api_client)
    # the hub config's labels reach what KubeSpawner 7 creates (KubeSpawner's own labels do not override them)
    assert core.read_namespaced_pod("jupyter-admin", conn.namespace).metadata.labels[PART_OF] == "jhtutorial"
    claim = core.read_namespaced_persistent_volume_claim("claim-admin", conn.namespace)
    assert claim.metadata.labels[PART_OF] == "jhtutorial"
    assert claim.metadata.annotations["hub.jupyter.org/username"] == "admin"
    unrelated = {"metadata": {"name": "not-the-tutorials"},
                 "spec": {"containers": [{"name": "c", "image": PAUSE}]}}
    core.create_namespaced_pod(conn.namespace, unrelated)
    found = leftovers(conn)
    assert found == [*MANIFEST_OBJECTS, "Pod/jupyter-admin", "PersistentVolumeClaim/claim-admin"]  # step order
    assert [(f.label, f.user) for f in inventory(conn) if f.from_hub] == [
        ("Pod/jupyter-admin", "admin"), ("PersistentVolumeClaim/claim-admin", "admin")]

    said: list[str] = []
    result = clean_up(conn, progress=said.append)
    assert len(result.removed) == TUTORIAL_OBJECTS + 2 and not result.left
    assert set(result.from_hub) == {"Pod/jupyter-admin", "PersistentVolumeClaim/claim-admin"}
    # the hub goes first, then what it made, then the files' objects the last step first (as notebook 08 lists)
    assert result.removed == [
        "Deployment/hub", "Deployment/proxy", "Pod/jupyter-admin", "PersistentVolumeClaim/claim-admin",
        "Service/hub", "Service/proxy-api", "Service/proxy-http", "Service/proxy-public",
        "PersistentVolumeClaim/hub-db-dir", "Secret/hub-secret",
        "ConfigMap/hub-config", "ConfigMap/nginx-routes", "ConfigMap/nginx-proxy-config",
        "ServiceAccount/hub", "ServiceAccount/proxy", "Role/hub", "RoleBinding/hub"]
    assert "nothing of the tutorial is left" in str(result)
    assert "Pod/jupyter-admin (created by the hub for user admin)" in str(result)
    # before the home volume goes, the clean-up says which one and whose
    assert "deleting the home volume of user admin: PersistentVolumeClaim/claim-admin" in said
    # verified by the API server, not by our own bookkeeping: only the unrelated pod remains
    assert [p.metadata.name for p in core.list_namespaced_pod(conn.namespace).items] == ["not-the-tutorials"]
    assert core.list_namespaced_persistent_volume_claim(conn.namespace).items == []
    assert leftovers(conn) == []
    assert KubeApi(conn.api).get_or_none(NAMESPACES.path(name=conn.namespace)) is not None  # kept

    again = clean_up(conn)
    assert again.nothing_to_do and again.removed == []
    assert str(again).startswith(f"nothing to remove in namespace {conn.namespace}")
    core.delete_namespaced_pod("not-the-tutorials", conn.namespace, grace_period_seconds=0)


def test_another_hubs_user_pod_and_home_volume_survive(conn: Connection, api_client: client.ApiClient) -> None:
    """KubeSpawner's generic labels and the jupyter-/claim- names are not the tutorial's: only its own label is."""
    core = client.CoreV1Api(api_client)
    pod, pvc = foreign_user_server(api_client, conn.namespace, "bob")
    core.create_namespaced_pod(conn.namespace, {  # the tutorial's own pod name pattern, no label: not ours either
        "metadata": {"name": "jupyter-carol"}, "spec": {"containers": [{"name": "c", "image": PAUSE}]}})
    assert leftovers(conn) == []
    result = clean_up(conn)
    assert result.nothing_to_do and result.removed == []
    assert sorted(p.metadata.name for p in core.list_namespaced_pod(conn.namespace).items) == [
        "jupyter-bob", "jupyter-carol"]
    assert [c.metadata.name for c in core.list_namespaced_persistent_volume_claim(conn.namespace).items] == [
        "claim-bob"]
    for name in (pod, "jupyter-carol"):
        core.delete_namespaced_pod(name, conn.namespace, grace_period_seconds=0)
    core.delete_namespaced_persistent_volume_claim(pvc, conn.namespace)


def test_credentials_that_may_not_delete_are_refused_and_nothing_is_claimed(
    conn: Connection, api_client: client.ApiClient, tmp_path: Path
) -> None:
    apply("rbac", conn=conn)
    reader_rules = [{"apiGroups": ["", "apps", "rbac.authorization.k8s.io"], "resources": ["*"],
                     "verbs": ["get", "list", "watch"]}]
    kubeconfig = service_account_kubeconfig(api_client, conn.namespace, "cleanup-reader", reader_rules,
                                            tmp_path / "kc")
    reader = connect(namespace=conn.namespace, kubeconfig=kubeconfig, create_namespace=False)
    try:
        with pytest.raises(Forbidden) as caught:
            clean_up(reader)
        assert caught.value.exit_code == 6
        assert "cannot delete" in caught.value.problem
    finally:
        reader.close()
    assert "ServiceAccount/hub" in leftovers(conn)  # still there: nothing was deleted
    clean_up(conn)


def test_the_namespace_goes_only_when_asked(kubeconfig: Path, api_client: client.ApiClient) -> None:
    name = f"jht-cleanup-ns-{secrets.token_hex(3)}"
    own = connect(namespace=name, kubeconfig=kubeconfig)
    try:
        apply("rbac", conn=own)
        result = clean_up(own, delete_namespace=True)
        assert result.namespace_deleted and len(result.removed) == 4
        assert f"namespace {name} deleted" in str(result)
        with pytest.raises(ApiException) as gone:
            client.CoreV1Api(api_client).read_namespace(name)
        assert gone.value.status == 404
    finally:
        own.close()


def test_the_clean_up_by_hand_deletes_the_deployments_first_and_leaves_nothing(
    kubectl: Path, kubeconfig: Path, other_namespace: str, api_client: client.ApiClient, tmp_path: Path, backing
) -> None:
    """The line clean_up() and `jhtutorial down` print, as notebook 08 shows it, typed in any folder."""
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig, create_namespace=False)
    try:
        KubeApi(conn.api).call("PATCH", NAMESPACES.path(name=conn.namespace),
                               content_type="application/merge-patch+json",
                               body={"metadata": {"labels": {BACKED_LABEL: "true"}}})  # so the hub runs
        _deploy(conn)
        login(conn=conn)
        foreign_user_server(api_client, other_namespace, "bob")
        line = cleanup_module._kubectl(other_namespace, False)  # what CleanupResult.kubectl holds
        commands = cleanup_commands(other_namespace)
        assert line == " && ".join(commands)
        assert commands[0].startswith(f"kubectl delete -n {other_namespace} deployments -l {PART_OF}=jhtutorial")
        assert all(f" -l {PART_OF}=jhtutorial" in command for command in commands)  # one selector, nothing else
        env = {**os.environ, "KUBECONFIG": str(kubeconfig),
               "PATH": f"{kubectl.parent}{os.pathsep}{os.environ['PATH']}"}
        done = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines[0].startswith('deployment.apps "hub" deleted'), lines  # the hub goes first
        assert 'persistentvolumeclaim "claim-admin" deleted' in done.stdout
        assert leftovers(conn) == []
        core = client.CoreV1Api(api_client)  # another hub's user pod and home volume are still there
        assert [p.metadata.name for p in core.list_namespaced_pod(other_namespace).items] == ["jupyter-bob"]
        assert [c.metadata.name for c in core.list_namespaced_persistent_volume_claim(other_namespace).items] == [
            "claim-bob"]
        assert STEPS[-1].kubectl(other_namespace) == line  # step 08's command is the same
    finally:
        conn.close()
