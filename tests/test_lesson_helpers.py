"""The helpers behind notebooks 00-04's hands-on steps: excerpts of long manifests, field managers and hand
edits, can-i questions, a Secret looked at without its values, the claim that never binds. The pure ones
need no cluster; the others run against a real API server, in a namespace of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import jhtutorial
from jhtutorial import manifests
from jhtutorial import notebook as nb
from jhtutorial.connect import Connection, connect
from jhtutorial.kubeapi import PVCS, SECRETS

# --- pure ---------------------------------------------------------------------------------------


def test_an_excerpt_by_kind_is_that_object_with_its_comment_and_nothing_else() -> None:
    lines = manifests.manifest_path("rbac.yaml").read_text().rstrip("\n").splitlines()
    first, last = nb.excerpt_lines(lines, "Role")
    shown = lines[first:last + 1]
    assert shown[0].startswith("# Only what KubeSpawner uses") and "kind: Role" in shown
    assert "---" not in shown and "kind: RoleBinding" not in shown and "kind: ServiceAccount" not in shown
    assert shown[-1].strip() == 'verbs: ["get", "list", "watch"]'


def test_an_excerpt_by_two_texts_runs_from_the_first_to_the_next_second() -> None:
    lines = manifests.manifest_path("cm-nginx.yaml").read_text().splitlines()
    first, last = nb.excerpt_lines(lines, ("http {", "include conf.d/*.conf;"))
    assert lines[first].strip() == "http {" and lines[last].strip() == "include conf.d/*.conf;"
    assert any("client_max_body_size" in line for line in lines[first:last])


@pytest.mark.parametrize("excerpt", ["Ingress", ("no such text", "x"), ("http {", "no such end")])
def test_an_excerpt_that_is_not_in_the_file_is_a_clear_error(excerpt: object) -> None:
    lines = manifests.manifest_path("cm-nginx.yaml").read_text().splitlines()
    with pytest.raises(jhtutorial.TutorialError) as caught:
        nb.excerpt_lines(lines, excerpt)  # type: ignore[arg-type]
    assert caught.value.fix


def test_managed_fields_read_as_paths_two_levels_deep() -> None:
    fields = {"f:metadata": {"f:labels": {".": {}, "f:app.kubernetes.io/name": {}}}, "f:rules": {},
              "f:data": {"f:jupyterhub_config.py": {}}}
    assert nb.field_paths(fields) == [".metadata.labels", ".rules", ".data.jupyterhub_config.py"]


@pytest.mark.parametrize("text, parts", [
    ("create pods", ("create", "pods", "", False)),
    ("delete deployments.apps", ("delete", "deployments", "apps", False)),
    ("list pods -A", ("list", "pods", "", True)),
])
def test_can_i_questions_read_as_kubectl_writes_them(text: str, parts: tuple) -> None:
    question = nb.Question.parse(text)
    assert (question.verb, question.resource, question.group, question.all_namespaces) == parts


@pytest.mark.parametrize("text", ["pods", "create pods --all", "create pods in prod now"])
def test_a_question_kubectl_would_not_read_is_a_clear_error(text: str) -> None:
    with pytest.raises(jhtutorial.TutorialError) as caught:
        nb.Question.parse(text)
    assert "'create pods'" in caught.value.fix


def test_one_line_of_a_configuration_changes_as_in_an_editor() -> None:
    source = manifests.load_manifest("cm-hub-config.yaml")[0]["data"]["jupyterhub_config.py"]
    edited = nb.set_line(source, "c.KubeSpawner.mem_limit", 'c.KubeSpawner.mem_limit = "2G"')
    changed = [(a, b) for a, b in zip(source.splitlines(), edited.splitlines(), strict=True) if a != b]
    assert changed == [('c.KubeSpawner.mem_limit = "1G"', 'c.KubeSpawner.mem_limit = "2G"')]
    with pytest.raises(jhtutorial.TutorialError):
        nb.set_line(source, "c.Nothing.here", "x")


def test_a_configuration_with_a_typo_stops_the_summary_at_its_line() -> None:
    with pytest.raises(SyntaxError) as caught:
        nb.python_summary("c = get_config()\nc.KubeSpawner.mem_limit = = 1\n", "jupyterhub_config.py")
    assert caught.value.lineno == 2


def test_the_claim_command_is_the_claim_the_answer_creates() -> None:
    import yaml

    command = nb.scratch_claim_command("alice", storage_class="does-not-exist")
    assert command.startswith("kubectl apply -n alice -f - <<'EOF'\n") and command.endswith("\nEOF")
    body = yaml.safe_load(command.split("\n", 1)[1].rsplit("\nEOF", 1)[0])
    assert body == nb.scratch_claim("does-not-exist")


# --- against the API server ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def conn(kubeconfig: Path, namespace: str) -> Iterator[Connection]:
    connection = connect(namespace=namespace, kubeconfig=kubeconfig)
    for step in ("rbac", "configmaps", "secret"):
        jhtutorial.apply(step, conn=connection)
    yield connection
    connection.close()


def test_a_hand_edit_shows_as_its_own_field_manager(conn: Connection, capsys: pytest.CaptureFixture[str]) -> None:
    assert nb.field_managers(conn, "configmap/hub-config").splitlines()[1].split()[:3] == [
        "jhtutorial", "Apply", ".data.jupyterhub_config.py,"]
    source = nb.configmap_value(conn, "hub-config", "jupyterhub_config.py")
    edited = nb.set_line(source, "c.KubeSpawner.mem_limit", 'c.KubeSpawner.mem_limit = "2G"')
    nb.change(conn, "configmap/hub-config", {"data": {"jupyterhub_config.py": edited}}, manager="kubectl-edit")
    assert capsys.readouterr().out == "configmap/hub-config changed by field manager kubectl-edit\n"
    assert nb.configmap_value(conn, "hub-config", "jupyterhub_config.py") == edited
    rows = {line.split()[0]: line for line in nb.field_managers(conn, "configmap/hub-config").splitlines()[1:]}
    assert rows["kubectl-edit"].split()[1:] == ["Update", ".data.jupyterhub_config.py"]
    # the file's version back, as the notebook's exercise does it
    with pytest.raises(jhtutorial.ApplyRejected, match='conflict with "kubectl-edit"'):
        jhtutorial.apply("configmaps", conn=conn, manager="kubectl", force_conflicts=False)
    jhtutorial.apply("configmaps", conn=conn, manager="kubectl", force_conflicts=True)
    assert nb.configmap_value(conn, "hub-config", "jupyterhub_config.py") == nb.manifest_value(
        "cm-hub-config.yaml", "jupyterhub_config.py")
    with pytest.raises(jhtutorial.TutorialError, match="KIND/NAME"):
        nb.field_managers(conn, "hub-config")


def test_can_i_answers_for_several_accounts_as_the_authorizer_gives_them(conn: Connection) -> None:
    answers = nb.ask_can_i(conn, ["create pods", "get secrets", "delete deployments.apps", "list pods -A"],
                           accounts=["hub", "proxy"])
    assert answers.allowed("create pods", "hub") is True and answers.allowed("create pods", "proxy") is False
    assert answers.allowed("get secrets", "hub") is False
    assert answers.allowed("list pods -A", "hub") is False  # an admin may ask about all namespaces
    assert str(answers).splitlines()[0].split() == ["CAN", "I", "...", "HUB", "PROXY"]
    assert "list pods (all namespaces)   no    no" in str(answers)
    assert nb.role_rules(conn, "hub").splitlines()[1].split() == ["pods,persistentvolumeclaims",
                                                                  "get,list,watch,create,delete"]


def test_can_i_right_after_a_role_changed_gets_the_new_answer(conn: Connection) -> None:
    """The authorizer learns of a Role's change from its own watch, a moment after it is stored: asked in the
    same millisecond, `until` gets the answer that follows the change, both ways (notebook 01's exercise)."""
    rules = [{"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims"],
              "verbs": ["get", "list", "watch", "create"]},
             {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]}]
    try:
        nb.change(conn, "role/hub", {"rules": rules}, manager="kubectl-patch")
        assert nb.can_i(conn, "delete", "pods", service_account="hub", until=False) is False
    finally:
        jhtutorial.apply("rbac", conn=conn, manager="kubectl", force_conflicts=True)
    assert nb.can_i(conn, "delete", "pods", service_account="hub", until=True) is True
    # a question that cannot come true returns its last answer when the time is up
    assert nb.can_i(conn, "get", "secrets", service_account="hub", until=True, timeout=0.3) is False


