"""Classroom mode against the real API server, checked with the learners' own tokens.

A room of three learners is made once for the module (prefix ``jhtcr-<random>``); each test uses one or two
of them as its learners would: with the kubeconfig file `classroom up` wrote, in a separate process where the
command line is what a learner types.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from jhtutorial.classroom import CLASSROOM_LABEL, RoomView, classroom_down, classroom_status, classroom_up
from jhtutorial.classroom.sizing import HEADROOM, tutorial_needs
from jhtutorial.connect import Connection, connect
from jhtutorial.errors import ClassroomError, Forbidden, Unauthorized, WaitTimeout
from jhtutorial.kubeapi import CLUSTER_ROLE_BINDINGS, DEPLOYMENTS, NAMESPACES, PODS, ROLE_BINDINGS, SECRETS, KubeApi
from jhtutorial.localcluster.backing import BACKED_BY_ANNOTATION
from jhtutorial.waits import wait_deployment_available
from tests.kubehelpers import restricted

pytestmark = pytest.mark.cluster
LEARNERS = 3


def jhtutorial(*args: str, kubeconfig: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The command as a learner (or the instructor) runs it: KUBECONFIG names their file, nothing else is set."""
    environment = {k: v for k, v in os.environ.items() if k not in ("JHTUTORIAL_NAMESPACE", "JHTUTORIAL_CONTEXT")}
    environment["KUBECONFIG"] = str(kubeconfig)
    return subprocess.run([sys.executable, "-m", "jhtutorial.cli", *args], capture_output=True, text=True,
                          env=environment, timeout=timeout)


@pytest.fixture(scope="module")
def instructor(kubeconfig: Path) -> Iterator[Connection]:
    conn = connect(kubeconfig=kubeconfig, create_namespace=False)
    yield conn
    conn.close()


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"jhtcr-{secrets.token_hex(3)}"


@pytest.fixture(scope="module")
def handout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("handout") / "room"


@pytest.fixture(scope="module")
def room(instructor: Connection, prefix: str, handout: Path) -> Iterator[list[str]]:
    # kept purely simulated: this module is about the room's objects, rights and progress, in either mode of the
    # local cluster; learners whose hubs run in sandboxes are test_classroom_sandboxed's
    made = classroom_up(instructor, learners=LEARNERS, prefix=prefix, output=handout, expires=3600, simulated=True)
    yield [learner.namespace for learner in made.learners]
    classroom_down(instructor, prefix=prefix, wait=False)


def learner_api(handout: Path, namespace: str) -> KubeApi:
    return KubeApi(connect(kubeconfig=handout / f"{namespace}.kubeconfig", namespace=namespace,
                           create_namespace=False).api)


def test_up_makes_namespace_rights_quota_and_a_private_kubeconfig(instructor: Connection, room: list[str],
                                                                   handout: Path, prefix: str) -> None:
    kube = KubeApi(instructor.api)
    assert room == [f"{prefix}-{n}" for n in range(1, LEARNERS + 1)]
    for namespace in room:
        found = kube.get(NAMESPACES.path(name=namespace))
        assert found["metadata"]["labels"][CLASSROOM_LABEL] == prefix
        binding = kube.get(ROLE_BINDINGS.path(namespace, "learner-admin"))
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"}
        quota = kube.get(f"/api/v1/namespaces/{namespace}/resourcequotas/classroom")
        assert quota["spec"]["hard"]["pods"] == str(tutorial_needs().pods * HEADROOM) == "8"
        assert quota["spec"]["hard"]["persistentvolumeclaims"] == "6"
        assert kube.get(f"/api/v1/namespaces/{namespace}/limitranges/classroom")["spec"]["limits"]
        path = handout / f"{namespace}.kubeconfig"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        config = yaml.safe_load(path.read_text())
        assert config["contexts"][0]["context"]["namespace"] == namespace
        assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]).startswith(
            b"-----BEGIN CERTIFICATE-----")
        claims = _claims(config["users"][0]["user"]["token"])
        assert claims["kubernetes.io"]["serviceaccount"]["name"] == "learner"
        assert claims["kubernetes.io"]["secret"]["name"] == "learner-credentials"
        assert 3500 < claims["exp"] - time.time() <= 3600


