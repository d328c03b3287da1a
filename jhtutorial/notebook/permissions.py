"""Who may do what: ``kubectl auth can-i`` from a cell, and a client acting as a ServiceAccount.

    >>> nb.can_i(conn, "get", "secrets", service_account="hub")     # doctest: +SKIP
    True
    >>> hub = nb.service_account_client(conn, "hub")               # doctest: +SKIP   (kubectl create token hub)
    >>> hub.get(PODS.path(conn.namespace))                         # doctest: +SKIP   (as the hub would)
    >>> print(nb.ask_can_i(conn, ["create pods", "list pods -A"], accounts=["hub"]))   # doctest: +SKIP
    CAN I ...                    HUB
    create pods                  yes
    list pods (all namespaces)   no
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient

from ..connect import Connection
from ..errors import Forbidden, TutorialError
from ..kubeapi import KNOWN_RESOURCES, ROLES, KubeApi
from ..tokens import request_token
from .reads import kube, not_allowed
from .tables import table

Obj = dict[str, Any]


def can_i(conn: Connection, verb: str, resource: str, *, service_account: str | None = None,
          group: str = "", namespace: str | None = None, until: bool | None = None,
          timeout: float = 5.0) -> bool | None:
    """Ask the API server's authorizer, like ``kubectl auth can-i VERB RESOURCE [--as=system:serviceaccount:NS:SA]``.

    ``namespace=""`` asks about all namespaces (a cluster-wide permission).
    Without ``service_account`` it asks about you (the kubeconfig's user): anyone may ask that.
    A question about an account in all namespaces is a SubjectAccessReview, a cluster-wide right
    that a learner limited to a namespace lacks: then the answer is None (not allowed to ask).

    ``until``: right after a Role or RoleBinding changed, ask again until the answer is ``until`` (every
    0.1 s, at most ``timeout`` seconds; the last answer is returned either way). The authorizer learns of RBAC
    changes from its own watch a moment after they are stored, and offers nothing to wait on; a person typing
    ``kubectl auth can-i`` never notices, a cell that asks in the same millisecond can.

        >>> can_i(conn, "delete", "pods", service_account="hub", until=False)   # doctest: +SKIP
        False
    """
    deadline = time.monotonic() + timeout
    while True:
        answer = _ask_authorizer(conn, verb, resource, service_account=service_account, group=group,
                                 namespace=namespace)
        if until is None or answer is None or answer == until or time.monotonic() >= deadline:
            return answer
        time.sleep(0.1)


def _ask_authorizer(conn: Connection, verb: str, resource: str, *, service_account: str | None, group: str,
                    namespace: str | None) -> bool | None:
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


# --- questions as kubectl writes them ---------------------------------------------------------------

ALL_NAMESPACES = "-A"


@dataclass(frozen=True)
class Question:
    """One ``kubectl auth can-i`` question: ``"create pods"``, ``"delete deployments.apps"``, ``"list pods -A"``."""

    text: str
    verb: str
    resource: str
    group: str
    all_namespaces: bool

    @classmethod
    def parse(cls, text: str) -> Question:
        words = text.split()
        if len(words) not in (2, 3) or (len(words) == 3 and words[2] != ALL_NAMESPACES):
            raise TutorialError(f"cannot read {text!r} as a can-i question",
                                fix="write VERB RESOURCE[.GROUP] [-A], as for kubectl auth can-i: "
                                "'create pods', 'delete deployments.apps', 'list pods -A'")
        resource, _, group = words[1].partition(".")
        return cls(text, words[0], resource, group, len(words) == 3)

    @property
    def label(self) -> str:
        return f"{self.verb} {self.resource}" + (" (all namespaces)" if self.all_namespaces else "")


@dataclass
class CanIAnswers:
    """The answers to several can-i questions for several accounts: yes (True), no (False), or None
    (you may not ask: a question about all namespaces needs a cluster-wide right)."""

    accounts: list[str]
    answers: dict[str, dict[str, bool | None]]  # question text -> account -> answer
    labels: dict[str, str]

    def allowed(self, question: str, account: str) -> bool | None:
        return self.answers[question][account]

    def __str__(self) -> str:
        rows = [(self.labels[q], *(yes_no(self.answers[q][a]) for a in self.accounts)) for q in self.answers]
        lines = [table(rows, ["CAN I ...", *(a.upper() for a in self.accounts)])]
        for question, by_account in self.answers.items():
            if None in by_account.values():
                lines.append(f"\n{self.labels[question]}: "
                             + not_allowed("the cluster-wide right to create SubjectAccessReviews"))
        return "\n".join(lines)


def ask_can_i(conn: Connection, questions: list[str], *, accounts: list[str]) -> CanIAnswers:
    """Ask every question for every ServiceAccount, as ``kubectl auth can-i VERB RESOURCE
    --as=system:serviceaccount:NS:ACCOUNT`` (with ``-A``: in all namespaces) would."""
    parsed = [Question.parse(text) for text in questions]
    answers = {q.text: {account: can_i(conn, q.verb, q.resource, group=q.group, service_account=account,
                                       namespace="" if q.all_namespaces else None)
                        for account in accounts}
               for q in parsed}
    return CanIAnswers(list(accounts), answers, {q.text: q.label for q in parsed})


def requests_as(conn: Connection, account: str, *requests: str) -> None:
    """Make ``list RESOURCE`` requests in the namespace as ServiceAccount ``account``, with a short-lived token
    (``kubectl create token``) that is never shown; print what the API server allowed and refused."""
    try:
        client = service_account_client(conn, account)
    except Forbidden as refused:  # a namespace admin may lack serviceaccounts/token
        print(f"you may not create tokens for ServiceAccounts here, so this demonstration is skipped: "
              f"{refused.problem}")
        return
    width = max(len(request) for request in requests)
    try:
        for request in requests:
            verb, plural = request.split()
            if verb != "list":
                raise TutorialError(f"cannot make the request {request!r}", fix="write it as: list RESOURCE")
            resource = next(r for r in KNOWN_RESOURCES.values() if r.plural == plural)
            try:
                found = client.get(resource.path(conn.namespace)).get("items", [])
                print(f"as {account}: {request:<{width}} -> allowed, {len(found)} {plural}")
            except Forbidden as refused:
                print(f"as {account}: {request:<{width}} -> 403 Forbidden: {refused.problem}")
    finally:
        client.api_client.close()


def role_rules(conn: Connection, name: str) -> str:
    """A Role's rules, one line each (``kubectl describe role NAME``): resources (with their API group) and
    verbs."""
    role = kube(conn).get(ROLES.path(conn.namespace, name))
    rows = [(",".join(f"{r}.{g}" if g else r for g in rule.get("apiGroups") or [""] for r in rule.get("resources") or []),
             ",".join(rule.get("verbs") or [])) for rule in role.get("rules") or []]
    return table(rows, ["RESOURCES", "VERBS"])
