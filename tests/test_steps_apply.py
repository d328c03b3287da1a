"""The step registry and apply(): order, convergence, the generated token, all-or-nothing failures."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jhtutorial import manifests
from jhtutorial.apply import ApplyResult, apply
from jhtutorial.connect import Connection, connect
from jhtutorial.errors import (
    ApplyRejected,
    Forbidden,
    ManifestError,
    NoDefaultStorageClass,
    StepError,
    StepOutOfOrder,
    UnknownStep,
)
from jhtutorial.steps import STEPS, get_step
from kubehelpers import namespace_admin_kubeconfig, service_account_kubeconfig

PLACEHOLDER = manifests.PROXY_TOKEN_PLACEHOLDER

# --- the registry ---------------------------------------------------------------------------------


def test_registry_follows_the_original_order_and_covers_every_manifest_once() -> None:
    assert [s.key for s in STEPS] == [
        "01-rbac", "02-configmaps", "03-secret", "04-pvc", "05-services", "06-deployments",
        "07-login-and-spawn", "08-cleanup",
    ]
    files = [name for step in STEPS for name in step.files]
    assert files == list(manifests.MANIFEST_FILES)
    for step in STEPS:
        assert step.done_when and step.title
        if step.files:
            assert step.objects(), step.key  # every listed file loads and holds objects


@pytest.mark.parametrize("key", [4, "4", "04", "pvc", "04-pvc", " PVC "])
def test_get_step_accepts_numbers_names_and_keys(key: object) -> None:
    assert get_step(key).slug == "pvc"  # type: ignore[arg-type]


def test_unknown_step_lists_the_real_ones() -> None:
    with pytest.raises(UnknownStep) as caught:
        get_step("deploy")
    assert "06-deployments" in caught.value.fix and caught.value.exit_code == 5


def test_kubectl_commands_a_learner_would_type() -> None:
    assert get_step("rbac").kubectl("jhub") == "kubectl apply --server-side -n jhub -f manifests/rbac.yaml"
    assert get_step("services").kubectl("x").count(" -f manifests/svc-") == 4
    secret = get_step("secret").kubectl("jhub")
    assert "openssl rand -hex 32" in secret and PLACEHOLDER in secret and secret.endswith("-n jhub -f -")


def test_commands_that_name_manifest_files_say_where_to_type_them() -> None:
    from jhtutorial.steps import WHERE_TO_TYPE, by_hand

    assert by_hand(get_step("rbac").kubectl("jhub")).startswith("the same by hand (in the folder holding manifests/): kubectl")
    assert by_hand("kubectl get pods -n jhub --watch") == "the same by hand: kubectl get pods -n jhub --watch"
    assert "manifests/" in WHERE_TO_TYPE and "jhtutorial lab" in WHERE_TO_TYPE


# --- against the cluster ----------------------------------------------------------------------------


@pytest.mark.cluster
def test_the_step_commands_work_in_the_lab_working_copy_and_not_elsewhere(
    kubectl: Path, kubeconfig: Path, other_namespace: str, api_client: client.ApiClient, tmp_path: Path
) -> None:
    """What the notebooks show is typed in a shell: in the working copy `jhtutorial lab` opens (where its
    terminals start) it applies the step; in a folder without manifests/ the same line finds no file."""
    from jhtutorial.workbook import NOTEBOOK_DIR, notebooks
    from jhtutorial.shipped import shipped_folder
    from jhtutorial.workingcopy import make_working_copy

    root = make_working_copy(tmp_path / "workbook", notebooks(NOTEBOOK_DIR), manifests.MANIFEST_DIR,
                             shipped_folder("docs")).folder
    env = {**os.environ, "KUBECONFIG": str(kubeconfig), "PATH": f"{kubectl.parent}{os.pathsep}{os.environ['PATH']}"}
    command = get_step("rbac").kubectl(other_namespace)
    wrong = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert wrong.returncode != 0 and "manifests/rbac.yaml" in wrong.stderr
    shown = STEPS[:3] if shutil.which("openssl") else STEPS[:2]  # 03 is a pipeline with sed and openssl
    for step in shown:
        done = subprocess.run(["bash", "-c", step.kubectl(other_namespace)], cwd=root, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, (step.key, done.stderr)
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig, create_namespace=False)
    try:
        assert all(step.check(conn).done for step in shown)
    finally:
        conn.close()
    if len(shown) == 3:
        token = read_token(api_client, other_namespace)
        assert len(token) == 64 and token != PLACEHOLDER




@pytest.fixture(scope="module")
def conn(kubeconfig: Path, namespace: str) -> Iterator[Connection]:
    connection = connect(namespace=namespace, kubeconfig=kubeconfig)
    yield connection
    connection.close()


def read_token(api_client: client.ApiClient, namespace: str) -> str:
    secret = client.CoreV1Api(api_client).read_namespaced_secret("hub-secret", namespace)
    return base64.b64decode(secret.data["proxy.token"]).decode()


@pytest.mark.cluster
def test_every_step_applies_in_order_reaches_done_and_a_rerun_converges(
    conn: Connection, api_client: client.ApiClient, capsys: pytest.CaptureFixture[str]
) -> None:
    first: list[ApplyResult] = []
    for step in STEPS[:6]:
        result = apply(step, conn=conn)
        first.append(result)
        assert result.kubectl == step.kubectl(conn.namespace)
        assert {o.action for o in result.objects} == {"created"}, result
        assert [f"{o.kind}/{o.name}" for o in result.objects] == [
            f"{obj['kind']}/{obj['metadata']['name']}" for obj in step.objects()
        ]
        step.wait(conn, timeout=60)
        status = step.check(conn)
        assert status.done, str(status)
        print(result, status, sep="\n")

    token = read_token(api_client, conn.namespace)
    assert len(token) == 64 and int(token, 16) >= 0 and token != PLACEHOLDER

    again = [apply(step, conn=conn) for step in STEPS[:6]]
    for result in again:
        assert {o.action for o in result.objects} == {"unchanged"}, result
        print(repr(result))
    assert read_token(api_client, conn.namespace) == token  # never overwritten by a re-run

    # the token never shows: not in what apply returns, not in its repr/str, not in anything printed
    out = capsys.readouterr().out
    encoded = base64.b64encode(token.encode()).decode()
    secret_results = [r for r in first + again if r.step.slug == "secret"]
    for result in secret_results:
        for text in (repr(result), str(result), repr(result.objects), repr(result.objects[0].object)):
            assert token not in text and encoded not in text
        assert result.objects[0].object["data"] == {"proxy.token": "(hidden)"}
    assert token not in out and encoded not in out
    assert "proxy.token" in out or "hub-secret" in out  # the output did talk about the Secret


@pytest.mark.cluster
def test_an_existing_token_is_kept_and_a_placeholder_is_replaced(
    kubeconfig: Path, other_namespace: str, api_client: client.ApiClient
) -> None:
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig)
    core = client.CoreV1Api(api_client)
    apply("rbac", conn=conn)
    apply("configmaps", conn=conn)
    # someone applied the file by hand, placeholder and all
    core.create_namespaced_secret(other_namespace, {"metadata": {"name": "hub-secret"},
                                                    "stringData": {"proxy.token": PLACEHOLDER}})
    apply("secret", conn=conn)
    generated = read_token(api_client, other_namespace)
    assert generated != PLACEHOLDER and len(generated) == 64
    # a token the learner chose themselves is theirs to keep
    core.patch_namespaced_secret("hub-secret", other_namespace, {"stringData": {"proxy.token": "my-own-token"}})
    result = apply("secret", conn=conn)
    assert read_token(api_client, other_namespace) == "my-own-token"
    assert "my-own-token" not in repr(result) + str(result) + repr(result.objects[0].object)


@pytest.mark.cluster
def test_a_step_out_of_order_stops_and_names_the_missing_step(
    kubeconfig: Path, other_namespace: str, api_client: client.ApiClient
) -> None:
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig)
    with pytest.raises(StepOutOfOrder) as caught:
        apply("deployments", conn=conn)
    assert "needs steps 01-rbac, 02-configmaps, 03-secret, 04-pvc and 05-services first" in caught.value.problem
    assert "ServiceAccount/hub" in caught.value.problem and "Service/proxy-public" in caught.value.problem
    assert "jhtutorial.apply('rbac'), jhtutorial.apply('configmaps')" in caught.value.fix
    assert f"`jhtutorial up --through 5 -n {other_namespace}`" in caught.value.fix
    apply("rbac", conn=conn)
    with pytest.raises(StepOutOfOrder, match="needs steps 02-configmaps and 03-secret first"):
        apply("pvc", conn=conn)
    apps = client.AppsV1Api(api_client)
    assert apps.list_namespaced_deployment(other_namespace).items == []  # nothing of the later step was made
    assert client.CoreV1Api(api_client).list_namespaced_persistent_volume_claim(other_namespace).items == []


@pytest.mark.cluster
def test_missing_permissions_fail_clearly_and_apply_nothing(
    api_client: client.ApiClient, other_namespace: str, tmp_path: Path
) -> None:
    """This user may create ServiceAccounts but not Roles: not even the ServiceAccounts get made."""
    kubeconfig = service_account_kubeconfig(api_client, other_namespace, "half-rights", [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "create", "patch"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": ["get"]},
    ], tmp_path / "kc")
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig)
    with pytest.raises(Forbidden) as caught:
        apply("rbac", conn=conn)
    err = caught.value
    assert "Role/hub" in err.problem and other_namespace in err.problem
    assert "nothing was applied" in err.problem
    assert "system:serviceaccount:" in err.problem  # the API server's own words: who, what, where
    assert err.exit_code == 6
    core = client.CoreV1Api(api_client)
    for name in ("hub", "proxy"):
        with pytest.raises(ApiException) as missing:
            core.read_namespaced_service_account(name, other_namespace)
        assert missing.value.status == 404


@pytest.mark.cluster
def test_a_namespace_admin_applies_every_step_and_a_rerun_converges(
    api_client: client.ApiClient, other_namespace: str, tmp_path: Path
) -> None:
    """The workshop setup: the built-in admin ClusterRole bound in the learner's namespace, no `bind` verb.

    The dry run of RoleBinding/hub cannot find Role/hub (a dry run stores nothing), so it is checked by its
    real apply, right after the Role's."""
    kubeconfig = namespace_admin_kubeconfig(api_client, other_namespace, tmp_path / "learner")
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig, create_namespace=False)
    try:
        assert not _can(conn, "bind", "roles") and not _can(conn, "escalate", "roles")  # what makes it hard
        first = apply("rbac", conn=conn)
        assert [(f"{o.kind}/{o.name}", o.action) for o in first.objects] == [
            ("ServiceAccount/hub", "created"), ("ServiceAccount/proxy", "created"),
            ("Role/hub", "created"), ("RoleBinding/hub", "created")]
        for step in STEPS[1:6]:
            assert {o.action for o in apply(step, conn=conn).objects} == {"created"}, step.key
            step.wait(conn, timeout=60)
            assert step.check(conn).done, step.key
        for step in STEPS[:6]:
            assert {o.action for o in apply(step, conn=conn).objects} == {"unchanged"}, step.key
    finally:
        conn.close()
    binding = client.RbacAuthorizationV1Api(api_client).read_namespaced_role_binding("hub", other_namespace)
    assert binding.role_ref.name == "hub" and binding.subjects[0].name == "hub"


