"""ServiceAccount tokens from the TokenRequest API: one helper for every caller.

    >>> token = request_token(kube, "jhub", "hub", seconds=600)     # doctest: +SKIP
    >>> token.expires                                               # doctest: +SKIP
    '2026-12-02T10:14:00Z'

What ``kubectl create token hub -n jhub --duration 10m`` prints. With
``bound_to=("Pod", name, uid)`` the token is bound to that object, as the kubelet
asks for a pod's own token: it stops working when the object is deleted.
The token is returned, never printed or logged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .kubeapi import SERVICE_ACCOUNTS, KubeApi


@dataclass(frozen=True)
class Token:
    value: str = ""
    expires: str = ""  # RFC 3339, as the API server wrote it

    def __repr__(self) -> str:
        return f"Token(expires={self.expires!r})"  # never the value


def request_token(kube: KubeApi, namespace: str, account: str, *, seconds: int = 600,
                  bound_to: tuple[str, str, str] | None = None) -> Token:
    """A token of ServiceAccount ``account`` in ``namespace``, valid for ``seconds`` (600 is the API's minimum).

    ``bound_to``: (kind, name, uid) of a Pod or Secret the token dies with.
    """
    spec: dict[str, Any] = {"expirationSeconds": seconds}
    if bound_to is not None:
        kind, name, uid = bound_to
        spec["boundObjectRef"] = {"apiVersion": "v1", "kind": kind, "name": name, "uid": uid}
    answer = kube.call("POST", SERVICE_ACCOUNTS.path(namespace, account, "token"),
                       body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec})
    status = answer.get("status") or {}
    return Token(str(status["token"]), str(status.get("expirationTimestamp", "")))
