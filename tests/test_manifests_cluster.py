"""The tutorial's manifests against a real API server.

Applied with server-side apply, first as a dry run and then for real, into two
namespaces that live side by side. What the controllers make of them is read
back (EndpointSlices resolve the named target ports, PVCs bind, the
ServiceAccount admission plugin mounts a token or not), and RBAC is exercised
with real ServiceAccount tokens from the TokenRequest API - the admin
credentials of the suite bypass RBAC, so they prove nothing about it. Finally
KubeSpawner itself, configured by the hub's ConfigMap and holding only the hub
account's token, starts and stops a user server.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from jhtutorial.errors import ManifestError
from jhtutorial.manifests import PROXY_TOKEN_PLACEHOLDER, load_all, load_manifest

pytestmark = pytest.mark.cluster

FIELD_MANAGER = "jhtutorial-tests"
PART_OF = "app.kubernetes.io/part-of=jhtutorial"
Manifests = dict[str, list[dict[str, Any]]]


# --- applying objects by hand (server-side apply over the REST API) ---------------------------


class _Paths:
    """REST paths for (apiVersion, kind), from the API server's discovery documents."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._cache: dict[tuple[str, str], tuple[str, bool]] = {}

    def collection(self, obj: dict[str, Any], namespace: str) -> str:
        key = (obj["apiVersion"], obj["kind"])
        if key not in self._cache:
            base = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
            body = _request(self._api, "GET", base)
            for res in body["resources"]:
                if "/" not in res["name"]:
                    self._cache[(obj["apiVersion"], res["kind"])] = (f"{base}/{{ns}}{res['name']}", res["namespaced"])
        template, namespaced = self._cache[key]
        return template.format(ns=f"namespaces/{namespace}/" if namespaced else "")

    def item(self, obj: dict[str, Any], namespace: str) -> str:
        return f"{self.collection(obj, namespace)}/{obj['metadata']['name']}"


def _request(
    api: client.ApiClient,
    method: str,
    path: str,
    *,
    query: list[tuple[str, str]] | None = None,
    body: dict[str, Any] | None = None,
    content_type: str = "application/json",
) -> dict[str, Any]:
    """One REST call with the client's credentials; the answer as a dict, errors as ApiException."""
    headers = {"Accept": "application/json", "Content-Type": content_type}
    if hasattr(api, "param_serialize"):  # the kubernetes package's newer request style
        method, url, headers, body_, post = api.param_serialize(
            method, path, query_params=query, header_params=headers, body=body, auth_settings=["BearerToken"]
        )
        response = api.call_api(method, url, headers, body_, post, _request_timeout=60)
        response.read()
        if not 200 <= response.status < 300:
            raise ApiException(http_resp=response)
        return json.loads(response.data)
    return api.call_api(
        path,
        method,
        query_params=query,
        header_params=headers,
        body=body,
        auth_settings=["BearerToken"],
        response_type="object",
        _return_http_data_only=True,
        _request_timeout=60,
    )


def _apply(api: client.ApiClient, paths: _Paths, obj: dict[str, Any], namespace: str, *, dry_run: bool) -> dict[str, Any]:
    """Server-side apply, as `kubectl apply --server-side [--dry-run=server]` does it."""
    query = [("fieldManager", FIELD_MANAGER), ("force", "true")]
    if dry_run:
        query.append(("dryRun", "All"))
    return _request(api, "PATCH", paths.item(obj, namespace), query=query, body=obj, content_type="application/apply-patch+yaml")


def _read(api: client.ApiClient, paths: _Paths, obj: dict[str, Any], namespace: str) -> dict[str, Any] | None:
    try:
        return _request(api, "GET", paths.item(obj, namespace))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def _with_fresh_token(obj: dict[str, Any]) -> dict[str, Any]:
    """What the helper does with secret-hub.yaml: a new random token instead of the placeholder."""
    if obj["kind"] == "Secret" and obj.get("stringData", {}).get("proxy.token") == PROXY_TOKEN_PLACEHOLDER:
        return {**obj, "stringData": {**obj["stringData"], "proxy.token": secrets.token_hex(32)}}
    return obj


def _install(api: client.ApiClient, manifests: Manifests, namespace: str) -> None:
    paths = _Paths(api)
    for objs in manifests.values():
        for obj in objs:
            applied = _apply(api, paths, _with_fresh_token(obj), namespace, dry_run=False)
            assert applied["metadata"]["namespace"] == namespace