def _can(conn: Connection, verb: str, resource: str) -> bool:
    from jhtutorial.notebook import can_i

    return can_i(conn, verb, resource, group="rbac.authorization.k8s.io")


@pytest.mark.cluster
def test_a_binding_refused_after_its_role_was_made_undoes_what_the_call_created(
    api_client: client.ApiClient, other_namespace: str, tmp_path: Path
) -> None:
    """This user may create any Role (escalate) but may grant none of them: the binding can only be refused
    by its real apply, after the ServiceAccounts and the Role exist. The call deletes them again."""
    kubeconfig = service_account_kubeconfig(api_client, other_namespace, "escalate-only", [
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "create", "patch", "delete"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles"],
         "verbs": ["get", "create", "patch", "delete", "escalate"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"],
         "verbs": ["get", "create", "patch", "delete"]},
    ], tmp_path / "kc")
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig, create_namespace=False)
    with pytest.raises(Forbidden) as caught:
        apply("rbac", conn=conn)
    err = caught.value
    assert "RoleBinding/hub" in err.problem and "not currently held" in err.problem  # the server's real reason
    assert ("this call had created ServiceAccount/hub, ServiceAccount/proxy, Role/hub and deleted them again"
            in err.problem), err.problem
    assert "grant only permissions you hold" in err.fix
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    assert [sa.metadata.name for sa in core.list_namespaced_service_account(other_namespace).items
            if sa.metadata.name in ("hub", "proxy")] == []
    assert [r.metadata.name for r in rbac.list_namespaced_role(other_namespace).items] == ["escalate-only"]
    assert [b.metadata.name for b in rbac.list_namespaced_role_binding(other_namespace).items] == ["escalate-only"]


