"""A backed pod's ServiceAccount credentials, as the kubelet hands them to a container.

One token per pod, asked for as the kubelet asks (a TokenRequest bound to the pod, so it dies with it), then
written the way the pod's programs read it: a projected folder (``token``, ``ca.crt``, ``namespace``) mounted at
``/var/run/secrets/kubernetes.io/serviceaccount`` in a sandbox, or a kubeconfig for programs run as processes.

    >>> folder = service_account_folder(pod_folder, pod_token(kube, pod), cluster_entry, "jhtutorial")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from ...kubeapi import KubeApi
from ...tokens import request_token
from .mounts import create_file

Obj = dict[str, Any]
TOKEN_SECONDS = 24 * 3600


def service_account_name(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("serviceAccountName") or "default")


def pod_token(kube: KubeApi, pod: Obj) -> str:
    """A token of the pod's ServiceAccount, bound to the pod (it stops working when the pod is deleted)."""
    meta = pod["metadata"]
    return request_token(kube, meta["namespace"], service_account_name(pod), seconds=TOKEN_SECONDS,
                         bound_to=("Pod", meta["name"], meta["uid"])).value


def service_account_folder(folder: Path, token: str, cluster: Obj, namespace: str) -> Path:
    """``folder``/serviceaccount holding what the kubelet projects: the token, the cluster's CA, the namespace."""
    projected = folder / "serviceaccount"
    projected.mkdir(mode=0o755, exist_ok=True)
    ca = cluster.get("certificate-authority-data")
    ca_bytes = base64.b64decode(ca) if ca else Path(cluster["certificate-authority"]).read_bytes()
    for name, content in (("token", token.encode()), ("ca.crt", ca_bytes), ("namespace", namespace.encode())):
        (projected / name).unlink(missing_ok=True)  # created anew with its mode, never widened after
        create_file(projected / name, 0o644, content)
    return projected


def kubeconfig_file(folder: Path, token: str, cluster: Obj, namespace: str, account: str) -> Path:
    """``folder``/kubeconfig (mode 0600) for a program run as a process of this machine: the same token."""
    path = folder / "kubeconfig"
    create_file(path, 0o600, yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "pod", "context": {"cluster": "cluster", "user": account, "namespace": namespace}}],
        "current-context": "pod",
    }).encode())
    return path
