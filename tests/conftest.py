"""Shared fixtures: one real API server for the whole run, a fresh namespace per module.

By default the local simulated cluster is started (or reused). To run the
suite against another cluster instead, point JHTUTORIAL_TEST_KUBECONFIG at its
kubeconfig (the tests create and delete their own namespaces there).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from jhtutorial.localcluster import LocalCluster

TEST_LABEL = "jhtutorial.test"

#: Fixtures that reach the API server: a test using any of them (directly or through another
#: fixture) is a cluster test, so `pytest -m "not cluster"` leaves it out without a hand-written mark.
CLUSTER_FIXTURES = frozenset({"local_cluster", "kubeconfig", "kubectl", "api_client", "namespace", "other_namespace",
                              "backing", "sandboxed"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if CLUSTER_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cluster)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: runs the workbook in JupyterLab in Chromium (tests/test_browser.py)")


def pytest_report_header(config: pytest.Config) -> str | None:
    """One line when the browser tests cannot run here (they skip, or fail when CI=true)."""
    from tests.labdriver import in_ci, missing_browser

    reason = missing_browser()
    if reason is None:
        return None
    return f"{reason}: {'they FAIL (CI=true)' if in_ci() else 'they are skipped'}"


@pytest.fixture(scope="session")
def local_cluster() -> LocalCluster | None:
    """The local cluster, or None when the suite runs against a cluster of the user's."""
    if os.environ.get("JHTUTORIAL_TEST_KUBECONFIG"):
        return None
    cluster = LocalCluster()
    cluster.up()
    return cluster


@contextlib.contextmanager
def scratch_cluster(state: Path) -> Iterator[LocalCluster]:
    """A local cluster of its own in the state folder ``state`` (the session's is left alone), whose backed pods
    run in sandboxes; JHTUTORIAL_STATE names it while it is in use, so that what the tests call finds it.
    Removed at the end."""
    from jhtutorial.localcluster.backing.sandbox import unavailable_reasons

    reasons = unavailable_reasons()
    if reasons:
        pytest.fail("pod sandboxes cannot be made on this machine: " + "; ".join(str(r) for r in reasons))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JHTUTORIAL_STATE", str(state))
        patch.delenv("JHTUTORIAL_LOCAL_KUBECONFIG", raising=False)
        cluster = LocalCluster(progress=lambda _: None)
        cluster.up()
        try:
            problems = cluster.supervisor.status().get("sandbox_problems")
            assert not problems, f"the supervisor cannot make sandboxes: {problems}"
            yield cluster
        finally:
            cluster.down()


@pytest.fixture(scope="module")
def sandboxed_cluster(local_cluster: LocalCluster | None,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A local cluster of the module's own (its backed pods run in sandboxes, made by root here)."""
    if local_cluster is None or os.geteuid() != 0:
        pytest.skip("pod sandboxes exist on the local simulated cluster, made by root")
    with scratch_cluster(tmp_path_factory.mktemp("sandboxed") / "state") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def kubeconfig(local_cluster: LocalCluster | None) -> Path:
    if local_cluster is None:
        return Path(os.environ["JHTUTORIAL_TEST_KUBECONFIG"])
    return local_cluster.kubeconfig


@pytest.fixture(scope="session")
def kubectl(local_cluster: LocalCluster | None) -> Path:
    """A kubectl for the cluster under test: the local cluster's own, else the one on PATH."""
    if local_cluster is not None:
        from jhtutorial.localcluster import ensure_binaries

        return Path(ensure_binaries().kubectl)
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("no kubectl on PATH for the cluster under test")
    return Path(found)


@pytest.fixture(scope="session")
def api_client(kubeconfig: Path) -> Iterator[client.ApiClient]:
    """An admin client for the cluster under test."""
    api = config.new_client_from_config(config_file=str(kubeconfig))
    yield api
    api.close()


def _fresh_namespace(api_client: client.ApiClient, hint: str) -> Iterator[str]:
    core = client.CoreV1Api(api_client)
    base = re.sub(r"[^a-z0-9-]+", "-", hint.lower()).strip("-")[:40]
    name = f"jht-{base}-{secrets.token_hex(3)}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels={TEST_LABEL: "true"})))
    try:
        yield name
    finally:
        core.delete_namespace(name, propagation_policy="Background")


@pytest.fixture(scope="module")
def namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of its own for each test module, deleted afterwards."""
    yield from _fresh_namespace(api_client, request.module.__name__.removeprefix("tests.").removeprefix("test_"))


@pytest.fixture
def other_namespace(api_client: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A second namespace, for tests about isolation between namespaces."""
    yield from _fresh_namespace(api_client, f"other-{request.node.name}")


@pytest.fixture(scope="session")
def backing(local_cluster: LocalCluster | None, kubectl: Path, kubeconfig: Path) -> LocalCluster | None:
    """On the local cluster: its supervisor runs, and kwok's PortForward/Logs resources exist, so pods in a
    namespace marked for backing run their programs and `kubectl port-forward` reaches them. Skips (saying how
    to fix it) on a local cluster made before those existed. None on a cluster with containers."""
    if local_cluster is None:
        return None
    import subprocess

    found = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "get", "crd",
                            "portforwards.kwok.x-k8s.io", "logs.kwok.x-k8s.io"], capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip("the local cluster predates kwok's PortForward/Logs resources, so no backed pod can be reached: "
                    "`jhtutorial cluster down` then `jhtutorial cluster up` recreates it with them")
    assert local_cluster.supervisor.pid() is not None, "cluster up starts the supervisor"
    return local_cluster


@pytest.fixture(scope="module")
def deployed(kubeconfig: Path, namespace: str) -> Iterator["jhtutorial.Connection"]:
    """The module's namespace as notebook 06 leaves it (steps 01-06 applied, every Service with endpoints),
    and a connection to it."""
    import jhtutorial
    from tests.kubehelpers import deploy_workbook

    conn = jhtutorial.connect(namespace=namespace, kubeconfig=kubeconfig, create_namespace=False)
    try:
        deploy_workbook(conn)
        yield conn
    finally:
        conn.close()
