"""From inside a pod's sandbox, the `kubernetes` Service reaches the real API server, and nothing else of the machine."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from jhtutorial.localcluster.backing.apiserver_relay import KUBERNETES_CLUSTER_IP, ApiServerRelay
from jhtutorial.localcluster.backing.network import NamespaceNetwork
from jhtutorial.localcluster.backing.sandbox import RunAs, Sandbox, SandboxSpec, Volume, create

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sandboxes as the machine's root")

USER = RunAs(uid=1000, gid=1000)
SA_FOLDER = "/var/run/secrets/kubernetes.io/serviceaccount"
# what a pod's in-cluster client does: verify the API server by the CA and the Service's name
VERSION = (
    "import json, ssl, sys, urllib.request\n"
    f"context = ssl.create_default_context(cafile='{SA_FOLDER}/ca.crt')\n"
    "try:\n"
    "    print(json.load(urllib.request.urlopen('https://kubernetes.default.svc/version', context=context, timeout=10))['gitVersion'])\n"
    "except OSError as error:\n"
    "    print('failed', getattr(getattr(error, 'reason', error), 'errno', error))\n"
)


def _api_port_and_ca(kubeconfig: Path) -> tuple[int, bytes]:
    cluster = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]
    server = urlparse(cluster["server"])
    assert server.hostname == "127.0.0.1"
    if "certificate-authority-data" in cluster:
        ca = base64.b64decode(cluster["certificate-authority-data"])
    else:
        ca = Path(cluster["certificate-authority"]).read_bytes()
    return int(server.port or 443), ca


@pytest.fixture
def pod_with_relay(kubeconfig: Path) -> Iterator[tuple[Sandbox, NamespaceNetwork, ApiServerRelay]]:
    api_port, ca = _api_port_and_ca(kubeconfig)
    folder = Path(tempfile.mkdtemp(prefix="jhtutorial-relay-test-", dir="/var/tmp"))
    folder.chmod(0o755)
    (folder / "sa").mkdir()
    (folder / "sa" / "ca.crt").write_bytes(ca)
    (folder / "hosts").write_text(f"127.0.0.1 localhost\n{KUBERNETES_CLUSTER_IP} kubernetes kubernetes.default "
                                  "kubernetes.default.svc kubernetes.default.svc.cluster.local\n")
    network = NamespaceNetwork(f"relay-{os.getpid()}")
    relay = ApiServerRelay(api_port)
    box = None
    try:
        network.create()
        box = create(SandboxSpec(key=f"relay-{os.getpid()}.hub-0", hostname="hub-0", volumes=(
            Volume(folder / "sa", SA_FOLDER, read_only=True), Volume(folder / "hosts", "/etc/hosts", read_only=True))))
        network.attach_pod("hub-0", "10.244.1.30", box.net_namespace)
        yield box, network, relay
    finally:
        relay.close()
        if box is not None:
            box.teardown()
        network.delete()
        shutil.rmtree(folder)


def test_a_pod_reaches_the_api_server_through_the_kubernetes_service(pod_with_relay: tuple) -> None:
    box, network, relay = pod_with_relay
    before = box.run(["python3", "-c", VERSION], USER)
    assert before.stdout.strip() == "failed 111", before  # no relay yet: the router refuses, nothing else answers

    relay.serve(network.netns_file)
    relay.serve(network.netns_file)  # idempotent
    answer = box.run(["python3", "-c", VERSION], USER)
    assert answer.stdout.strip().startswith("v1."), answer  # TLS verified end to end by the cluster's CA

    # the machine's own network namespace has no listener on the Service address
    host_listeners = subprocess.run(["ss", "-Hltn"], capture_output=True, text=True, check=True).stdout
    assert KUBERNETES_CLUSTER_IP not in host_listeners

    relay.stop_serving(network.netns_file)
    assert box.run(["python3", "-c", VERSION], USER).stdout.strip() == "failed 111"