# --- waiting: list, then watch from that resourceVersion ----------------------------------------


def _wait_for(list_fn: Callable[..., Any], namespace: str, name: str, ok: Callable[[Any], bool], timeout: float = 120) -> Any:
    deadline = time.monotonic() + timeout
    selector = f"metadata.name={name}"
    while True:
        listed = list_fn(namespace, field_selector=selector)
        for item in listed.items:
            if ok(item):
                return item
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{name} in {namespace} did not reach the expected state in {timeout:.0f} s: {listed.items}")
        stream = watch.Watch()
        try:
            for event in stream.stream(
                list_fn,
                namespace,
                field_selector=selector,
                resource_version=listed.metadata.resource_version,
                timeout_seconds=max(1, int(remaining)),
            ):
                if event["type"] in ("ADDED", "MODIFIED") and ok(event["object"]):
                    return event["object"]
        except ApiException as exc:
            if exc.status != 410:  # 410 Gone: list again from a fresh resourceVersion
                raise
        finally:
            stream.stop()


def _deployment_available(api: client.ApiClient, namespace: str, name: str) -> None:
    _wait_for(client.AppsV1Api(api).list_namespaced_deployment, namespace, name, lambda d: (d.status.available_replicas or 0) >= 1)


def _pvc_bound(api: client.ApiClient, namespace: str, name: str) -> client.V1PersistentVolumeClaim:
    return _wait_for(
        client.CoreV1Api(api).list_namespaced_persistent_volume_claim, namespace, name, lambda p: p.status.phase == "Bound"
    )


# --- ServiceAccount tokens ---------------------------------------------------------------------------


def _token(api: client.ApiClient, namespace: str, account: str) -> str:
    request = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))
    return client.CoreV1Api(api).create_namespaced_service_account_token(account, namespace, request).status.token


def _client_as(api: client.ApiClient, namespace: str, account: str) -> client.ApiClient:
    """An ApiClient that authenticates as system:serviceaccount:NAMESPACE:ACCOUNT (same server, same CA)."""
    admin = api.configuration
    cfg = client.Configuration()
    cfg.host = admin.host
    cfg.ssl_ca_cert = admin.ssl_ca_cert
    cfg.verify_ssl = admin.verify_ssl
    cfg.api_key = {"authorization": f"Bearer {_token(api, namespace, account)}"}
    return client.ApiClient(cfg)


def _forbidden(call: Callable[[], Any]) -> None:
    with pytest.raises(ApiException) as caught:
        call()
    assert caught.value.status == 403, f"expected 403 Forbidden, got {caught.value.status}: {caught.value.body}"


# --- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests(api_client: client.ApiClient) -> Manifests:
    # kinds checked against this API server's discovery, not a built-in list
    return load_all(api_client)


@pytest.fixture(scope="module")
def installed(api_client: client.ApiClient, manifests: Manifests, namespace: str) -> str:
    """Every file applied for real into the module's namespace, both Deployments available."""
    _install(api_client, manifests, namespace)
    for name in ("hub", "proxy"):
        _deployment_available(api_client, namespace, name)
    return namespace


@pytest.fixture(scope="module")
def hub_api(api_client: client.ApiClient, installed: str) -> Iterator[client.ApiClient]:
    api = _client_as(api_client, installed, "hub")
    yield api
    api.close()


@pytest.fixture(scope="module")
def proxy_api(api_client: client.ApiClient, installed: str) -> Iterator[client.ApiClient]:
    api = _client_as(api_client, installed, "proxy")
    yield api
    api.close()


# --- apply ---------------------------------------------------------------------------------------------


def test_server_dry_run_accepts_every_file_and_stores_nothing(
    api_client: client.ApiClient, manifests: Manifests, other_namespace: str
) -> None:
    paths = _Paths(api_client)
    for name, objs in manifests.items():
        for obj in objs:
            answer = _apply(api_client, paths, _with_fresh_token(obj), other_namespace, dry_run=True)
            # defaulted and validated by the server, in the namespace asked for
            assert answer["metadata"]["namespace"] == other_namespace, name
            assert answer["metadata"]["uid"], name
    for objs in manifests.values():
        for obj in objs:
            assert _read(api_client, paths, obj, other_namespace) is None, f"dry run stored {obj['kind']}/{obj['metadata']['name']}"


