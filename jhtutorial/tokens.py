"""ServiceAccount tokens from the TokenRequest API: one helper for every caller.

    >>> token = request_token(kube, "jhub", "hub", seconds=600)     # doctest: +SKIP

What ``kubectl create token hub -n jhub --duration 10m`` prints. With
``bound_pod=(name, uid)`` the token is bound to that pod, as the kubelet asks
for a pod's own token: it stops working when the pod is deleted.
The token is returned, never printed or logged.
"""

from __future__ import annotations

from typing import Any

from .kubeapi import SERVICE_ACCOUNTS, KubeApi


def request_token(kube: KubeApi, namespace: str, account: str, *, seconds: int = 600,
                  bound_pod: tuple[str, str] | None = None) -> str:
    """A token of ServiceAccount ``account`` in ``namespace``, valid for ``seconds`` (600 is the API's minimum)."""
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if bound_pod is not None:
        spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": bound_pod[0], "uid": bound_pod[1]}
    answer = kube.call("POST", SERVICE_ACCOUNTS.path(namespace, account, "token"),
                       body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    return str(answer["status"]["token"])
