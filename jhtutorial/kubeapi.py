"""A thin, counted HTTP layer over the official client's ApiClient.

The rest of the package works with plain dicts (what ``kubectl get -o json``
shows) instead of the generated model classes: manifests arrive as dicts,
server-side apply sends dicts, and a watch stream is lines of JSON. Going
through one small function also lets every caller count the requests it makes
(the wait benchmark depends on that) and turns HTTP failures into errors a
learner can act on.

    >>> api = KubeApi(connection.api)                       # doctest: +SKIP
    >>> api.get(PODS.path("jhub"))["items"][0]["metadata"]["name"]  # doctest: +SKIP
    'hub-5d9f7c7b8-x2x9q'
    >>> api.requests                                          # doctest: +SKIP
    1
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes.client import ApiClient

from .credentials import bearer_token, unauthorized_reason
from .errors import ClusterUnreachable, Forbidden, KubeApiError, Unauthorized

# (connect, read) seconds for ordinary requests; watches pass their own.
DEFAULT_TIMEOUT = (5.0, 30.0)

# Network failures that mean "the server is not there right now" (as opposed
# to "the server answered no"). urllib3 raises these from request() and from
# reads of a streaming body.
CONNECTION_ERRORS = (
    urllib3.exceptions.HTTPError,  # MaxRetryError, ProtocolError, ReadTimeoutError, ...
    ConnectionError,
    TimeoutError,
    OSError,
)


@dataclass(frozen=True)
class Resource:
    """Where a kind lives in the API: ``Resource("apps/v1", "Deployment", "deployments")``."""

    api_version: str
    kind: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path, e.g. ``/apis/apps/v1/namespaces/jhub/deployments/hub``."""
        prefix = f"/api/{self.api_version}" if "/" not in self.api_version else f"/apis/{self.api_version}"
        parts = [prefix]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{quote(namespace, safe='')}")
        parts.append(self.plural)
        if name:
            parts.append(quote(name, safe=""))
            if subresource:
                parts.append(subresource)
        return "/".join(parts)


# The kinds the tutorial touches, so most requests need no discovery round trip.
NAMESPACES = Resource("v1", "Namespace", "namespaces", namespaced=False)
NODES = Resource("v1", "Node", "nodes", namespaced=False)
PODS = Resource("v1", "Pod", "pods")
EVENTS = Resource("v1", "Event", "events")
SERVICES = Resource("v1", "Service", "services")
CONFIGMAPS = Resource("v1", "ConfigMap", "configmaps")
SECRETS = Resource("v1", "Secret", "secrets")
SERVICE_ACCOUNTS = Resource("v1", "ServiceAccount", "serviceaccounts")
PVCS = Resource("v1", "PersistentVolumeClaim", "persistentvolumeclaims")
PVS = Resource("v1", "PersistentVolume", "persistentvolumes", namespaced=False)
RESOURCE_QUOTAS = Resource("v1", "ResourceQuota", "resourcequotas")
DEPLOYMENTS = Resource("apps/v1", "Deployment", "deployments")
REPLICASETS = Resource("apps/v1", "ReplicaSet", "replicasets")
ENDPOINT_SLICES = Resource("discovery.k8s.io/v1", "EndpointSlice", "endpointslices")
STORAGE_CLASSES = Resource("storage.k8s.io/v1", "StorageClass", "storageclasses", namespaced=False)
ROLES = Resource("rbac.authorization.k8s.io/v1", "Role", "roles")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings")
CLUSTER_ROLES = Resource("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", namespaced=False)
CLUSTER_ROLE_BINDINGS = Resource(
    "rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False
)
INGRESSES = Resource("networking.k8s.io/v1", "Ingress", "ingresses")
KNOWN_RESOURCES = {
    (r.api_version, r.kind): r
    for r in (
        NAMESPACES, NODES, PODS, EVENTS, SERVICES, CONFIGMAPS, SECRETS, SERVICE_ACCOUNTS, PVCS, PVS,
        RESOURCE_QUOTAS, DEPLOYMENTS, REPLICASETS, ENDPOINT_SLICES, STORAGE_CLASSES, ROLES, ROLE_BINDINGS,
        CLUSTER_ROLES, CLUSTER_ROLE_BINDINGS, INGRESSES,
    )
}