def test_the_same_files_install_in_two_namespaces_at_once(
    api_client: client.ApiClient, manifests: Manifests, installed: str, other_namespace: str
) -> None:
    _install(api_client, manifests, other_namespace)
    for name in ("hub", "proxy"):
        _deployment_available(api_client, other_namespace, name)
    paths = _Paths(api_client)
    for ns in (installed, other_namespace):
        for objs in manifests.values():
            for obj in objs:
                live = _read(api_client, paths, obj, ns)
                assert live is not None and live["metadata"]["namespace"] == ns
        _pvc_bound(api_client, ns, "hub-db-dir")
    core = client.CoreV1Api(api_client)
    # each install has its own token and its own node port
    tokens = {core.read_namespaced_secret("hub-secret", ns).data["proxy.token"] for ns in (installed, other_namespace)}
    assert len(tokens) == 2
    node_ports = {core.read_namespaced_service("proxy-public", ns).spec.ports[0].node_port for ns in (installed, other_namespace)}
    assert len(node_ports) == 2 and all(30000 <= p <= 32767 for p in node_ports)


def test_applying_again_changes_nothing(api_client: client.ApiClient, manifests: Manifests, installed: str) -> None:
    paths = _Paths(api_client)
    for objs in manifests.values():
        for obj in objs:
            if obj["kind"] == "Secret":
                continue  # a new token is a change by design: the helper creates the Secret once
            before = _read(api_client, paths, obj, installed)
            after = _apply(api_client, paths, obj, installed, dry_run=False)
            assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], obj["metadata"]["name"]


@pytest.mark.parametrize(
    ("service", "deployment", "port"),
    [("hub", "hub", 8081), ("proxy-api", "proxy", 8001), ("proxy-http", "proxy", 8000), ("proxy-public", "proxy", 8080)],
)
def test_services_reach_their_pods_on_the_named_ports(
    api_client: client.ApiClient, installed: str, service: str, deployment: str, port: int
) -> None:
    """The EndpointSlice controller resolves each named targetPort to a container port of the selected pods."""
    apps, core = client.AppsV1Api(api_client), client.CoreV1Api(api_client)
    selector = apps.read_namespaced_deployment(deployment, installed).spec.selector.match_labels
    pods = core.list_namespaced_pod(installed, label_selector=",".join(f"{k}={v}" for k, v in selector.items())).items
    pod_ips = {p.status.pod_ip for p in pods if p.status.pod_ip}
    assert pod_ips, f"no running pod of {deployment}"

    discovery = client.DiscoveryV1Api(api_client)
    deadline = time.monotonic() + 60
    while True:  # the controller writes the slice shortly after the pod gets its IP
        slices = discovery.list_namespaced_endpoint_slice(installed, label_selector=f"kubernetes.io/service-name={service}").items
        ips = {a for s in slices for e in (s.endpoints or []) for a in e.addresses}
        ports = {p.port for s in slices for p in (s.ports or [])}
        if ips == pod_ips and ports == {port}:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"Service {service}: endpoints {ips} ports {ports}, expected {pod_ips} on {port}")
        _wait_for_next_slice_change(api_client, installed, service)


def _wait_for_next_slice_change(api: client.ApiClient, namespace: str, service: str) -> None:
    discovery = client.DiscoveryV1Api(api)
    listed = discovery.list_namespaced_endpoint_slice(namespace, label_selector=f"kubernetes.io/service-name={service}")
    stream = watch.Watch()
    try:
        for _ in stream.stream(
            discovery.list_namespaced_endpoint_slice,
            namespace,
            label_selector=f"kubernetes.io/service-name={service}",
            resource_version=listed.metadata.resource_version,
            timeout_seconds=5,
        ):
            return
    finally:
        stream.stop()


def test_only_the_hub_pod_gets_an_api_token(api_client: client.ApiClient, installed: str) -> None:
    """The ServiceAccount admission plugin mounts a token into the hub pod and none into the proxy pod."""
    core = client.CoreV1Api(api_client)

    def token_volumes(component: str) -> list[str]:
        (pod,) = core.list_namespaced_pod(installed, label_selector=f"app.kubernetes.io/component={component},{PART_OF}").items
        return [
            v.name
            for v in pod.spec.volumes or []
            if v.projected and any(s.service_account_token for s in v.projected.sources or [])
        ]

    assert token_volumes("hub"), "the hub needs its token for KubeSpawner"
    assert token_volumes("proxy") == []


