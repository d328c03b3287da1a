"""The tutorial's manifests, checked without a cluster.

Structure (names, ports, selectors, security settings) is read from the files
themselves; the two configurations inside them are run through the real
programs: nginx's `nginx -t` on the layout the proxy pod mounts, and
JupyterHub's config loader with the JupyterHub and KubeSpawner versions the
pinned hub image carries. What only an API server can tell (apply, RBAC) is in
test_manifests_cluster.py.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import re
import shutil
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from jhtutorial.errors import ManifestError, TutorialError
from jhtutorial.manifests import (
    KNOWN_KINDS,
    MANIFEST_DIR,
    MANIFEST_FILES,
    PROXY_TOKEN_PLACEHOLDER,
    load_all,
    load_manifest,
    manifest_path,
)

HUB_IMAGE = "quay.io/jupyterhub/k8s-hub:4.4.0"
# What that image carries (its requirements file): the config must load with these.
HUB_IMAGE_PACKAGES = {"jupyterhub": "5.5.0", "jupyterhub-kubespawner": "7.0.0"}
CHP_IMAGE = "quay.io/jupyterhub/configurable-http-proxy:5.2.0"
NGINX_IMAGE = "nginxinc/nginx-unprivileged:1.30.4-alpine-slim"
USER_IMAGE = "quay.io/jupyterhub/k8s-singleuser-sample:4.4.0"
RECOMMENDED_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
)
NGINX_PACKAGE = "nginx-light"  # Debian's package that the nginx -t test relies on


# --- helpers -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def manifests() -> dict[str, list[dict[str, Any]]]:
    return load_all()


def _objects(manifests: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return [obj for objs in manifests.values() for obj in objs]


def _one(manifests: dict[str, list[dict[str, Any]]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in _objects(manifests) if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected exactly one {kind}/{name}, found {len(found)}"
    return found[0]


def _pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def _container(deployment: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in _pod_spec(deployment)["containers"] if c["name"] == name)


def _walk_keys(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield f"{path}.{key}", item
            yield from _walk_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _walk_keys(item, f"{path}[{i}]")


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


# --- the set of files ---------------------------------------------------------------


def test_the_twelve_files_of_the_original_and_nothing_else() -> None:
    on_disk = sorted(p.name for p in MANIFEST_DIR.glob("*.yaml"))
    assert on_disk == sorted(MANIFEST_FILES)
    assert len(MANIFEST_FILES) == 12


def test_each_file_holds_the_objects_the_original_step_created(manifests) -> None:
    got = {name: [(o["kind"], o["metadata"]["name"]) for o in objs] for name, objs in manifests.items()}
    assert got == {
        "rbac.yaml": [("ServiceAccount", "hub"), ("ServiceAccount", "proxy"), ("Role", "hub"), ("RoleBinding", "hub")],
        "cm-hub-config.yaml": [("ConfigMap", "hub-config")],
        "cm-ingress.yaml": [("ConfigMap", "nginx-routes")],
        "cm-nginx.yaml": [("ConfigMap", "nginx-proxy-config")],
        "secret-hub.yaml": [("Secret", "hub-secret")],
        "pvc-hub.yaml": [("PersistentVolumeClaim", "hub-db-dir")],
        "svc-hub.yaml": [("Service", "hub")],
        "svc-proxy-api.yaml": [("Service", "proxy-api")],
        "svc-proxy-http.yaml": [("Service", "proxy-http")],
        "svc-proxy-public.yaml": [("Service", "proxy-public")],
        "deploy-hub.yaml": [("Deployment", "hub")],
        "deploy-proxy.yaml": [("Deployment", "proxy")],
    }
    assert {(o["apiVersion"], o["kind"]) for o in _objects(manifests)} == KNOWN_KINDS


def test_manifest_dir_is_found_in_the_checkout_or_where_the_environment_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jhtutorial.manifests import find_manifest_dir

    assert (MANIFEST_DIR / "rbac.yaml").is_file()
    assert find_manifest_dir() == MANIFEST_DIR
    copy = tmp_path / "my-manifests"
    shutil.copytree(MANIFEST_DIR, copy)
    monkeypatch.setenv("JHTUTORIAL_MANIFEST_DIR", str(copy))
    assert find_manifest_dir() == copy


def test_manifest_path_accepts_names_with_or_without_suffix_and_paths(tmp_path: Path) -> None:
    assert manifest_path("rbac.yaml") == MANIFEST_DIR / "rbac.yaml"
    assert manifest_path("rbac") == MANIFEST_DIR / "rbac.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mine\n")
    assert load_manifest(own) == [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "mine"}}]
    assert load_manifest(str(own))[0]["metadata"]["name"] == "mine"


# --- namespace-agnostic, no secret, no storage class --------------------------------------


def test_no_namespace_is_written_anywhere(manifests) -> None:
    for name, objs in manifests.items():
        for obj in objs:
            keys = [path for path, _ in _walk_keys(obj) if path.rsplit(".", 1)[-1] == "namespace"]
            assert not keys, f"{name}: {obj['kind']}/{obj['metadata']['name']} sets {keys}"
    # nor hidden in text: a "default" namespace in a DNS name or a flag
    for path in MANIFEST_DIR.glob("*.yaml"):
        text = path.read_text()
        assert not re.search(r"\.default\.svc|namespace[= ]default|--namespace", text), path.name


def test_no_hard_coded_storage_class(manifests) -> None:
    for obj in _objects(manifests):
        assert not [p for p, _ in _walk_keys(obj) if p.endswith(".storageClassName")], obj["metadata"]["name"]
    assert "storage_class" not in _hub_config_text(manifests).replace("# ", "")


def test_secret_carries_only_the_placeholder(manifests) -> None:
    secret = _one(manifests, "Secret", "hub-secret")
    assert secret["stringData"] == {"proxy.token": PROXY_TOKEN_PLACEHOLDER}
    assert "data" not in secret
    # the placeholder cannot be mistaken for a token (hex or base64 of one)
    assert not re.fullmatch(r"[0-9a-f]{32,}|[A-Za-z0-9+/=]{40,}", PROXY_TOKEN_PLACEHOLDER)
    assert "REPLACE" in PROXY_TOKEN_PLACEHOLDER
    # and the kubectl way to make a real one is written next to it
    assert 'proxy.token="$(openssl rand -hex 32)"' in (MANIFEST_DIR / "secret-hub.yaml").read_text()


def test_no_file_contains_anything_that_looks_like_a_token() -> None:
    for path in MANIFEST_DIR.glob("*.yaml"):
        text = path.read_text()
        assert not re.search(r"\b[0-9a-fA-F]{32,}\b", text), f"{path.name} contains a long hex string"
        assert "CONFIGPROXY_AUTH_TOKEN=" not in text


def test_pvc_for_the_hub_database(manifests) -> None:
    pvc = _one(manifests, "PersistentVolumeClaim", "hub-db-dir")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"


# --- images, labels, security --------------------------------------------------------------


def test_images_are_the_pinned_ones(manifests) -> None:
    images = {
        (d["metadata"]["name"], c["name"]): c["image"]
        for d in _objects(manifests)
        if d["kind"] == "Deployment"
        for c in _pod_spec(d)["containers"]
    }
    assert images == {("hub", "hub"): HUB_IMAGE, ("proxy", "nginx"): NGINX_IMAGE, ("proxy", "chp"): CHP_IMAGE}
    for image in images.values():
        name, _, tag = image.rpartition(":")
        assert name and tag and tag != "latest" and "/" not in tag, image
    assert f'c.KubeSpawner.image = "{USER_IMAGE}"' in _hub_config_text(manifests)
    assert not any(":latest" in p.read_text() for p in MANIFEST_DIR.glob("*.yaml"))


def test_recommended_labels_everywhere_and_on_pod_templates(manifests) -> None:
    for obj in _objects(manifests):
        labels = obj["metadata"].get("labels", {})
        missing = [key for key in RECOMMENDED_LABELS if key not in labels]
        assert not missing, f"{obj['kind']}/{obj['metadata']['name']} lacks {missing}"
        assert labels["app.kubernetes.io/part-of"] == "jhtutorial"
        if obj["kind"] == "Deployment":
            template_labels = obj["spec"]["template"]["metadata"]["labels"]
            assert all(key in template_labels for key in RECOMMENDED_LABELS)
            selector = obj["spec"]["selector"]["matchLabels"]
            assert selector.items() <= template_labels.items()


@pytest.mark.parametrize("deployment", ["hub", "proxy"])
def test_pods_run_unprivileged_with_requests_and_limits(manifests, deployment: str) -> None:
    spec = _pod_spec(_one(manifests, "Deployment", deployment))
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert "hostNetwork" not in spec and "hostPID" not in spec
    for container in spec["containers"]:
        sc = container["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, container["name"]
        assert sc["capabilities"] == {"drop": ["ALL"]}, container["name"]
        assert sc["runAsUser"] > 0 and sc.get("privileged") is not True, container["name"]
        for part in ("requests", "limits"):
            assert set(container["resources"][part]) == {"cpu", "memory"}, (container["name"], part)
        assert container["imagePullPolicy"] == "IfNotPresent"


# --- Services, ports, selectors ------------------------------------------------------------


def _ports_by_name(container: dict[str, Any]) -> dict[str, int]:
    return {p["name"]: p["containerPort"] for p in container.get("ports", [])}


def test_no_duplicate_container_ports_in_a_pod(manifests) -> None:
    for d in (o for o in _objects(manifests) if o["kind"] == "Deployment"):
        ports = [p for c in _pod_spec(d)["containers"] for p in c.get("ports", [])]
        numbers = [p["containerPort"] for p in ports]
        names = [p["name"] for p in ports]
        assert len(numbers) == len(set(numbers)), f"{d['metadata']['name']}: duplicate port numbers {numbers}"
        assert len(names) == len(set(names)), f"{d['metadata']['name']}: duplicate port names {names}"
        assert all(len(n) <= 15 for n in names)


@pytest.mark.parametrize(
    ("service", "kind", "port", "deployment", "container", "container_port"),
    [
        ("hub", "ClusterIP", 8081, "hub", "hub", 8081),
        ("proxy-api", "ClusterIP", 8001, "proxy", "chp", 8001),
        ("proxy-http", "ClusterIP", 8000, "proxy", "chp", 8000),
        ("proxy-public", "NodePort", 80, "proxy", "nginx", 8080),
    ],
)
def test_service_reaches_the_right_container_port(
    manifests, service: str, kind: str, port: int, deployment: str, container: str, container_port: int
) -> None:
    svc = _one(manifests, "Service", service)
    assert svc["spec"]["type"] == kind
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["port"] == port and "nodePort" not in svc_port
    # the selector picks exactly this Deployment's pods, no other Deployment's
    selector = svc["spec"]["selector"]
    matching = [
        d["metadata"]["name"]
        for d in _objects(manifests)
        if d["kind"] == "Deployment" and selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]
    assert matching == [deployment]
    # the targetPort is a port name that exists, on the container meant
    target = svc_port["targetPort"]
    assert isinstance(target, str), "name the targetPort so a renumbered container cannot silently break it"
    owner = [c["name"] for c in _pod_spec(_one(manifests, "Deployment", deployment))["containers"] if target in _ports_by_name(c)]
    assert owner == [container]
    assert _ports_by_name(_container(_one(manifests, "Deployment", deployment), container))[target] == container_port


def test_user_pods_are_not_picked_by_the_hub_or_proxy_services(manifests) -> None:
    # KubeSpawner labels user pods app.kubernetes.io/name=jupyterhub too; the
    # instance label keeps them out of every Service.
    user_pod_labels = {"app.kubernetes.io/name": "jupyterhub", "app.kubernetes.io/component": "singleuser-server"}
    for svc in (o for o in _objects(manifests) if o["kind"] == "Service"):
        assert not svc["spec"]["selector"].items() <= user_pod_labels.items()


# --- the two Deployments -------------------------------------------------------------------


def test_hub_deployment(manifests) -> None:
    hub = _one(manifests, "Deployment", "hub")
    assert hub["spec"]["replicas"] == 1
    assert hub["spec"]["strategy"] == {"type": "Recreate"}
    spec = _pod_spec(hub)
    assert spec["serviceAccountName"] == "hub"
    assert spec["securityContext"]["fsGroup"] == 1000
    c = _container(hub, "hub")
    assert c["args"][:3] == ["jupyterhub", "--config", "/usr/local/etc/jupyterhub/jupyterhub_config.py"]
    assert "--upgrade-db" in c["args"]
    env = _env(c)
    assert env["POD_NAMESPACE"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert env["CONFIGPROXY_AUTH_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hub-secret", "key": "proxy.token"}}
    assert env["PYTHONUNBUFFERED"]["value"] == "1"
    # the config file comes from the hub-config ConfigMap, the database folder from the PVC
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in c["volumeMounts"]}
    assert mounts["/usr/local/etc/jupyterhub"]["configMap"]["name"] == "hub-config"
    assert mounts["/srv/jupyterhub"]["persistentVolumeClaim"]["claimName"] == "hub-db-dir"
    assert "jupyterhub_config.py" in _one(manifests, "ConfigMap", "hub-config")["data"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert c[probe]["httpGet"] == {"path": "/hub/health", "port": "http"}, probe


def test_proxy_deployment(manifests) -> None:
    proxy = _one(manifests, "Deployment", "proxy")
    assert proxy["spec"]["replicas"] == 1
    assert proxy["spec"]["strategy"] == {"type": "Recreate"}
    spec = _pod_spec(proxy)
    assert spec["serviceAccountName"] == "proxy"
    assert spec["automountServiceAccountToken"] is False
    assert [c["name"] for c in spec["containers"]] == ["nginx", "chp"]
    chp = _container(proxy, "chp")
    flags = dict(arg.split("=", 1) for arg in chp["args"])
    assert flags == {
        "--ip": "",
        "--port": "8000",
        "--api-ip": "",
        "--api-port": "8001",
        "--default-target": "http://hub:8081",
        "--error-target": "http://hub:8081/hub/error",
    }
    # no $(VAR) expansion: those variables exist only if a Service predates the pod
    assert not any("$(" in arg for arg in chp["args"])
    assert _ports_by_name(chp) == {"chp-http": int(flags["--port"]), "chp-api": int(flags["--api-port"])}
    # the default target is the hub Service, on its port
    hub_svc = _one(manifests, "Service", "hub")
    assert flags["--default-target"] == f"http://{hub_svc['metadata']['name']}:{hub_svc['spec']['ports'][0]['port']}"
    assert _env(chp)["CONFIGPROXY_AUTH_TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"name": "hub-secret", "key": "proxy.token"}
    }
    for probe in ("livenessProbe", "readinessProbe"):
        assert chp[probe]["httpGet"] == {"path": "/_chp_healthz", "port": "chp-http"}
        assert _container(proxy, "nginx")[probe]["httpGet"]["port"] == "http"
    for container in spec["containers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


# --- RBAC, as written -------------------------------------------------------------------------


def test_rbac_grants_the_hub_only_what_spawning_needs(manifests) -> None:
    role = _one(manifests, "Role", "hub")
    grants = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    spawn = {"get", "list", "watch", "create", "delete"}
    expected = {("", r, v) for r in ("pods", "persistentvolumeclaims") for v in spawn}
    expected |= {("", "events", v) for v in ("get", "list", "watch")}
    assert grants == expected
    binding = _one(manifests, "RoleBinding", "hub")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hub"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "hub"}]
    kinds = {o["kind"] for o in _objects(manifests)}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
    assert _one(manifests, "ServiceAccount", "proxy")["automountServiceAccountToken"] is False
    # nothing binds the proxy account
    assert all(s["name"] != "proxy" for o in _objects(manifests) if o["kind"] == "RoleBinding" for s in o["subjects"])


# --- the hub's configuration, loaded by JupyterHub and KubeSpawner ----------------------------


def _hub_config_text(manifests) -> str:
    return _one(manifests, "ConfigMap", "hub-config")["data"]["jupyterhub_config.py"]


FAKE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: unused, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: unused, user: {token: unused}}]
contexts: [{name: unused, context: {cluster: unused, user: unused}}]
current-context: unused
"""