class KubeApi:
    """Send requests through an ApiClient, count them, translate failures.

    One KubeApi per job (a wait, an apply, a watch) keeps each job's request
    count its own even when several share one ApiClient (and its connection pool).
    """

    def __init__(self, api_client: ApiClient) -> None:
        self.api_client = api_client
        self._count_lock = threading.Lock()
        self._requests = 0
        self._discovered: dict[tuple[str, str], Resource] = {}

    @property
    def requests(self) -> int:
        """How many HTTP requests this object has sent (successful or not)."""
        return self._requests

    @property
    def server(self) -> str:
        return self.api_client.configuration.host

    @property
    def token(self) -> str | None:
        """The bearer token these requests carry, if the credentials are one (not a client certificate)."""
        return bearer_token(self._auth_headers().get("authorization"))

    def _auth_headers(self) -> dict[str, str]:
        """The credentials' headers, as the client's configuration gives them (its own documented
        ``auth_settings()``, which also refreshes a token an exec plugin or a kubeconfig provides)."""
        settings = self.api_client.configuration.auth_settings().values()
        return {s["key"]: s["value"] for s in settings if s.get("in") == "header" and s.get("value")}

    def _prepare(self, path: str, query_pairs: list[tuple[str, str]], headers: dict[str, str]) -> tuple[str, dict[str, str]]:
        """URL and headers of a request: the configured server, the client's default headers (User-Agent),
        the credentials. Built here rather than by the generated client's request helpers, whose signatures
        changed between client releases; the connection pool (TLS, client certificates, proxy) is its own."""
        url = self.api_client.configuration.host.rstrip("/") + path
        if query_pairs:
            url += "?" + urlencode(query_pairs)
        return url, {**self.api_client.default_headers, **headers, **self._auth_headers()}

    def _send(self, method: str, url: str, headers: dict[str, str], **options: Any) -> urllib3.BaseHTTPResponse:
        """One request through the client's connection pool, counted; no answer at all becomes
        ClusterUnreachable (or a TLS failure), an HTTP error status is left to the caller."""
        with self._count_lock:
            self._requests += 1
        try:
            return self.api_client.rest_client.pool_manager.request(method, url, headers=headers, **options)
        except urllib3.exceptions.SSLError as err:
            raise tls_failure(self.server, err) from None
        except CONNECTION_ERRORS as err:
            raise unreachable(self.server, err) from None

    def open(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = DEFAULT_TIMEOUT,
    ) -> urllib3.BaseHTTPResponse:
        """Send one request and return the raw, unread urllib3 response (for streams).

        Raises ClusterUnreachable when no answer came; HTTP errors are left to
        the caller (see :func:`raise_for_status`).
        """
        query_pairs = [(k, _query_value(v)) for k, v in (query or {}).items() if v is not None]
        headers = {"Accept": "application/json"}
        payload: bytes | None = None
        if body is not None:
            headers["Content-Type"] = content_type
            # JSON for every content type used here: apply-patch+yaml accepts it too (JSON is YAML)
            payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        url, headers = self._prepare(path, query_pairs, headers)
        return self._send(method, url, headers, body=payload, timeout=_timeout(timeout), preload_content=False)

    def probe(self, path: str, *, timeout: float) -> dict[str, Any]:
        """One GET with no retry and ``timeout`` seconds in all: does the server answer at all?

        The pool's retries help later requests over a connection the server
        dropped; for a first contact they would only multiply the wait.
        """
        url, headers = self._prepare(path, [], {"Accept": "application/json"})
        response = self._send("GET", url, headers, timeout=urllib3.Timeout(total=timeout), retries=False)
        raise_for_status(response.status, response.data, what=f"GET {path}", token=self.token)
        return json.loads(response.data) if response.data else {}

    def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float | tuple[float, float] | None = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """Send one request, read the whole answer, return it as a dict (or raise)."""
        response = self.open(method, path, query=query, body=body, content_type=content_type, timeout=timeout)
        try:
            data = response.data
        except CONNECTION_ERRORS as err:
            raise unreachable(self.server, err) from None
        finally:
            response.release_conn()
        raise_for_status(response.status, data, what=f"{method} {path}", token=self.token)
        return json.loads(data) if data else {}

    def get(self, path: str, **query: Any) -> dict[str, Any]:
        return self.call("GET", path, query=query)

    def get_or_none(self, path: str) -> dict[str, Any] | None:
        """GET an object, or None if it does not exist."""
        try:
            return self.get(path)
        except KubeApiError as err:
            if err.status == 404:
                return None
            raise

    def resource_for(self, api_version: str, kind: str) -> Resource:
        """Resolve apiVersion+kind to a Resource, asking the server only for kinds we do not know."""
        key = (api_version, kind)
        if key in KNOWN_RESOURCES:
            return KNOWN_RESOURCES[key]
        if key not in self._discovered:
            prefix = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
            try:
                listing = self.get(prefix)
            except KubeApiError as err:
                if err.status == 404:
                    raise KubeApiError(
                        f"the cluster does not serve apiVersion {api_version!r} (needed for kind {kind})",
                        fix="check the manifest's apiVersion against `kubectl api-versions`",
                        status=404,
                        reason="NotFound",
                    ) from None
                raise
            for entry in listing.get("resources", []):
                if "/" not in entry["name"]:  # skip subresources such as pods/status
                    found = Resource(api_version, entry["kind"], entry["name"], entry.get("namespaced", True))
                    self._discovered[(api_version, entry["kind"])] = found
            if key not in self._discovered:
                raise KubeApiError(
                    f"the cluster serves {api_version} but has no kind {kind!r} in it",
                    fix="check the manifest's kind against `kubectl api-resources`",
                    status=404,
                    reason="NotFound",
                )
        return self._discovered[key]