# --- RBAC with real tokens ------------------------------------------------------------------------------


def test_hub_account_can_create_and_delete_pods_and_pvcs_in_its_namespace(hub_api: client.ApiClient, installed: str) -> None:
    core = client.CoreV1Api(hub_api)
    pvc = client.V1PersistentVolumeClaim(
        metadata=client.V1ObjectMeta(name="claim-rbac-check"),
        spec=client.V1PersistentVolumeClaimSpec(
            access_modes=["ReadWriteOnce"], resources=client.V1VolumeResourceRequirements(requests={"storage": "1Gi"})
        ),
    )
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="jupyter-rbac-check", labels={"component": "singleuser-server"}),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="notebook", image="quay.io/jupyterhub/k8s-singleuser-sample:4.4.0")],
            volumes=[client.V1Volume(name="home", persistent_volume_claim=client.V1PersistentVolumeClaimVolumeSource(claim_name="claim-rbac-check"))],
        ),
    )
    core.create_namespaced_persistent_volume_claim(installed, pvc)
    core.create_namespaced_pod(installed, pod)
    assert core.read_namespaced_pod("jupyter-rbac-check", installed).metadata.name == "jupyter-rbac-check"
    listed = core.list_namespaced_pod(installed, label_selector="component=singleuser-server")
    assert "jupyter-rbac-check" in {p.metadata.name for p in listed.items}
    core.list_namespaced_event(installed)  # spawn progress comes from events
    core.list_namespaced_persistent_volume_claim(installed)
    core.delete_namespaced_pod("jupyter-rbac-check", installed, grace_period_seconds=0)
    core.delete_namespaced_persistent_volume_claim("claim-rbac-check", installed)


