"""A backed pod's ServiceAccount token is renewed as the kubelet renews a projected token, and the running
container reads the new one where it read the first (``/var/run/secrets/kubernetes.io/serviceaccount/token`` in its
sandbox).

Real: a cluster of the module's own whose supervisor asks for tokens of the API server's shortest
lifetime (10 minutes) and renews them after 2% of it (12 s) instead of the kubelet's 80%; the token is read inside
the sandbox with ``kubectl exec``, and the API server itself says whose the new one is (a TokenReview).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from jhtutorial.connect import connect
from jhtutorial.localcluster import LocalCluster
from jhtutorial.localcluster.backing import BACKED_LABEL, POD_SECURITY_LABELS
from jhtutorial.localcluster.backing.credentials import MINIMUM_TOKEN_SECONDS, TokenLifetime
from jhtutorial.waits import wait_pods_ready
from tests.conftest import TEST_LABEL, scratch_cluster
from tests.kubehelpers import until

TOKEN = "/var/run/secrets/kubernetes.io/serviceaccount/token"
SHORT = TokenLifetime(MINIMUM_TOKEN_SECONDS, 0.02)  # renewed every 12 s
POD = """
apiVersion: v1
kind: Pod
metadata: {name: reader, labels: {app: reader}}
spec:
  securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: chp
      image: quay.io/jupyterhub/configurable-http-proxy:5.2.0
      args: [configurable-http-proxy, --port=8000, --api-port=8001]
      securityContext:
        runAsUser: 65534
        runAsGroup: 65534
        allowPrivilegeEscalation: false
        capabilities: {drop: [ALL]}
"""


def test_a_token_is_renewed_after_four_fifths_of_its_life_or_after_a_day() -> None:
    kubelet = TokenLifetime()
    assert kubelet.renewal(1000.0, 1000.0 + 3600) == 1000.0 + 2880
    assert kubelet.renewal(0.0, 365 * 86400.0) == 86400.0  # a year-long token (the API server may grant one)
    assert SHORT.renewal(0.0, 600.0) == pytest.approx(12.0)
    with pytest.raises(ValueError, match="at least 600"):
        TokenLifetime(seconds=60)  # the API server would refuse the TokenRequest


@pytest.fixture(scope="module")
def short_lived(local_cluster: LocalCluster | None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A cluster of the module's own whose supervisor renews each pod's token every 12 s."""
    if local_cluster is None:
        pytest.skip("pods are backed only on the local simulated cluster")
    if os.geteuid() != 0:
        pytest.skip("pod sandboxes exist on the local simulated cluster, made by root")
    state = tmp_path_factory.mktemp("tokens") / "state"
    with scratch_cluster(state) as cluster:
        cluster.supervisor.stop()
        cluster.supervisor.ensure_running(tokens=SHORT)
        yield cluster


def test_the_running_container_reads_the_renewed_token(short_lived: LocalCluster, kubectl: Path) -> None:
    kubeconfig = short_lived.kubeconfig
    api = config.new_client_from_config(config_file=str(kubeconfig))
    namespace = "jht-tokens"
    client.CoreV1Api(api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=namespace, labels={TEST_LABEL: "true", BACKED_LABEL: "true", **POD_SECURITY_LABELS})))

    def kubectl_(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "-n", namespace, *args], input=stdin,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
        return done.stdout

    try:
        kubectl_("apply", "-f", "-", stdin=POD)
        conn = connect(namespace=namespace, kubeconfig=kubeconfig, create_namespace=False)
        wait_pods_ready("app=reader", conn=conn, timeout=90)
        conn.close()

        def read() -> tuple[str, str]:  # inside the sandbox, as the container's program reads it
            token = kubectl_("exec", "reader", "--", "cat", TOKEN)
            return token, kubectl_("exec", "reader", "--", "stat", "-c", "%a", TOKEN).strip()

        # kwok serves an exec once its cache holds the pod's Exec object, which may lag the pod's Ready by a moment
        until("kubectl exec reaches the pod", lambda: subprocess.run(
            [str(kubectl), "--kubeconfig", str(kubeconfig), "-n", namespace, "exec", "reader", "--", "true"],
            capture_output=True, timeout=60).returncode == 0, timeout=30)
        first, first_mode = read()
        second, second_mode = until("a renewed token where the program reads it",
                                    lambda: (now := read())[0] != first and now, timeout=60)
        assert first_mode == second_mode == "644"  # the new file has the old one's mode

        for token in (first, second):  # both valid (the first until it expires), both the pod's own
            review = client.AuthenticationV1Api(api).create_token_review(
                client.V1TokenReview(spec=client.V1TokenReviewSpec(token=token))).status
            assert review.authenticated, review.error
            assert review.user.username == f"system:serviceaccount:{namespace}:default"
            assert review.user.extra["authentication.kubernetes.io/pod-name"] == ["reader"]
        log = short_lived.supervisor.log_file.read_text()
        assert f"{namespace}/reader: ServiceAccount token renewed" in log
    finally:
        client.CoreV1Api(api).delete_namespace(namespace)
        api.close()