def raise_for_status(status: int, data: bytes | None, *, what: str, token: str | None = None) -> None:
    """Turn an HTTP error answer into the matching TutorialError (2xx passes).

    ``token``: the bearer token the request carried; a 401 then says whether it expired or was withdrawn."""
    if 200 <= status < 300:
        return
    message, reason = _status_message(data)
    message = message or f"{what} failed with HTTP {status}"
    explained = unauthorized_reason(token) if status == 401 else None
    if explained is not None:
        raise Unauthorized(explained[0], fix=explained[1])
    if status == 401:
        raise Unauthorized(
            f"the API server rejected the credentials (401 Unauthorized): {message}",
            fix="the token or client certificate in the kubeconfig is wrong or expired; log in again "
            "(or regenerate the kubeconfig; for the local cluster: `jhtutorial cluster up`)",
        )
    if status == 403:
        fix = POD_SECURITY_FIX if "violates PodSecurity" in message else forbidden_fix(what)
        raise Forbidden(message, fix=fix, status=403, reason=reason or "Forbidden")
    raise KubeApiError(message, status=status, reason=reason)


# A 403 from Pod Security admission is about the pod, not about the caller's rights: no Role changes it.
POD_SECURITY_FIX = ("the namespace enforces a Pod Security level (its label pod-security.kubernetes.io/enforce, "
                    "shown in the message): give the pod what that level asks for (runAsNonRoot, "
                    "allowPrivilegeEscalation: false, capabilities drop ALL, seccompProfile RuntimeDefault) and "
                    "drop what it refuses (hostPath volumes, privileged, hostNetwork/hostPID, runAsUser 0)")


def forbidden_fix(what: str) -> str:
    """What to do about a 403, for a request described as "METHOD PATH" (or "apply Kind/name")."""
    path = what.split(" ", 1)[-1].split("?", 1)[0]
    if path.startswith("/") and not _is_namespace_object(path) and "/namespaces/" not in path:
        return ("this needs a cluster-wide permission, which only a ClusterRole bound by a ClusterRoleBinding "
                "gives (a Role in your namespace cannot): ask your instructor or a cluster admin")
    return ("ask your instructor or a cluster admin for a Role in your namespace that allows this "
            "(`kubectl auth can-i --list -n NS` shows what you may do), or work in a namespace you own: "
            "the notebooks' `namespace` parameter, `--namespace` on the command line")


def _is_namespace_object(path: str) -> bool:
    """``/api/v1/namespaces/NAME``: the Namespace object itself, which a Role in it can let you read."""
    parts = path.strip("/").split("/")
    return len(parts) == 4 and parts[:3] == ["api", "v1", "namespaces"]


def tls_failure(server: str, detail: object) -> ClusterUnreachable:
    return ClusterUnreachable(
        f"TLS handshake with the API server at {server} failed: {detail}",
        fix="the kubeconfig's certificate authority does not match the server (an old kubeconfig of a "
        "recreated cluster?): regenerate the kubeconfig (for the local cluster: `jhtutorial cluster up`)",
    )


def unreachable(server: str, err: BaseException) -> ClusterUnreachable:
    detail = str(getattr(err, "reason", None) or err)
    return ClusterUnreachable(
        f"no answer from the Kubernetes API server at {server}: {detail}",
        fix="is the cluster running? The local cluster starts with `jhtutorial cluster up` (or `make run`); "
        "minikube with `minikube start`; otherwise check `kubectl cluster-info` and your network/VPN",
    )


def _status_message(data: bytes | None) -> tuple[str, str]:
    """The message and reason of a Kubernetes Status answer."""
    if not data:
        return "", ""
    try:
        status = json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace").strip()[:500], ""
    if not isinstance(status, dict):
        return "", ""
    return str(status.get("message", "")), str(status.get("reason", ""))


def _timeout(timeout: float | tuple[float, float] | None) -> urllib3.Timeout | None:
    """``5`` (seconds in all) or ``(connect, read)``, as the official client's ``_request_timeout``."""
    if timeout is None:
        return None
    if isinstance(timeout, tuple):
        return urllib3.Timeout(connect=timeout[0], read=timeout[1])
    return urllib3.Timeout(total=timeout)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
