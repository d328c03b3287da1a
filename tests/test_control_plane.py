"""The local cluster's control plane is the real thing.

Each test exercises a piece of Kubernetes behaviour that a fake API would not
have: RBAC decisions, TokenRequest, the Deployment -> ReplicaSet -> Pod chain
with the scheduler, Service IP allocation, EndpointSlices, PV provisioning and
binding. They run against whatever cluster the `api_client` fixture points at.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from jhtutorial.localcluster import ensure_binaries, versions
from jhtutorial.localcluster.cluster import HOSTPATH_ROOT, POD_CIDR_PREFIX, SERVICE_CIDR, STORAGE_CLASS

pytestmark = pytest.mark.cluster

APP = {"app": "echo"}


def wait_for(list_call: Callable, condition: Callable[[object], bool], timeout: int = 60, **kwargs) -> object:
    """List once, then watch from that resourceVersion until an object meets `condition`."""
    listing = list_call(**kwargs)
    for item in listing.items:
        if condition(item):
            return item
    stream = watch.Watch().stream(list_call, resource_version=listing.metadata.resource_version,
                                  timeout_seconds=timeout, **kwargs)
    for event in stream:
        if event["type"] != "DELETED" and condition(event["object"]):
            return event["object"]
    raise AssertionError(f"nothing met the condition within {timeout} s")


def bearer_client(admin: client.ApiClient, token: str) -> client.ApiClient:
    conf = client.Configuration()
    conf.host = admin.configuration.host
    conf.ssl_ca_cert = admin.configuration.ssl_ca_cert
    conf.verify_ssl = admin.configuration.verify_ssl
    conf.api_key = {"authorization": f"Bearer {token}"}
    return client.ApiClient(conf)


def request_token(core: client.CoreV1Api, namespace: str, account: str) -> str:
    review = core.create_namespaced_service_account_token(
        account, namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=600)),
    )
    return review.status.token


@pytest.fixture(scope="module")
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


def test_kubectl_and_server_report_the_pinned_version(kubeconfig: Path, local_cluster) -> None:
    if local_cluster is None:
        pytest.skip("checks the locally built binaries")
    kubectl = ensure_binaries().kubectl
    out = subprocess.run([str(kubectl), "--kubeconfig", str(kubeconfig), "version", "-o", "json"],
                         capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    assert info["clientVersion"]["gitVersion"] == versions.KUBERNETES
    assert info["serverVersion"]["gitVersion"] == versions.KUBERNETES


def test_tokenrequest_yields_a_token_the_apiserver_accepts(api_client, core, namespace) -> None:
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="learner")))
    token = request_token(core, namespace, "learner")
    with bearer_client(api_client, token) as as_learner:
        review = client.AuthenticationV1Api(as_learner).create_self_subject_review(
            client.V1SelfSubjectReview())
    assert review.status.user_info.username == f"system:serviceaccount:{namespace}:learner"


def test_rbac_denies_an_account_without_rights_and_allows_the_admin(api_client, core, namespace) -> None:
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="nobody")))
    token = request_token(core, namespace, "nobody")
    with bearer_client(api_client, token) as as_nobody:
        with pytest.raises(ApiException) as denied:
            client.CoreV1Api(as_nobody).list_namespaced_pod(namespace)
    assert denied.value.status == 403
    message = json.loads(denied.value.body)["message"]
    assert 'cannot list resource "pods"' in message and f"system:serviceaccount:{namespace}:nobody" in message
    core.list_namespaced_pod(namespace)  # the admin may

    # grant exactly one verb and see RBAC change its answer
    rbac = client.RbacAuthorizationV1Api(api_client)
    rbac.create_namespaced_role(namespace, client.V1Role(
        metadata=client.V1ObjectMeta(name="pod-reader"),
        rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["list"])]))
    rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
        metadata=client.V1ObjectMeta(name="nobody-reads-pods"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="pod-reader"),
        subjects=[client.RbacV1Subject(kind="ServiceAccount", name="nobody", namespace=namespace)]))
    with bearer_client(api_client, token) as as_nobody:
        client.CoreV1Api(as_nobody).list_namespaced_pod(namespace)
        with pytest.raises(ApiException) as still_denied:
            client.CoreV1Api(as_nobody).delete_collection_namespaced_pod(namespace)
    assert still_denied.value.status == 403


@pytest.fixture(scope="module")
def echo_pods(api_client, core, namespace) -> list[client.V1Pod]:
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="echo"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels=APP),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=APP),
                spec=client.V1PodSpec(containers=[client.V1Container(
                    name="echo", image="registry.invalid/echo:1.0",
                    ports=[client.V1ContainerPort(container_port=8080, name="http")])])))))
    wait_for(apps.list_namespaced_deployment, lambda d: (d.status.available_replicas or 0) == 2,
             namespace=namespace, field_selector="metadata.name=echo")
    return core.list_namespaced_pod(namespace, label_selector="app=echo").items


def test_a_deployment_yields_running_pods_with_ips_from_the_pod_range(echo_pods) -> None:
    assert len(echo_pods) == 2
    pod_range = ipaddress.ip_network(f"{POD_CIDR_PREFIX}.0.0/16")
    for pod in echo_pods:
        assert pod.status.phase == "Running"
        assert pod.spec.node_name.startswith("kwok-node-")  # placed by the real scheduler
        assert ipaddress.ip_address(pod.status.pod_ip) in pod_range
        owner = pod.metadata.owner_references[0]
        assert owner.kind == "ReplicaSet"  # made by the real deployment controller


def test_a_service_gets_a_cluster_ip_and_an_endpointslice_with_the_pod_ips(api_client, core, namespace,
                                                                           echo_pods) -> None:
    service = core.create_namespaced_service(namespace, client.V1Service(
        metadata=client.V1ObjectMeta(name="echo"),
        spec=client.V1ServiceSpec(selector=APP, ports=[client.V1ServicePort(port=80, target_port="http")])))
    assert ipaddress.ip_address(service.spec.cluster_ip) in ipaddress.ip_network(SERVICE_CIDR)

    discovery = client.DiscoveryV1Api(api_client)
    pod_ips = {p.status.pod_ip for p in echo_pods}
    endpoint_slice = wait_for(
        discovery.list_namespaced_endpoint_slice,
        lambda s: {a for e in (s.endpoints or []) for a in e.addresses} == pod_ips,
        namespace=namespace, label_selector="kubernetes.io/service-name=echo")
    assert endpoint_slice.ports[0].port == 8080  # the named targetPort resolved to the container port


def test_a_claim_binds_to_a_volume_the_controller_provisions(api_client, core, namespace, local_cluster) -> None:
    core.create_namespaced_persistent_volume_claim(namespace, client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="data"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"],
            resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"}))))
    claim = wait_for(core.list_namespaced_persistent_volume_claim, lambda c: c.status.phase == "Bound",
                     namespace=namespace, field_selector="metadata.name=data")
    assert claim.spec.storage_class_name == STORAGE_CLASS  # the default class was filled in by admission
    volume = core.read_persistent_volume(claim.spec.volume_name)
    assert volume.spec.claim_ref.name == "data" and volume.spec.claim_ref.namespace == namespace
    if local_cluster is None:
        return
    folder = Path(volume.spec.host_path.path)
    assert folder.is_relative_to(HOSTPATH_ROOT) and folder.is_dir()

    # reclaim policy Delete: the controller removes volume and folder with the claim
    core.delete_namespaced_persistent_volume_claim("data", namespace)
    stream = watch.Watch().stream(core.list_persistent_volume, field_selector=f"metadata.name={volume.metadata.name}",
                                  timeout_seconds=60)
    for event in stream:
        if event["type"] == "DELETED":
            break
    else:
        raise AssertionError("the provisioned volume was not deleted with its claim")
    assert not folder.exists()


# Run as another account of the machine: for each port, whether plain HTTP, or TLS without a client certificate,
# gets any answer (a status line, or a finished handshake). Standard library only: it runs under /usr/bin/python3.
KNOCK = """
import socket, ssl, sys
for port in map(int, sys.argv[1:]):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as plain:
            plain.sendall(b"GET /version HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
            http = plain.recv(64)
    except OSError:
        http = b""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw) as tls:
                tls.sendall(b"GET /version HTTP/1.0\\r\\nHost: 127.0.0.1\\r\\n\\r\\n")
                https = tls.recv(64)
    except (OSError, ssl.SSLError):
        https = b""
    print(port, bool(http), bool(https))
"""


def test_etcd_and_kwok_answer_another_account_nothing_and_the_api_server_still_reaches_them(local_cluster) -> None:
    """etcd and kwok's kubelet port listen on the loopback every account shares: only the API server's client
    certificate gets an answer (before, `nobody` read every Secret from etcd and ran exec through kwok)."""
    if local_cluster is None or os.geteuid() != 0:
        pytest.skip("the local cluster's own ports, knocked on as `nobody` (made by root)")
    import yaml

    options = next(yaml.safe_load_all((local_cluster.state_dir / "kwokctl.yaml").read_text()))["options"]
    ports = [options["etcdPort"], options["etcdPeerPort"], options["kwokControllerPort"]]
    knocked = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c",
                              KNOCK, *map(str, ports)], capture_output=True, text=True, check=True, cwd="/").stdout
    assert knocked.split() == [word for port in ports for word in (str(port), "False", "False")], knocked
    # what the API server presents: etcd holds the cluster's objects, and kwok serves `kubectl logs` (and exec)
    pki = local_cluster.cluster_dir / "pki"
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
    with socket.create_connection(("127.0.0.1", options["etcdPort"]), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET /version HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            assert b"etcdserver" in tls.recv(4096)