def test_hub_account_cannot_do_more_than_spawning_in_its_namespace(hub_api: client.ApiClient, installed: str) -> None:
    core, rbac = client.CoreV1Api(hub_api), client.RbacAuthorizationV1Api(hub_api)
    _forbidden(lambda: core.read_namespaced_secret("hub-secret", installed))  # not even the proxy token
    _forbidden(lambda: core.list_namespaced_secret(installed))
    _forbidden(lambda: core.list_namespaced_config_map(installed))
    _forbidden(lambda: core.create_namespaced_service(installed, {"metadata": {"name": "x"}, "spec": {"ports": [{"port": 80}]}}))
    _forbidden(lambda: core.patch_namespaced_pod("hub", installed, {"metadata": {"labels": {"x": "y"}}}))
    _forbidden(lambda: core.connect_get_namespaced_pod_exec("hub", installed, command=["true"], stdout=True))
    _forbidden(lambda: client.AppsV1Api(hub_api).list_namespaced_deployment(installed))
    # no way to widen its own rights
    _forbidden(lambda: rbac.patch_namespaced_role("hub", installed, {"rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}))
    _forbidden(
        lambda: rbac.create_namespaced_role_binding(
            installed,
            {
                "metadata": {"name": "more"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "hub", "namespace": installed}],
            },
        )
    )


def test_hub_account_cannot_touch_other_namespaces(
    api_client: client.ApiClient, hub_api: client.ApiClient, installed: str, other_namespace: str
) -> None:
    core = client.CoreV1Api(hub_api)
    pvc = {"metadata": {"name": "claim-x"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    pod = {"metadata": {"name": "jupyter-x"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}
    _forbidden(lambda: core.list_namespaced_pod(other_namespace))
    _forbidden(lambda: core.create_namespaced_pod(other_namespace, pod))
    _forbidden(lambda: core.create_namespaced_persistent_volume_claim(other_namespace, pvc))
    _forbidden(lambda: core.list_namespaced_event(other_namespace))
    _forbidden(lambda: core.list_pod_for_all_namespaces())
    # the same Role and RoleBinding installed next door give that namespace's hub
    # rights there, and still none here
    _install(api_client, {"rbac.yaml": load_manifest("rbac.yaml")}, other_namespace)
    neighbour = _client_as(api_client, other_namespace, "hub")
    try:
        client.CoreV1Api(neighbour).list_namespaced_pod(other_namespace)
        _forbidden(lambda: client.CoreV1Api(neighbour).list_namespaced_pod(installed))
    finally:
        neighbour.close()


def test_hub_account_cannot_touch_cluster_scoped_objects(hub_api: client.ApiClient) -> None:
    core, storage, rbac = client.CoreV1Api(hub_api), client.StorageV1Api(hub_api), client.RbacAuthorizationV1Api(hub_api)
    _forbidden(core.list_node)
    _forbidden(core.list_namespace)
    _forbidden(lambda: core.create_namespace({"metadata": {"name": f"jht-escape-{secrets.token_hex(3)}"}}))
    _forbidden(core.list_persistent_volume)
    _forbidden(storage.list_storage_class)
    _forbidden(rbac.list_cluster_role)
    _forbidden(
        lambda: rbac.create_cluster_role_binding(
            {
                "metadata": {"name": f"jht-escape-{secrets.token_hex(3)}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
                "subjects": [{"kind": "User", "name": "nobody"}],
            }
        )
    )


def test_proxy_account_can_do_nothing(
    api_client: client.ApiClient, proxy_api: client.ApiClient, hub_api: client.ApiClient, installed: str
) -> None:
    core = client.CoreV1Api(proxy_api)
    _forbidden(lambda: core.list_namespaced_pod(installed))
    _forbidden(lambda: core.read_namespaced_config_map("nginx-routes", installed))
    _forbidden(lambda: core.read_namespaced_secret("hub-secret", installed))
    _forbidden(lambda: core.list_namespaced_service(installed))
    _forbidden(lambda: client.DiscoveryV1Api(proxy_api).list_namespaced_endpoint_slice(installed))
    _forbidden(lambda: core.create_namespaced_pod(installed, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x:1"}]}}))
    _forbidden(core.list_namespace)
    _forbidden(client.NetworkingV1Api(proxy_api).list_ingress_for_all_namespaces)

    # Its rules are exactly those of an account nobody granted anything
    # (the built-in discovery and self-review rights every login has).
    core_admin = client.CoreV1Api(api_client)
    core_admin.create_namespaced_service_account(installed, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="no-rights")))
    blank = _client_as(api_client, installed, "no-rights")
    try:
        assert _rules(proxy_api, installed) == _rules(blank, installed)
    finally:
        blank.close()
    # (and the review does tell accounts apart: the hub's rules differ)
    assert _rules(proxy_api, installed) < _rules(hub_api, installed)


def _rules(api: client.ApiClient, namespace: str) -> set[tuple[Any, ...]]:
    """What a SelfSubjectRulesReview says the caller may do in ``namespace``, one tuple per permission."""
    review = _request(
        api,
        "POST",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        body={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {"namespace": namespace}},
    )["status"]
    rules: set[tuple[Any, ...]] = set()
    for r in review.get("resourceRules", []):
        for verb in r["verbs"]:
            for group in r.get("apiGroups") or [""]:
                for res in r.get("resources") or []:
                    rules.add(("resource", group, res, verb, tuple(sorted(r.get("resourceNames") or []))))
    for r in review.get("nonResourceRules", []):
        for verb in r["verbs"]:
            for url in r.get("nonResourceURLs") or []:
                rules.add(("url", url, verb))
    return rules


# --- KubeSpawner, as the hub runs it ---------------------------------------------------------------------

# Runs in its own process: KubeSpawner configures its Kubernetes client once
# per process, from the kubeconfig it finds, and this one holds only the hub
# account's token. It starts admin's server, reports, waits for "stop", stops it.
_SPAWN = textwrap.dedent(
    """
    import asyncio, json, sys
    from types import SimpleNamespace
    from jupyterhub.app import JupyterHub

    app = JupyterHub()
    app.load_config_file(sys.argv[1])
    app.config.KubeSpawner.start_timeout = 90  # a simulated pod starts in seconds

    async def main():
        user = SimpleNamespace(name="admin", id=1, url="/user/admin/", server=None)
        spawner = app.spawner_class(parent=app, user=user, _mock=True)
        url = await spawner.start()
        print(json.dumps({"url": url, "pod": spawner.pod_name, "pvc": spawner.pvc_name, "namespace": spawner.namespace}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await spawner.stop()
        print(json.dumps({"stopped": True}), flush=True)

    asyncio.run(main())
    """
)


def _kubeconfig_as(api: client.ApiClient, namespace: str, account: str, path: Path) -> Path:
    cfg = api.configuration
    cluster: dict[str, Any] = {"server": cfg.host}
    if cfg.ssl_ca_cert:
        cluster["certificate-authority"] = cfg.ssl_ca_cert
    if not cfg.verify_ssl:
        cluster["insecure-skip-tls-verify"] = True
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": cluster}],
                "users": [{"name": account, "user": {"token": _token(api, namespace, account)}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": account, "namespace": namespace}}],
                "current-context": "c",
            }
        )
    )
    path.chmod(0o600)
    return path


def test_kubespawner_with_the_hub_token_starts_jupyter_admin_on_claim_admin(
    api_client: client.ApiClient, manifests: Manifests, installed: str, tmp_path: Path
) -> None:
    config = tmp_path / "jupyterhub_config.py"
    (cm,) = manifests["cm-hub-config.yaml"]
    config.write_text(cm["data"]["jupyterhub_config.py"])
    env = {
        **os.environ,
        # what deploy-hub.yaml gives the hub container
        "POD_NAMESPACE": installed,
        "CONFIGPROXY_AUTH_TOKEN": "unused-here",
        "PYTHONUNBUFFERED": "1",
        "KUBECONFIG": str(_kubeconfig_as(api_client, installed, "hub", tmp_path / "hub-kubeconfig")),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _SPAWN, str(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        started = json.loads(proc.stdout.readline() or "{}")
        assert started, f"KubeSpawner did not start the server:\n{proc.stderr.read() if proc.poll() is not None else ''}"
        assert started["pod"] == "jupyter-admin" and started["pvc"] == "claim-admin"
        assert started["namespace"] == installed
        core = client.CoreV1Api(api_client)
        pod = core.read_namespaced_pod("jupyter-admin", installed)
        assert pod.status.phase == "Running"
        assert started["url"] == f"http://{pod.status.pod_ip}:8888"
        (home,) = [v for v in pod.spec.volumes if v.persistent_volume_claim]
        assert home.persistent_volume_claim.claim_name == "claim-admin"
        (mount,) = [m for m in pod.spec.containers[0].volume_mounts if m.name == home.name]
        assert mount.mount_path == "/home/jovyan"
        pvc = _pvc_bound(api_client, installed, "claim-admin")
        assert pvc.spec.storage_class_name == "standard"  # the cluster's default, chosen by the API server

        proc.stdin.write("stop\n")
        proc.stdin.flush()
        assert json.loads(proc.stdout.readline() or "{}") == {"stopped": True}, proc.stderr.read()
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # stopping removes the pod and keeps the home volume for the next login
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("jupyter-admin", installed)
    assert gone.value.status == 404
    assert core.read_namespaced_persistent_volume_claim("claim-admin", installed).status.phase == "Bound"


# --- bad input, checked against the API server's discovery ---------------------------------------------


def test_unknown_kind_is_refused_before_anything_is_applied(api_client: client.ApiClient, installed: str, tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first-of-two\n"
        "---\napiVersion: apps/v1\nkind: Deploymnet\nmetadata:\n  name: second\n"
    )
    applied: list[str] = []
    with pytest.raises(ManifestError) as caught:
        for obj in load_manifest(path, api_client=api_client):  # raises before the loop body runs
            applied.append(obj["metadata"]["name"])
    assert (caught.value.path, caught.value.line) == (str(path), 7)  # the kind line
    assert "unknown kind 'Deploymnet'" in caught.value.reason and "API server" in caught.value.reason
    assert caught.value.fix == "did you mean 'Deployment'?"
    assert applied == []
    with pytest.raises(ApiException) as missing:
        client.CoreV1Api(api_client).read_namespaced_config_map("first-of-two", installed)
    assert missing.value.status == 404


def test_discovery_knows_more_kinds_than_the_built_in_list(api_client: client.ApiClient, tmp_path: Path) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n")
    with pytest.raises(ManifestError, match="unknown kind 'Pod'"):
        load_manifest(pod)  # not a kind the tutorial's files use
    assert load_manifest(pod, api_client=api_client)[0]["kind"] == "Pod"  # but the cluster serves it

    group = tmp_path / "group.yaml"
    group.write_text("apiVersion: example.org/v1\nkind: Widget\nmetadata:\n  name: w\n")
    with pytest.raises(ManifestError) as caught:
        load_manifest(group, api_client=api_client)
    assert caught.value.line == 1 and "unknown apiVersion 'example.org/v1'" in caught.value.reason