def test_requests_as_the_hub_are_allowed_and_refused_by_its_role(
    conn: Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    nb.requests_as(conn, "hub", "list pods", "list secrets")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "as hub: list pods    -> allowed, 0 pods"
    assert lines[1].startswith("as hub: list secrets -> 403 Forbidden: secrets is forbidden")


def test_a_secret_is_measured_and_described_without_its_value(conn: Connection) -> None:
    import base64

    token = base64.b64decode(nb.kube(conn).get(SECRETS.path(conn.namespace, "hub-secret"))["data"]["proxy.token"])
    shape = nb.secret_value_shape(conn, "hub-secret", "proxy.token")
    assert (shape.length, shape.hexadecimal, shape.placeholder) == (64, True, False)
    described = nb.describe_secret(conn, "hub-secret")
    assert "proxy.token:  64 bytes" in described
    for text in (str(shape), repr(shape), described):
        assert token.decode() not in text
    with pytest.raises(jhtutorial.TutorialError, match="has no key 'token'"):
        nb.secret_value_shape(conn, "hub-secret", "token")


def test_the_claim_for_a_missing_class_stays_pending_and_its_events_say_why(
    conn: Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    claim = nb.create_scratch_claim(conn, storage_class="does-not-exist")
    again = nb.create_scratch_claim(conn, storage_class="does-not-exist")  # the learner made it already
    assert again["metadata"]["uid"] == claim["metadata"]["uid"]
    events = nb.events(conn, "PersistentVolumeClaim", "scratch", wait=30)
    assert events.splitlines()[1].split()[:2] == ["Warning", "ProvisioningFailed"]
    assert 'storageclass.storage.k8s.io "does-not-exist" not found' in events
    assert nb.kube(conn).get(PVCS.path(conn.namespace, "scratch"))["status"]["phase"] == "Pending"
    nb.delete_scratch_claim(conn, timeout=30)
    nb.delete_scratch_claim(conn, timeout=30)  # gone already: says so
    # made again under the same name: only the new claim's events, as kubectl describe shows them
    nb.create_scratch_claim(conn, storage_class="does-not-exist")
    assert len(nb.events(conn, "PersistentVolumeClaim", "scratch", wait=30).splitlines()) == 2
    nb.delete_scratch_claim(conn, timeout=30)
    out = capsys.readouterr().out
    assert "persistentvolumeclaim/scratch created" in out and "exists already (you made it)" in out
    assert 'persistentvolumeclaim "scratch" deleted' in out and "is gone already" in out
    assert "scratch" not in nb.claim_names(conn)


def test_the_hub_claims_check_passes_when_bound_and_says_what_is_wrong_otherwise(
    conn: Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    jhtutorial.apply("pvc", conn=conn)
    jhtutorial.wait_pvc_bound("hub-db-dir", conn=conn, timeout=60)
    nb.check_hub_claim(conn, nb.claimed_volumes(conn))
    nb.check_hub_claim(conn, None)  # may not read PVs: the volume's name only, and a skip line
    out = capsys.readouterr().out
    assert "ok  hub-db-dir is Bound to a volume that claims it back" in out
    assert "--  the volume claims it back: not checked" in out
    with pytest.raises(AssertionError, match="hub-db-dir is Bound to a volume that claims it back: NO"):
        nb.check_hub_claim(conn, [])  # no volume of this namespace names it