def test_up_again_keeps_the_learners_and_adds_the_missing_ones(instructor: Connection, room: list[str],
                                                               handout: Path, prefix: str) -> None:
    before = {ns: (handout / f"{ns}.kubeconfig").read_bytes() for ns in room}
    again = classroom_up(instructor, learners=LEARNERS + 1, prefix=prefix, output=handout, expires=3600,
                         simulated=True)
    states = {learner.namespace: (learner.namespace_state, learner.credentials) for learner in again.learners}
    assert states == {**{ns: ("kept", "kept") for ns in room}, f"{prefix}-{LEARNERS + 1}": ("created", "new")}
    assert {ns: (handout / f"{ns}.kubeconfig").read_bytes() for ns in room} == before


def test_up_refuses_a_namespace_outside_the_room(instructor: Connection, prefix: str, handout: Path,
                                                 other_namespace: str) -> None:
    with pytest.raises(ClassroomError, match=f"namespace {other_namespace} already exists and belongs to no classroom"):
        classroom_up(instructor, names=[f"{prefix}-new", other_namespace], prefix=prefix, output=handout)
    assert KubeApi(instructor.api).get_or_none(NAMESPACES.path(name=f"{prefix}-new")) is None  # nothing made


def test_a_learner_is_confined_to_their_namespace(room: list[str], handout: Path) -> None:
    mine, theirs = room[0], room[1]
    kube = learner_api(handout, mine)
    assert kube.get(SECRETS.path(mine))["items"] is not None  # their own: allowed
    with pytest.raises(Forbidden):
        kube.get(SECRETS.path(theirs))
    with pytest.raises(Forbidden):
        kube.get(NAMESPACES.path())
    with pytest.raises(Forbidden):
        kube.call("POST", CLUSTER_ROLE_BINDINGS.path(), body={
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": f"{mine}-takeover"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "learner", "namespace": mine}]})
    # RBAC escalation prevention: admin in the namespace, yet not allowed to grant cluster-admin even there
    with pytest.raises(Forbidden, match="escalat|attempting to grant"):
        kube.call("POST", ROLE_BINDINGS.path(mine), body={
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "takeover"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "ServiceAccount", "name": "learner", "namespace": mine}]})
    # nor lift their quota, nor take their namespace out of the room (which keeps its pods from being backed)
    with pytest.raises(Forbidden):
        kube.call("PATCH", f"/api/v1/namespaces/{mine}/resourcequotas/classroom",
                  body={"spec": {"hard": {"pods": "1000"}}}, content_type="application/merge-patch+json")
    with pytest.raises(Forbidden):
        kube.call("PATCH", NAMESPACES.path(name=mine), body={"metadata": {"labels": {CLASSROOM_LABEL: None}}},
                  content_type="application/merge-patch+json")


def test_the_quota_stops_a_runaway_deployment_with_a_clear_message(instructor: Connection, room: list[str],
                                                                    handout: Path, prefix: str) -> None:
    namespace = room[2]
    conn = connect(kubeconfig=handout / f"{namespace}.kubeconfig", namespace=namespace, create_namespace=False)
    kube = KubeApi(conn.api)
    kube.call("POST", DEPLOYMENTS.path(namespace), body={
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "flood"},
        "spec": {"replicas": 60, "selector": {"matchLabels": {"app": "flood"}},
                 "template": {"metadata": {"labels": {"app": "flood"}},
                              "spec": restricted({"containers": [{"name": "c", "image": "busybox"}]})}}})
    try:
        with pytest.raises(WaitTimeout) as refused:
            wait_deployment_available("flood", conn=conn, timeout=15)
        assert "exceeded quota" in str(refused.value) and "ResourceQuota" in str(refused.value)
        pods = kube.get(PODS.path(namespace), labelSelector="app=flood")["items"]
        assert 0 < len(pods) <= tutorial_needs().pods * HEADROOM
        row = next(r for r in classroom_status(instructor, prefix=prefix).rows if r.namespace == namespace)
        assert "exceeded quota" in row.problem and "flood" in row.problem
    finally:
        kube.call("DELETE", DEPLOYMENTS.path(namespace, "flood"))


