"""connect(): credentials, server check, cluster kind, storage, namespace, and each failure's message."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest
import yaml
from kubernetes import client

from jhtutorial.connect import (
    Connection,
    cluster_configured,
    connect,
    current_connection,
    resolve_namespace,
    validate_namespace,
)
from jhtutorial.errors import (
    ClusterUnreachable,
    ConnectError,
    Forbidden,
    InvalidNamespace,
    NoDefaultStorageClass,
    NoKubeconfig,
    Unauthorized,
    UnknownContext,
)
from kubehelpers import free_port, kubeconfig_file, service_account_kubeconfig

# --- without a cluster ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["jhub", "a", "team-1", "x" * 63, "0abc"])
def test_valid_namespace_names_pass(name: str) -> None:
    validate_namespace(name)


@pytest.mark.parametrize("name", ["My_NS", "-lead", "trail-", "dots.not.allowed", "", "x" * 64, "UPPER"])
def test_invalid_namespace_names_are_refused_with_a_suggestion(name: str) -> None:
    with pytest.raises(InvalidNamespace) as caught:
        validate_namespace(name)
    assert repr(name) in caught.value.problem
    assert "lowercase letters, digits and '-'" in caught.value.fix
    assert caught.value.exit_code == 4


def test_invalid_namespace_is_refused_before_any_network_traffic(tmp_path: Path) -> None:
    # the server does not exist: an InvalidNamespace (not ClusterUnreachable) proves no request went out
    config = kubeconfig_file(tmp_path / "kc", f"https://127.0.0.1:{free_port()}", {"token": "x"}, ca=None)
    with pytest.raises(InvalidNamespace, match="'Bad_Name'"):
        connect(namespace="Bad_Name", kubeconfig=config)


def test_no_kubeconfig_anywhere_says_how_to_get_a_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("JHTUTORIAL_LOCAL_KUBECONFIG", str(tmp_path / "no-local-cluster"))
    with pytest.raises(NoKubeconfig) as caught:
        connect()
    assert "make run" in caught.value.fix and "jhtutorial cluster up" in caught.value.fix


def test_kubeconfig_variable_naming_missing_files_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(NoKubeconfig, match=r"nope\.yaml"):
        connect()


def test_explicit_kubeconfig_that_does_not_exist(tmp_path: Path) -> None:
    with pytest.raises(NoKubeconfig, match="does not exist"):
        connect(kubeconfig=tmp_path / "missing")


def test_kubeconfig_without_current_context_lists_the_contexts(tmp_path: Path) -> None:
    config = kubeconfig_file(tmp_path / "kc", "https://127.0.0.1:1", {"token": "x"}, ca=None, context="alpha")
    text = config.read_text().replace("current-context: alpha", "current-context: ''")
    config.write_text(text)
    with pytest.raises(UnknownContext) as caught:
        connect(kubeconfig=config)
    assert "'alpha'" in caught.value.fix


def test_require_default_storage_class_explains_how_to_make_one() -> None:
    conn = Connection(
        api=client.ApiClient(), namespace="x", context="c", server="https://example.invalid", server_version="v1",
        cluster_kind="other", default_storage_class=None, volume_binding_mode=None, storage_checked=True,
        namespace_created=False, kubeconfig=None,
    )
    with pytest.raises(NoDefaultStorageClass) as caught:
        conn.require_default_storage_class()
    assert "is-default-class" in caught.value.fix
    assert "NO default StorageClass" in str(conn)
    conn.close()


# --- against the cluster ---------------------------------------------------------------------


@pytest.mark.cluster
def test_connect_reports_version_kind_storage_and_creates_the_namespace(
    kubeconfig: Path, api_client: client.ApiClient, local_cluster: object
) -> None:
    name = f"jht-connect-{int(time.time() * 1000) % 10**8}"
    core = client.CoreV1Api(api_client)
    try:
        conn = connect(namespace=name, kubeconfig=kubeconfig)
        assert conn.namespace_created
        assert core.read_namespace(name).metadata.labels["app.kubernetes.io/managed-by"] == "jhtutorial"
        assert conn.server_version.startswith("v1.")
        assert conn.server_version == client.VersionApi(api_client).get_code().git_version
        if local_cluster is not None:
            assert conn.cluster_kind == "local"
            assert conn.context == "kwok-jhtutorial"
            assert conn.default_storage_class == "standard"
            assert conn.volume_binding_mode == "Immediate"
        assert current_connection() is conn
        text = str(conn)
        assert name in text and conn.server_version in text and "(created)" in text

        again = connect(namespace=name, kubeconfig=kubeconfig)  # idempotent: no AlreadyExists
        assert not again.namespace_created
        assert current_connection() is again
    finally:
        core.delete_namespace(name)


@pytest.mark.cluster
def test_falls_back_to_the_local_cluster_when_nothing_else_is_configured(
    local_cluster: object, kubeconfig: Path, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if local_cluster is None:
        pytest.skip("only meaningful with the local cluster")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.setenv("JHTUTORIAL_LOCAL_KUBECONFIG", str(kubeconfig))
    conn = connect(namespace=namespace)
    assert conn.cluster_kind == "local"
    assert conn.kubeconfig == str(kubeconfig)
    assert f"export KUBECONFIG={kubeconfig}" in str(conn)  # a plain kubectl would not find it


@pytest.mark.cluster
def test_unknown_context_lists_the_real_ones(kubeconfig: Path, local_cluster: object) -> None:
    with pytest.raises(UnknownContext) as caught:
        connect(context="no-such-context", kubeconfig=kubeconfig)
    assert "'no-such-context'" in caught.value.problem
    if local_cluster is not None:
        assert "'kwok-jhtutorial'" in caught.value.fix


@pytest.mark.cluster
def test_refused_connection_is_reported_fast(api_client: client.ApiClient, tmp_path: Path) -> None:
    server = f"https://127.0.0.1:{free_port()}"
    config = kubeconfig_file(tmp_path / "kc", server, {"token": "x"}, ca=api_client.configuration.ssl_ca_cert)
    start = time.monotonic()
    with pytest.raises(ClusterUnreachable) as caught:
        connect(kubeconfig=config, timeout=2)
    assert time.monotonic() - start < 2
    assert server in caught.value.problem
    assert "jhtutorial cluster up" in caught.value.fix
    assert isinstance(caught.value, ConnectError) and caught.value.exit_code == 4


@pytest.mark.cluster
def test_silent_server_is_given_up_after_the_timeout(api_client: client.ApiClient, tmp_path: Path) -> None:
    # a listening socket that never answers: the TCP handshake succeeds, TLS never does
    with __import__("socket").socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        server = f"https://127.0.0.1:{silent.getsockname()[1]}"
        config = kubeconfig_file(tmp_path / "kc", server, {"token": "x"}, ca=api_client.configuration.ssl_ca_cert)
        start = time.monotonic()
        with pytest.raises(ClusterUnreachable):
            connect(kubeconfig=config, timeout=1)
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 1.5, elapsed  # one attempt, bounded in total


@pytest.mark.cluster
def test_a_certificate_authority_that_does_not_match_is_a_tls_failure(
    api_client: client.ApiClient, tmp_path: Path
) -> None:
    other_certificate = api_client.configuration.cert_file  # a certificate, but not the one that signed the server's
    if not other_certificate:
        pytest.skip("the admin kubeconfig has no client certificate to use as a wrong CA")
    config = kubeconfig_file(tmp_path / "kc", api_client.configuration.host, {"token": "x"}, ca=other_certificate)
    with pytest.raises(ClusterUnreachable) as caught:
        connect(kubeconfig=config)
    assert "TLS handshake" in caught.value.problem
    assert "certificate authority" in caught.value.fix


@pytest.mark.cluster
def test_wrong_credentials_are_unauthorized(api_client: client.ApiClient, tmp_path: Path) -> None:
    config = kubeconfig_file(tmp_path / "kc", api_client.configuration.host, {"token": "not-a-real-token"},
                             ca=api_client.configuration.ssl_ca_cert)
    with pytest.raises(Unauthorized) as caught:
        connect(kubeconfig=config)
    assert "401" in caught.value.problem
    assert "log in again" in caught.value.fix


@pytest.mark.cluster
def test_a_namespaced_user_connects_without_cluster_wide_rights(
    api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    config = service_account_kubeconfig(
        api_client, namespace, "learner", [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
        tmp_path / "kc",
    )
    conn = connect(namespace=namespace, kubeconfig=config)
    assert not conn.storage_checked  # may not list StorageClasses
    assert conn.require_default_storage_class() == ""  # unknown is not "missing": the PVC's events will tell
    text = str(conn)
    assert "not checked" in text
    assert "not allowed to read namespace" in text
    assert "not allowed to list nodes" in text


@pytest.mark.cluster
def test_a_missing_namespace_the_user_may_not_create_is_forbidden(
    api_client: client.ApiClient, namespace: str, tmp_path: Path
) -> None:
    config = service_account_kubeconfig(api_client, namespace, "learner2", [], tmp_path / "kc")
    # a cluster-wide right to read namespaces but not to create them
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_cluster_role({"metadata": {"name": f"{namespace}-ns-reader"},
                              "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]})
    rbac.create_cluster_role_binding({
        "metadata": {"name": f"{namespace}-ns-reader"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"{namespace}-ns-reader"},
        "subjects": [{"kind": "ServiceAccount", "name": "learner2", "namespace": namespace}],
    })
    try:
        with pytest.raises(Forbidden) as caught:
            connect(namespace=f"{namespace}-absent", kubeconfig=config)
        assert "does not exist and you may not create it" in caught.value.problem
        assert caught.value.exit_code == 6
        with pytest.raises(Exception) as missing:
            client.CoreV1Api(api_client).read_namespace(f"{namespace}-absent")
        assert getattr(missing.value, "status", None) == 404
    finally:
        rbac.delete_cluster_role_binding(f"{namespace}-ns-reader")
        rbac.delete_cluster_role(f"{namespace}-ns-reader")


@pytest.mark.cluster
def test_connect_waits_for_a_terminating_namespace_then_recreates_it(
    api_client: client.ApiClient, kubeconfig: Path
) -> None:
    """A clean-up still running when the learner starts over: connect() waits on a watch, then creates it."""
    name = f"jht-terminating-{int(time.time() * 1000) % 10**8}"
    core = client.CoreV1Api(api_client)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # a finalizer nobody serves keeps the namespace in Terminating until we remove it
    core.create_namespaced_config_map(name, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="held", finalizers=["jhtutorial.test/hold"])))
    core.delete_namespace(name)
    assert core.read_namespace(name).status.phase == "Terminating"

    def release() -> None:
        time.sleep(1.5)
        core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})

    releaser = threading.Thread(target=release)
    releaser.start()
    try:
        start = time.monotonic()
        conn = connect(namespace=name, kubeconfig=kubeconfig, timeout=5)
        assert time.monotonic() - start >= 1.4
        assert conn.namespace_created
        assert core.read_namespace(name).status.phase == "Active"
    finally:
        releaser.join()
        core.delete_namespace(name)


def test_a_forbidden_answer_suggests_what_can_help() -> None:
    from jhtutorial.kubeapi import forbidden_fix

    for cluster_wide in ("GET /api/v1/nodes", "GET /apis/storage.k8s.io/v1/storageclasses", "POST /api/v1/namespaces",
                         "POST /apis/authorization.k8s.io/v1/subjectaccessreviews"):
        fix = forbidden_fix(cluster_wide)
        assert "ClusterRoleBinding" in fix and "a Role in your namespace cannot" in fix, cluster_wide
    for namespaced in ("GET /api/v1/namespaces/alice/secrets", "GET /api/v1/namespaces/alice",
                       "PATCH /apis/apps/v1/namespaces/alice/deployments/hub?dryRun=All"):
        fix = forbidden_fix(namespaced)
        assert "Role in your namespace" in fix and "the notebooks' `namespace` parameter" in fix, namespaced
    assert not [what for what in ("GET /api/v1/nodes", "GET /api/v1/namespaces/a/pods")
                if "connect(" in forbidden_fix(what)]  # Python is no help in a terminal or a parameter cell


# --- replacing the current connection ----------------------------------------------------------


def _sockets_to(server: str) -> set[tuple[str, int]]:
    """Local addresses of this process's open TCP connections to the API server (the kernel's view)."""
    port = urlparse(server).port
    return {tuple(c.laddr) for c in psutil.Process().net_connections(kind="tcp")
            if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED}


def test_a_replaced_connection_closes_its_sockets_unless_a_live_view_still_uses_it(
    kubeconfig: Path, namespace: str, api_client: client.ApiClient
) -> None:
    """Each nb.begin connects anew: the connection it replaces must not keep its pool of sockets open."""
    from jhtutorial.liveview import LiveView

    server = api_client.configuration.host
    baseline = _sockets_to(server)
    first = connect(namespace=namespace, kubeconfig=kubeconfig)
    first_sockets = _sockets_to(server) - baseline
    assert first_sockets  # its requests left a kept-alive socket in its pool
    second = connect(namespace=namespace, kubeconfig=kubeconfig)
    assert current_connection() is second
    assert not first_sockets & _sockets_to(server), "the replaced connection's sockets are still open"
    assert second.api is not first.api

    # a live view started on the current connection keeps it: replacing the connection must not cut its watch
    view = LiveView(second, events=False, age_refresh=None).start()
    try:
        view_sockets = _sockets_to(server) - baseline  # the second connection's, its watch among them
        assert view_sockets
        third = connect(namespace=namespace, kubeconfig=kubeconfig)
        client.CoreV1Api(api_client).create_namespaced_pod(namespace, {
            "metadata": {"name": "seen-after-replacing"},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.10"}]}})
        deadline = time.monotonic() + 30
        while "seen-after-replacing" not in [row.name for row in view.rows()] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert "seen-after-replacing" in [row.name for row in view.rows()]  # the view still follows the pods
        assert view_sockets & _sockets_to(server)  # its watch is still open
    finally:
        view.stop()
    # once the view has stopped, the replaced connection it held is closed too
    assert not view_sockets & _sockets_to(server), "the view's replaced connection is still open after stop()"
    third.close()
    client.CoreV1Api(api_client).delete_namespaced_pod("seen-after-replacing", namespace, grace_period_seconds=0)


@pytest.mark.cluster
def test_connect_works_in_the_namespace_its_context_names(
    kubeconfig: Path, namespace: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kubectl config set-context --current --namespace NS`: connect(), the CLI and the notebooks all use NS
    when no namespace is given, whether the kubeconfig is passed or found through KUBECONFIG."""
    config = yaml.safe_load(kubeconfig.read_text())
    for entry in config["contexts"]:
        entry["context"]["namespace"] = namespace
    own = tmp_path / "kubeconfig"
    own.write_text(yaml.safe_dump(config))
    monkeypatch.delenv("JHTUTORIAL_NAMESPACE", raising=False)
    monkeypatch.delenv("JHTUTORIAL_CONTEXT", raising=False)
    conn = connect(kubeconfig=own, create_namespace=False)
    try:
        assert conn.namespace == namespace
    finally:
        conn.close()
    monkeypatch.setenv("KUBECONFIG", str(own))
    assert resolve_namespace() == namespace
    conn = connect(create_namespace=False)
    try:
        assert conn.namespace == namespace
    finally:
        conn.close()
    monkeypatch.setenv("JHTUTORIAL_NAMESPACE", "from-the-variable")  # the variable still comes first
    assert resolve_namespace(kubeconfig=own) == "from-the-variable"


def test_a_cluster_is_configured_as_kubectl_would_find_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What `jhtutorial run` and `lab` ask before they start the local cluster: the same places connect() reads."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    assert not cluster_configured()
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")  # no service account token: not a pod
    assert not cluster_configured()
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))  # configured, wrongly: connect() will say so
    assert cluster_configured()
    with pytest.raises(NoKubeconfig):
        connect()
    monkeypatch.delenv("KUBECONFIG")
    (tmp_path / ".kube").mkdir()
    kubeconfig_file(tmp_path / ".kube" / "config", "https://127.0.0.1:1", {"token": "x"}, ca=None)
    assert cluster_configured()
