"""Who may do what: ``kubectl auth can-i`` from a cell, and a client acting as a ServiceAccount.

    >>> nb.can_i(conn, "get", "secrets", service_account="hub")     # doctest: +SKIP
    True
    >>> hub = nb.service_account_client(conn, "hub")               # doctest: +SKIP   (kubectl create token hub)
    >>> hub.get(PODS.path(conn.namespace))                         # doctest: +SKIP   (as the hub would)
"""

from __future__ import annotations

import copy
from typing import Any

from kubernetes.client import ApiClient

from ..connect import Connection
from ..errors import Forbidden
from ..kubeapi import KubeApi
from ..tokens import request_token
from .reads import kube

Obj = dict[str, Any]


def can_i(conn: Connection, verb: str, resource: str, *, service_account: str | None = None,
          group: str = "", namespace: str | None = None) -> bool | None:
    """Ask the API server's authorizer, like ``kubectl auth can-i VERB RESOURCE [--as=system:serviceaccount:NS:SA]``.

    ``namespace=""`` asks about all namespaces (a cluster-wide permission).
    Without ``service_account`` it asks about you (the kubeconfig's user): anyone may ask that.
    A question about an account in all namespaces is a SubjectAccessReview, a cluster-wide right
    that a learner limited to a namespace lacks: then the answer is None (not allowed to ask).
    """
    where = conn.namespace if namespace is None else namespace
    attributes = {"verb": verb, "resource": resource, "group": group, "namespace": where}
    spec: Obj = {"resourceAttributes": attributes}
    if service_account is None:
        kind, path = "SelfSubjectAccessReview", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
    else:
        ns = conn.namespace
        spec.update(user=f"system:serviceaccount:{ns}:{service_account}",
                    groups=["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"])
        # a question about one namespace is a LocalSubjectAccessReview there: a namespace admin may ask it
        kind, path = (("LocalSubjectAccessReview",
                       f"/apis/authorization.k8s.io/v1/namespaces/{where}/localsubjectaccessreviews") if where
                      else ("SubjectAccessReview", "/apis/authorization.k8s.io/v1/subjectaccessreviews"))
    body = {"apiVersion": "authorization.k8s.io/v1", "kind": kind, "spec": spec,
            "metadata": {"namespace": where} if kind.startswith("Local") else {}}
    try:
        answer = kube(conn).call("POST", path, body=body)
    except Forbidden:
        if kind != "SubjectAccessReview":
            raise
        return None
    return bool((answer.get("status") or {}).get("allowed"))


def yes_no(answer: bool | None) -> str:
    """A can_i answer as a table cell: yes, no, or ? (not allowed to ask)."""
    return "?" if answer is None else ("yes" if answer else "no")


def service_account_client(conn: Connection, name: str, *, seconds: int = 600) -> KubeApi:
    """A client that acts as ServiceAccount ``name``, with a short-lived token from the TokenRequest API
    (``kubectl create token NAME --duration 10m``). The token stays in memory and is never shown."""
    token = request_token(kube(conn), conn.namespace, name, seconds=seconds)
    configuration = copy.copy(conn.api.configuration)
    configuration.api_key = {"authorization": "Bearer " + token.value}
    configuration.api_key_prefix = {}
    # nothing of the kubeconfig's user may come along: not its client certificate, and not the hook that
    # refreshes its token (exec plugins, cloud logins) and would put that token back in place of ours
    configuration.cert_file = configuration.key_file = None
    configuration.refresh_api_key_hook = None
    configuration.username = configuration.password = None
    return KubeApi(ApiClient(configuration))