def test_withdrawn_and_expired_credentials_say_so(instructor: Connection, room: list[str], handout: Path,
                                                  prefix: str, tmp_path: Path, local_cluster) -> None:
    namespace = room[1]
    path = handout / f"{namespace}.kubeconfig"
    old = tmp_path / "old.kubeconfig"
    old.write_bytes(path.read_bytes())
    old.chmod(0o600)

    if local_cluster is not None:  # a token of this very ServiceAccount, expired: signed with the cluster's key
        expired = tmp_path / "expired.kubeconfig"
        config = yaml.safe_load(old.read_text())
        config["users"][0]["user"]["token"] = _expired_copy(config["users"][0]["user"]["token"], local_cluster)
        expired.write_text(yaml.safe_dump(config))
        result = jhtutorial("status", kubeconfig=expired)
        assert result.returncode == 4, result.stderr
        assert "your credentials expired at" in result.stderr and "ask your instructor" in result.stderr
        assert "Traceback" not in result.stderr
        # the learner's file expired: `up` again renews it (and only it)
        expired.replace(path)
        again = classroom_up(instructor, learners=LEARNERS, prefix=prefix, output=handout, expires=3600,
                             simulated=True)
        renewed = {learner.namespace: learner.credentials for learner in again.learners}
        assert renewed == {**{ns: "kept" for ns in room}, namespace: "renewed"}
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        old.write_bytes(path.read_bytes())  # the renewed file is the one withdrawn next

    path.unlink()  # a lost file: `up` writes a new one, bound to a new Secret, which withdraws the old token
    again = classroom_up(instructor, learners=LEARNERS, prefix=prefix, output=handout, expires=3600,
                             simulated=True)
    assert {(l.namespace, l.credentials) for l in again.learners if l.namespace == namespace} == {(namespace, "new")}
    result = jhtutorial("status", kubeconfig=old)
    assert result.returncode == 4
    assert "your credentials were withdrawn" in result.stderr and "Secret/learner-credentials" in result.stderr
    assert "ask your instructor" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(Unauthorized, match="withdrawn"):
        connect(kubeconfig=old, namespace=namespace, create_namespace=False)
    assert jhtutorial("status", kubeconfig=path).returncode == 1  # the new file works (nothing applied yet)


def test_two_learners_run_the_whole_series_at_once_with_nothing_but_their_kubeconfig(
        instructor: Connection, room: list[str], handout: Path, prefix: str, tmp_path: Path) -> None:
    """Notebooks 00-08 for two learners side by side, each in a process whose only setting is KUBECONFIG."""
    pair = room[:2]

    def series(namespace: str) -> subprocess.CompletedProcess[str]:
        return jhtutorial("run", "--output", str(tmp_path / namespace), kubeconfig=handout / f"{namespace}.kubeconfig",
                          timeout=900)

    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(pair, pool.map(series, pair)))
    for namespace, result in results.items():
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all 9 notebooks passed" in result.stdout
        # the namespace came from the file's context, and the cluster-wide reads degraded instead of failing
        introduction = (tmp_path / namespace / "00-introduction.ipynb").read_text()
        assert f"namespace:  {namespace}" in introduction
    rows = {row.namespace: row for row in classroom_status(instructor, prefix=prefix).rows}
    for namespace in pair:  # 08 cleaned up after a hub ran: the table says so
        assert rows[namespace].cleaned and rows[namespace].marks == ["-"] * 6, rows[namespace]


