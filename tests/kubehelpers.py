"""Helpers for tests that need a second, less privileged user or a hand-made kubeconfig.

The admin kubeconfig is system:masters, which RBAC never restricts, so tests
about permissions run as a ServiceAccount with a Role of their choosing and a
token from the TokenRequest API (what `kubectl create token` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from jhtutorial.localcluster.ports import free_port  # noqa: F401 - the tests' one free-port finder


def kubeconfig_file(path: Path, server: str, user: dict[str, Any], *, ca: str | None, context: str = "test") -> Path:
    """Write a one-context kubeconfig for ``server`` with the given user entry."""
    cluster: dict[str, Any] = {"server": server}
    if ca:
        cluster["certificate-authority"] = ca
    else:
        cluster["insecure-skip-tls-verify"] = True
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": cluster}],
        "users": [{"name": context, "user": user}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
        "current-context": context,
    }))
    return path


def service_account_kubeconfig(
    api_client: client.ApiClient, namespace: str, name: str, rules: list[dict[str, Any]], path: Path,
    *, cluster_role: str | None = None, context: str = "test",
) -> Path:
    """A kubeconfig for ServiceAccount ``name`` that may do exactly ``rules`` in ``namespace``,
    or what ``cluster_role`` allows there (bound by a RoleBinding, so only in ``namespace``)."""
    core = client.CoreV1Api(api_client)
    rbac = client.RbacAuthorizationV1Api(api_client)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
    if cluster_role:
        rbac.create_namespaced_role_binding(namespace, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": f"{name}-{cluster_role}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        })
    if rules:
        rbac.create_namespaced_role(namespace, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name}, "rules": rules,
        })
        rbac.create_namespaced_role_binding(namespace, {
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        })
    token = core.create_namespaced_service_account_token(
        name, namespace, client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=3600))
    ).status.token
    configuration = api_client.configuration
    return kubeconfig_file(path, configuration.host, {"token": token}, ca=configuration.ssl_ca_cert,
                           context=context)


def namespace_admin_kubeconfig(api_client: client.ApiClient, namespace: str, path: Path,
                               name: str = "learner") -> Path:
    """A workshop learner: the built-in ``admin`` ClusterRole, bound by a RoleBinding in ``namespace`` only.

    Such a learner may create Roles and RoleBindings there, but not ``bind`` or ``escalate``, and may read
    nothing cluster-wide (nodes, StorageClasses, PersistentVolumes, cluster-wide SubjectAccessReviews)."""
    return service_account_kubeconfig(api_client, namespace, name, [], path, cluster_role="admin",
                                      context=f"learner-{namespace}")