@pytest.fixture
def manifest_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of manifests/ that a test may break."""
    folder = tmp_path / "manifests"
    shutil.copytree(manifests.MANIFEST_DIR, folder)
    monkeypatch.setattr(manifests, "MANIFEST_DIR", folder)
    return folder


@pytest.mark.cluster
def test_a_broken_manifest_is_refused_before_anything_is_sent(
    kubeconfig: Path, other_namespace: str, api_client: client.ApiClient, manifest_copy: Path
) -> None:
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig)
    path = manifest_copy / "rbac.yaml"
    path.write_text(path.read_text() + "\n---\nkind: Role\nmetadata: {name: broken\n")
    with pytest.raises(ManifestError) as caught:
        apply("rbac", conn=conn)
    assert "rbac.yaml" in str(caught.value)
    assert client.CoreV1Api(api_client).list_namespaced_service_account(
        other_namespace, field_selector="metadata.name=hub").items == []


@pytest.mark.cluster
def test_an_object_the_server_rejects_leaves_the_step_unapplied(
    kubeconfig: Path, other_namespace: str, api_client: client.ApiClient, manifest_copy: Path
) -> None:
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig)
    apply("rbac", conn=conn)
    path = manifest_copy / "cm-nginx.yaml"  # the third ConfigMap of step 02
    path.write_text(path.read_text().replace("name: nginx-proxy-config", "name: Not_A_Valid_Name", 1))
    with pytest.raises(ApplyRejected) as caught:
        apply("configmaps", conn=conn)
    assert "Not_A_Valid_Name" in caught.value.problem and "422" in caught.value.problem
    assert "nothing was applied" in caught.value.problem
    names = {cm.metadata.name for cm in client.CoreV1Api(api_client).list_namespaced_config_map(other_namespace).items}
    assert not names & {"hub-config", "nginx-routes"}  # the two valid ones were not applied either


@pytest.mark.cluster
def test_a_binding_to_a_role_that_is_nowhere_names_the_role_not_the_binding(
    api_client: client.ApiClient, other_namespace: str, tmp_path: Path, manifest_copy: Path
) -> None:
    path = manifest_copy / "rbac.yaml"
    text = path.read_text()
    head, binding = text.split("kind: RoleBinding", 1)
    path.write_text(head + "kind: RoleBinding" + binding.replace("  name: hub\n# The proxy", "  name: hub-elsewhere\n"
                                                                 "# The proxy", 1))
    assert "name: hub-elsewhere" in path.read_text()
    kubeconfig = namespace_admin_kubeconfig(api_client, other_namespace, tmp_path / "learner")
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig, create_namespace=False)
    with pytest.raises(ApplyRejected) as caught:
        apply("rbac", conn=conn)
    problem = caught.value.problem
    assert problem.startswith("RoleBinding/hub (from rbac.yaml) grants Role/hub-elsewhere, which does not exist")
    assert "`bind`" in problem and "nothing was applied" in problem
    assert "create Role/hub-elsewhere first" in caught.value.fix
    assert client.CoreV1Api(api_client).list_namespaced_service_account(
        other_namespace, field_selector="metadata.name=hub").items == []


@pytest.mark.cluster
def test_a_manifest_naming_another_namespace_is_refused(
    kubeconfig: Path, other_namespace: str, manifest_copy: Path
) -> None:
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig)
    path = manifest_copy / "rbac.yaml"
    path.write_text(path.read_text().replace("  name: hub\n", "  name: hub\n  namespace: default\n", 1))
    with pytest.raises(ApplyRejected) as caught:
        apply("rbac", conn=conn)
    assert "'default'" in caught.value.problem and "remove metadata.namespace" in caught.value.fix


@pytest.mark.cluster
def test_the_pvc_step_needs_a_default_storage_class(
    kubeconfig: Path, other_namespace: str, api_client: client.ApiClient
) -> None:
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig)
    for step in ("rbac", "configmaps", "secret"):
        apply(step, conn=conn)
    # what connect() reports on a cluster without a default StorageClass (the shared test
    # cluster keeps its default, so the finding is set here rather than the cluster changed)
    conn.default_storage_class = None
    with pytest.raises(NoDefaultStorageClass) as caught:
        apply("pvc", conn=conn)
    assert "hub-db-dir" in caught.value.problem and caught.value.exit_code == 4
    assert client.CoreV1Api(api_client).list_namespaced_persistent_volume_claim(other_namespace).items == []


@pytest.mark.cluster
def test_steps_without_manifests_say_where_to_go(conn: Connection) -> None:
    with pytest.raises(StepError) as caught:
        apply("login-and-spawn", conn=conn)
    assert "no manifests" in caught.value.problem
    assert f"kubectl get pods -n {conn.namespace} --watch" in caught.value.fix


@pytest.mark.cluster
def test_a_hand_edit_makes_a_kubectl_apply_conflict_until_forced(
    kubeconfig: Path, other_namespace: str, api_client: client.ApiClient
) -> None:
    """Server-side apply by field ownership: after `kubectl patch` changed the Role's rules, an apply as kubectl
    stops with a conflict naming that manager and field and changes nothing; --force-conflicts takes it back."""
    conn = connect(namespace=other_namespace, kubeconfig=kubeconfig)
    rbac = client.RbacAuthorizationV1Api(api_client)
    try:
        apply("rbac", conn=conn, manager="kubectl", force_conflicts=False)  # a first apply owns everything
        rbac.patch_namespaced_role("hub", other_namespace, [{"op": "remove", "path": "/rules/0/verbs/4"}],
                                   field_manager="kubectl-patch")
        with pytest.raises(ApplyRejected) as caught:
            apply("rbac", conn=conn, manager="kubectl", force_conflicts=False)
        assert "HTTP 409" in caught.value.problem and 'conflict with "kubectl-patch"' in caught.value.problem
        assert ".rules" in caught.value.problem and "nothing was applied" in caught.value.problem
        assert "--force-conflicts" in caught.value.fix
        assert "delete" not in rbac.read_namespaced_role("hub", other_namespace).rules[0].verbs  # unchanged

        result = apply("rbac", conn=conn, manager="kubectl", force_conflicts=True)
        assert [o.action for o in result.objects if o.kind == "Role"] == ["configured"]
        role = rbac.read_namespaced_role("hub", other_namespace)
        assert "delete" in role.rules[0].verbs
        owners = {entry.manager for entry in role.metadata.managed_fields if "f:rules" in (entry.fields_v1 or {})}
        assert owners == {"kubectl"}
        # the helper's own default still converges whoever changed what
        rbac.patch_namespaced_role("hub", other_namespace, [{"op": "remove", "path": "/rules/0/verbs/4"}],
                                   field_manager="kubectl-patch")
        apply("rbac", conn=conn)
        assert "delete" in rbac.read_namespaced_role("hub", other_namespace).rules[0].verbs
    finally:
        conn.close()