def test_the_cli_works_in_the_learners_namespace_and_nowhere_else(instructor: Connection, room: list[str],
                                                                  handout: Path, prefix: str) -> None:
    mine = handout / f"{room[0]}.kubeconfig"
    up = jhtutorial("up", kubeconfig=mine)
    assert up.returncode == 0, up.stderr
    assert f"applied in namespace {room[0]}" in up.stdout
    assert jhtutorial("status", kubeconfig=mine).returncode == 0
    table = classroom_status(instructor, prefix=prefix)
    rows = {row.namespace: row for row in table.rows}
    assert rows[room[0]].marks == ["ok"] * 6, str(table)
    assert "learners' pods are simulated" in str(table)
    # no process runs for a learner's pod: the local cluster's supervisor leaves a simulated room alone
    pods = KubeApi(instructor.api).get(PODS.path(room[0]))["items"]
    assert pods and not any(BACKED_BY_ANNOTATION in (p["metadata"].get("annotations") or {}) for p in pods)
    elsewhere = jhtutorial("up", "-n", room[2], kubeconfig=mine)
    assert elsewhere.returncode == 6 and f"in namespace {room[2]}" in elsewhere.stderr, elsewhere.stderr
    down = jhtutorial("down", kubeconfig=mine)
    assert down.returncode == 0, down.stderr


def test_jupyterlab_with_a_learners_kubeconfig_works_in_their_namespace(room: list[str], handout: Path,
                                                                      tmp_path: Path) -> None:
    """`KUBECONFIG=FILE jhtutorial lab`: its terminals' kubectl applies the manifests in the learner's namespace
    (named by the file, no option) and is refused anywhere else."""
    from tests.test_lab import start_lab, stop_lab

    mine, theirs = room[0], room[2]
    folder = tmp_path / "learner"
    folder.mkdir()
    lab = start_lab(handout / f"{mine}.kubeconfig", folder)
    try:
        shown = lab.terminal("kubectl config view --minify -o jsonpath='{..namespace}'; echo", until="context")
        assert mine in shown, shown
        applied = lab.terminal("kubectl apply --server-side -f manifests/rbac.yaml", until="applied")
        assert "serviceaccount/hub serverside-applied" in applied, applied
        refused = lab.terminal(f"kubectl get secrets -n {theirs}", until="refused")
        assert "Forbidden" in refused and f'in the namespace "{theirs}"' in refused, refused
    finally:
        stop_lab(lab)


def test_status_names_a_pending_claim_and_a_pod_that_is_not_ready(instructor: Connection, room: list[str],
                                                                   handout: Path, prefix: str) -> None:
    namespace = room[1]
    kube = learner_api(handout, namespace)

    def problem() -> str:
        return next(r for r in classroom_status(instructor, prefix=prefix).rows if r.namespace == namespace).problem

    kube.call("POST", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims", body={
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "claim-typo"},
        "spec": {"storageClassName": "no-such-class", "accessModes": ["ReadWriteOnce"],
                 "resources": {"requests": {"storage": "1Gi"}}}})
    kube.call("POST", PODS.path(namespace), body={
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "jupyter-nowhere"},
        "spec": restricted({"nodeSelector": {"no-such-label": "x"}, "containers": [{"name": "c", "image": "busybox"}]})})
    try:
        deadline = time.monotonic() + 20
        while "FailedScheduling" not in problem() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert problem().startswith("Pod jupyter-nowhere: Pending, not Ready; FailedScheduling"), problem()
        kube.call("DELETE", PODS.path(namespace, "jupyter-nowhere"), body={"gracePeriodSeconds": 0})
        deadline = time.monotonic() + 20
        while not problem().startswith("PersistentVolumeClaim") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert problem().startswith("PersistentVolumeClaim claim-typo: Pending"), problem()
    finally:
        kube.call("DELETE", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/claim-typo")


def test_the_room_view_follows_a_learner(instructor: Connection, room: list[str], handout: Path, prefix: str) -> None:
    view = RoomView(instructor, prefix=prefix, interval=0.1).start()
    try:
        namespace = room[2]
        before = next(row for row in view.rows() if row.namespace == namespace)
        assert before.marks[1] == "-"
        result = jhtutorial("up", "--through", "2", kubeconfig=handout / f"{namespace}.kubeconfig")
        assert result.returncode == 0, result.stderr
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            row = next(row for row in view.rows() if row.namespace == namespace)
            if row.marks[:2] == ["ok", "ok"] and namespace in view.widget.value:
                break
            time.sleep(0.2)
        assert row.marks[:3] == ["ok", "ok", "-"], view.table()
        assert view.renders >= 2
    finally:
        view.stop()


def test_down_removes_the_room_and_nothing_else(instructor: Connection, api_client: client.ApiClient,
                                                tmp_path: Path) -> None:
    prefix = f"jhtcr-{secrets.token_hex(3)}"
    core = client.CoreV1Api(api_client)
    foreign = f"{prefix}-1x"  # a similar name, not in the room
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=foreign)))
    stranger = tmp_path / "out" / "notes.kubeconfig"
    try:
        made = classroom_up(instructor, learners=2, prefix=prefix, output=tmp_path / "out", expires=600)
        stranger.write_text("not ours")
        files = sorted(str(learner.kubeconfig) for learner in made.learners)
        removed = jhtutorial("classroom", "down", "--prefix", prefix, kubeconfig=Path(instructor.kubeconfig))
        assert removed.returncode == 0, removed.stderr
        assert all(f"removed Namespace/{prefix}-{n}" in removed.stdout for n in (1, 2))
        assert all(not Path(f).exists() for f in files) and all(f in removed.stdout for f in files)
        kube = KubeApi(instructor.api)
        assert kube.get(NAMESPACES.path(), labelSelector=f"{CLASSROOM_LABEL}={prefix}")["items"] == []
        assert kube.get_or_none(NAMESPACES.path(name=foreign)) is not None
        assert stranger.read_text() == "not ours"
        again = jhtutorial("classroom", "down", "--prefix", prefix, kubeconfig=Path(instructor.kubeconfig))
        assert again.returncode == 0 and "there is no classroom" in again.stdout
    finally:
        core.delete_namespace(foreign)