@pytest.fixture
def hub_app(manifests, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A JupyterHub application with the ConfigMap's file loaded, environment as in the hub pod."""
    for package, version in HUB_IMAGE_PACKAGES.items():
        installed = importlib.metadata.version(package)
        assert installed == version, (
            f"{package} {installed} is installed, but {HUB_IMAGE} carries {version}: "
            "install the test extra (pip install -e '.[test]')"
        )
    from jupyterhub.app import JupyterHub

    config_dir = tmp_path / "usr/local/etc/jupyterhub"
    config_dir.mkdir(parents=True)
    (config_dir / "jupyterhub_config.py").write_text(_hub_config_text(manifests))
    # what deploy-hub.yaml puts in the environment
    monkeypatch.setenv("POD_NAMESPACE", "learner-7")
    monkeypatch.setenv("CONFIGPROXY_AUTH_TOKEN", "token-from-the-secret")
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    # KubeSpawner reads a kubeconfig when constructed; it never connects here.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    app = JupyterHub()
    app.load_config_file(str(config_dir / "jupyterhub_config.py"))
    return app


def test_hub_config_sets_hub_proxy_and_database(hub_app) -> None:
    from jupyterhub.proxy import ConfigurableHTTPProxy
    from kubespawner import KubeSpawner

    assert hub_app.spawner_class is KubeSpawner
    assert hub_app.hub_bind_url == "http://0.0.0.0:8081"
    assert hub_app.hub_connect_url == "http://hub:8081"
    # an absolute sqlite path inside the PVC mount
    assert hub_app.db_url == "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
    assert hub_app.cookie_secret_file.startswith("/srv/jupyterhub/")
    assert hub_app.cleanup_servers is False
    proxy = ConfigurableHTTPProxy(parent=hub_app)
    assert proxy.should_start is False
    assert proxy.api_url == "http://proxy-api:8001"
    assert proxy.auth_token == "token-from-the-secret"


def test_hub_config_logs_in_admin_admin_with_the_deprecated_dummy_password(hub_app) -> None:
    from jupyterhub.auth import DummyAuthenticator

    assert hub_app.authenticator_class is DummyAuthenticator
    with pytest.warns(DeprecationWarning, match="DummyAuthenticator.password is deprecated"):
        auth = hub_app.authenticator_class(parent=hub_app)
    assert auth.password == "admin"
    assert auth.admin_users == {"admin"}

    async def login(user: str, password: str) -> str | None:
        return await auth.authenticate(None, {"username": user, "password": password})

    assert asyncio.run(login("admin", "admin")) == "admin"
    assert asyncio.run(login("admin", "wrong")) is None


class _User(SimpleNamespace):
    """The few attributes of a JupyterHub user that KubeSpawner reads when building manifests."""


def test_hub_config_makes_jupyter_admin_with_claim_admin(hub_app) -> None:
    from kubernetes_asyncio.client import ApiClient as AsyncApiClient

    async def build() -> tuple[Any, dict[str, Any], dict[str, Any]]:
        user = _User(name="admin", id=1, url="/user/admin/", server=None)
        spawner = hub_app.spawner_class(parent=hub_app, user=user, _mock=True)
        pod, pvc = await spawner.get_pod_manifest(), spawner.get_pvc_manifest()
        # the JSON bodies KubeSpawner would send to the API server
        async with AsyncApiClient() as api:
            return spawner, api.sanitize_for_serialization(pod), api.sanitize_for_serialization(pvc)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # the client session KubeSpawner opens, unused here
        spawner, pod, pvc = asyncio.run(build())

    assert spawner.namespace == "learner-7"  # from POD_NAMESPACE, as in the hub pod
    assert spawner.pod_name == "jupyter-admin"
    assert spawner.pvc_name == "claim-admin"
    assert spawner.storage_pvc_ensure is True
    assert spawner.start_timeout >= 300

    assert pod["metadata"]["name"] == "jupyter-admin"
    assert pvc["metadata"]["name"] == "claim-admin"
    # the tutorial's own label reaches both (KubeSpawner's common labels do not override it), beside
    # KubeSpawner's generic ones; whose server and home they are is in the username annotation
    for made in (pod, pvc):
        assert made["metadata"]["labels"]["app.kubernetes.io/part-of"] == "jhtutorial"
        assert made["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kubespawner"
        assert made["metadata"]["annotations"]["hub.jupyter.org/username"] == "admin"
    (container,) = pod["spec"]["containers"]
    assert container["image"] == USER_IMAGE
    assert container["args"] == ["jupyterhub-singleuser"]
    assert [p["containerPort"] for p in container["ports"]] == [8888]
    (home_mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/home/jovyan"]
    (home,) = [v for v in pod["spec"]["volumes"] if v["name"] == home_mount["name"]]
    assert home["persistentVolumeClaim"]["claimName"] == "claim-admin"
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["runAsUser"] == 1000 and sc["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"] == {"fsGroup": 100, "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert set(container["resources"]) == {"requests", "limits"}
    assert "namespace" not in pod["metadata"]  # KubeSpawner passes it with the request

    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"] == {"storage": "1Gi"}
    assert "storageClassName" not in pvc["spec"]  # the cluster's default class
    assert "volume.beta.kubernetes.io/storage-class" not in pvc["metadata"].get("annotations", {})


def test_hub_config_pod_names_for_other_users_are_valid_kubernetes_names(hub_app) -> None:
    async def names(user_name: str) -> tuple[str, str]:
        spawner = hub_app.spawner_class(parent=hub_app, user=_User(name=user_name, id=2, url="/", server=None), _mock=True)
        return spawner.pod_name, spawner.pvc_name

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for user_name in ("alice", "Bob.Smith@example.org"):
            for name in asyncio.run(names(user_name)):
                assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) and len(name) <= 63, name


# --- nginx: the proxy pod's configuration through `nginx -t` -----------------------------------


def _nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None)
    if not found:
        pytest.fail(
            f"nginx is not installed, and this test runs `nginx -t` on the proxy's configuration. "
            f"Install Debian's {NGINX_PACKAGE} package: apt-get update && apt-get install -y {NGINX_PACKAGE}"
        )
    return found


def _mime_types(nginx: str) -> Path:
    # The image brings /etc/nginx/mime.types; the Debian package installs the same file.
    out = subprocess.run([nginx, "-V"], capture_output=True, text=True).stderr
    conf = re.search(r"--conf-path=(\S+)", out)
    candidate = Path(conf.group(1)).parent / "mime.types" if conf else Path("/etc/nginx/mime.types")
    if not candidate.is_file():
        pytest.fail(f"{candidate} is missing: reinstall {NGINX_PACKAGE} (apt-get install --reinstall {NGINX_PACKAGE})")
    return candidate


def _reproduce_nginx_mounts(manifests, root: Path, edit: dict[str, str] | None = None) -> tuple[list[str], set[Path]]:
    """Lay the proxy pod's nginx files out under ``root`` as its volumeMounts do.

    Returns the container's args with the mounted paths moved under ``root``,
    and the folders that are writable in the pod (emptyDir mounts).
    """
    proxy = _one(manifests, "Deployment", "proxy")
    nginx = _container(proxy, "nginx")
    volumes = {v["name"]: v for v in _pod_spec(proxy)["volumes"]}
    config_maps = {o["metadata"]["name"]: dict(o["data"]) for o in _objects(manifests) if o["kind"] == "ConfigMap"}
    for key, text in (edit or {}).items():
        cm_name, _, data_key = key.partition("/")
        config_maps[cm_name][data_key] = text
    writable: set[Path] = set()
    for mount in nginx["volumeMounts"]:
        volume = volumes[mount["name"]]
        target = root / mount["mountPath"].lstrip("/")
        if "configMap" in volume:
            data = config_maps[volume["configMap"]["name"]]
            if "subPath" in mount:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(data[mount["subPath"]])
            else:
                target.mkdir(parents=True, exist_ok=True)
                for name, text in data.items():
                    (target / name).write_text(text)
        elif "emptyDir" in volume:
            target.mkdir(parents=True, exist_ok=True)
            writable.add(target)
        else:
            raise AssertionError(f"unexpected volume type in {volume}")
    mime = root / "etc/nginx/mime.types"
    if not mime.exists():
        shutil.copy(_mime_types(_nginx_binary()), mime)
    args = list(nginx["args"])
    assert args[0] == "nginx"
    for flag in ("-p", "-c"):
        at = args.index(flag) + 1
        assert args[at].startswith("/"), f"{flag} must be absolute in the container"
        args[at] = str(root) + args[at]
    return args, writable


def _nginx_t(manifests, root: Path, edit: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess[str], set[Path], set[Path]]:
    """Run `nginx -t` with the container's own flags on the reproduced layout.

    Returns the result, the writable (emptyDir) folders, and the paths nginx created.
    """
    nginx = _nginx_binary()
    args, writable = _reproduce_nginx_mounts(manifests, root, edit)
    before = set(root.rglob("*"))
    result = subprocess.run([nginx, "-t", *args[1:]], capture_output=True, text=True, timeout=60)
    return result, writable, set(root.rglob("*")) - before


def test_nginx_config_passes_nginx_t_with_the_mounted_layout(manifests, tmp_path: Path) -> None:
    result, writable, created = _nginx_t(manifests, tmp_path / "pod")
    assert result.returncode == 0, f"nginx -t failed:\n{result.stderr}"
    assert "test is successful" in result.stderr
    # Everything nginx creates must lie in the emptyDir: the container's root
    # filesystem is read-only, so any other path would fail in the pod.
    stray = sorted(str(p) for p in created if not any(w in p.parents for w in writable))
    assert not stray, f"nginx wrote outside the writable emptyDir: {stray}"
    assert any((w / "client_temp").is_dir() for w in writable), "request buffers must go to the emptyDir"


def test_nginx_t_is_not_a_rubber_stamp(manifests, tmp_path: Path) -> None:
    routes = _one(manifests, "ConfigMap", "nginx-routes")["data"]["jupyterhub.conf"]
    broken = routes.replace("proxy_http_version 1.1;", "proxy_http_version 1.1", 1)
    assert broken != routes
    result, _, _ = _nginx_t(manifests, tmp_path / "pod", edit={"nginx-routes/jupyterhub.conf": broken})
    assert result.returncode != 0
    assert "jupyterhub.conf" in result.stderr


def test_nginx_roles_of_the_two_config_maps(manifests) -> None:
    main = _one(manifests, "ConfigMap", "nginx-proxy-config")["data"]
    routes = _one(manifests, "ConfigMap", "nginx-routes")["data"]
    assert list(main) == ["nginx.conf"] and list(routes) == ["jupyterhub.conf"]
    main_conf, routes_conf = main["nginx.conf"], routes["jupyterhub.conf"]
    # cm-nginx: process settings and limits, no routing
    assert re.search(r"^\s*client_max_body_size\s+\d+m;", main_conf, re.M)
    assert re.search(r"^\s*include\s+conf\.d/\*\.conf;", main_conf, re.M)
    assert "server {" not in main_conf and not re.search(r"^\s*user\s", main_conf, re.M)
    # cm-ingress: the server block, with WebSocket support, towards CHP in the same pod
    chp_port = _ports_by_name(_container(_one(manifests, "Deployment", "proxy"), "chp"))["chp-http"]
    nginx_port = _ports_by_name(_container(_one(manifests, "Deployment", "proxy"), "nginx"))["http"]
    assert f"proxy_pass http://127.0.0.1:{chp_port};" in routes_conf
    assert re.search(rf"^\s*listen\s+{nginx_port};", routes_conf, re.M)
    for line in (
        "map $http_upgrade $connection_upgrade",
        "proxy_http_version 1.1;",
        "proxy_set_header Upgrade $http_upgrade;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_buffering off;",
    ):
        assert line in routes_conf, line
    # no absolute file paths but the container's standard streams
    for conf in (main_conf, routes_conf):
        for directive, arg in re.findall(
            r"^\s*(pid|error_log|access_log|include|root|alias|\w+_temp_path)\s+(\S+?);?$", conf, re.M
        ):
            assert not arg.startswith("/") or arg in ("/dev/stdout", "/dev/stderr"), (directive, arg)


# --- bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "reason"),
    [
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n data: {}\n", 5, "YAML syntax error"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n\tname: a\n", 4, "YAML syntax error"),
        ('apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: "a\n', 5, "YAML syntax error"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\napiVersion: apps/v1\nkind: Deploymnet\nmetadata:\n  name: b\n", 6, "unknown kind 'Deploymnet'"),
        ("apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata:\n  name: hub\n", 1, "unknown apiVersion 'extensions/v1beta1'"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: '1'\n  x: '2'\n", 7, "key 'x' appears twice"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {}\n", 4, "has no metadata.name"),
        ("apiVersion: v1\nmetadata:\n  name: a\n", 1, "has no kind"),
        ("- apiVersion: v1\n", 1, "must be one Kubernetes object"),
    ],
)
def test_bad_manifest_fails_with_file_line_and_reason(tmp_path: Path, text: str, line: int, reason: str) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    err = caught.value
    assert isinstance(err, TutorialError)
    assert (err.path, err.line) == (str(path), line)
    assert reason in err.reason
    assert str(err).startswith(f"{path}:{line}: ")
    assert err.fix, "every manifest error says what to do"


def test_unknown_kind_suggests_the_close_one(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("apiVersion: v1\nkind: Servce\nmetadata:\n  name: hub\n")
    with pytest.raises(ManifestError, match="unknown kind 'Servce'") as caught:
        load_manifest(path)
    assert caught.value.fix == "did you mean 'Service'?"


def test_missing_file_names_the_tutorial_files() -> None:
    with pytest.raises(ManifestError, match="no such file") as caught:
        load_manifest("deploy-hubb.yaml")
    assert "deploy-hub.yaml" in (caught.value.fix or "")


def test_empty_documents_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "sparse.yaml"
    path.write_text("---\n# only a comment\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n---\n")
    assert [o["metadata"]["name"] for o in load_manifest(path)] == ["a"]


# --- the documentation next to the files ---------------------------------------------------------


def test_readme_describes_every_file_and_the_differences() -> None:
    readme = (MANIFEST_DIR / "README.md").read_text()
    for name in MANIFEST_FILES:
        assert name in readme, name
    assert "## Differences from the original" in readme
    assert 'kubectl create secret generic hub-secret --from-literal=proxy.token="$(openssl rand -hex 32)"' in readme
    assert PROXY_TOKEN_PLACEHOLDER in readme
    assert "shared-password" in readme  # the DummyAuthenticator upgrade path


def test_the_clean_up_looks_for_every_kind_the_manifests_define() -> None:
    """clean_up() and its kubectl lines select by label per kind: a kind missing there would be left behind."""
    from jhtutorial.steps import CLEANUP_RESOURCES, STEPS

    kinds = {obj["kind"] for step in STEPS for obj in step.objects()} | {"Pod"}  # Pod: the user servers
    assert {resource.kind for resource in CLEANUP_RESOURCES} == kinds
    assert CLEANUP_RESOURCES[0].kind == "Deployment"  # no hub is left to start a user pod meanwhile