def test_classroom_command_usage_errors(kubeconfig: Path) -> None:
    short = jhtutorial("classroom", "up", "--learners", "2", "--expires", "5m", kubeconfig=kubeconfig)
    assert short.returncode == 2 and "at least 10 minutes" in short.stderr
    neither = jhtutorial("classroom", "up", kubeconfig=kubeconfig)
    assert neither.returncode == 1 and "--learners N" in neither.stderr


# --- helpers ---------------------------------------------------------------------------------------


def _claims(token: str) -> dict:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def _expired_copy(token: str, cluster) -> str:
    """The same token with its lifetime moved into the past, signed with the API server's own ServiceAccount
    key (the local cluster's key file is on this machine): the server then rejects it as expired, which no
    TokenRequest can produce in less than ten minutes."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    key_file = _apiserver_flag(cluster, "--service-account-signing-key-file")
    key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    header_part, payload_part, _ = token.split(".")
    claims = _claims(token)
    now = int(time.time())
    claims.update(iat=now - 900, nbf=now - 900, exp=now - 60)
    payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    signed = f"{header_part}.{payload}".encode()
    signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    return f"{header_part}.{payload}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _apiserver_flag(cluster, flag: str) -> str:
    pid = cluster.component_pids().get("kube-apiserver")
    assert pid, "the local cluster's kube-apiserver is not running"
    arguments = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    for index, argument in enumerate(arguments):
        if argument.startswith(flag + "="):
            return argument.split("=", 1)[1]
        if argument == flag:
            return arguments[index + 1]
    raise AssertionError(f"kube-apiserver runs without {flag}")


def test_the_instructor_notebook_shows_the_room(kubeconfig: Path, room: list[str], prefix: str, handout: Path,
                                                tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """notebooks/instructor/classroom.ipynb, headless: completes the room (idempotent) and prints its table."""
    import papermill

    notebook = Path(__file__).resolve().parent.parent / "notebooks" / "instructor" / "classroom.ipynb"
    executed = tmp_path / "classroom.ipynb"
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))  # the kernel inherits it
    papermill.execute_notebook(str(notebook), str(executed), kernel_name="python3", progress_bar=False,
                               parameters={"prefix": prefix, "learners": LEARNERS, "output": str(handout),
                                           "interactive": False})
    text = executed.read_text()
    assert f"classroom '{prefix}': {LEARNERS} learner(s), 0 new" in text  # the module's room, kept as it was
    assert all(namespace in text for namespace in room) and "LATEST PROBLEM" in text
