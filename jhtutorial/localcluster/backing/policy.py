"""Which namespaces' pods the local cluster backs: one label selector, read by the supervisor and the API server.

The same selector decides twice: the supervisor (:mod:`.supervisor`) backs the pods of a namespace it matches,
and the admission policy (:mod:`.admission`) binds to the namespaces it matches, so the API server hands their
new pods to the supervisor. Written once here, the two cannot disagree.

- A namespace is backed when it carries ``jhtutorial/backed=true``: ``jhtutorial up`` and notebook 00 set it on
  the namespaces they make, ``jhtutorial classroom up`` on a learner's (``jhtutorial/backed=false`` with
  ``--simulated``), and only a cluster admin can set it by hand. Learners may not change their namespace's labels.
- A classroom learner's namespace (``jhtutorial/classroom``) is backed like the tutorial's: a learner may edit
  their hub's configuration, which is Python, but each pod runs in a sandbox of its own as its ``runAsUser``, in a
  network of its namespace's own, and is reached only through the API server (checked by RBAC), so a learner's
  hub is theirs alone.

    >>> namespace_backed({"metadata": {"labels": {"jhtutorial/backed": "true", "jhtutorial/classroom": "room"}}})
    True
"""

from __future__ import annotations

from typing import Any

from . import BACKED_LABEL, POD_SECURITY_LABELS

Obj = dict[str, Any]


def backed_namespaces() -> Obj:
    """The label selector (as in a binding's ``namespaceSelector``) of the namespaces whose pods are backed."""
    return {"matchLabels": {BACKED_LABEL: "true"}}


def namespace_backed(namespace: Obj | None) -> bool:
    """Whether the supervisor backs the pods of ``namespace`` (a Namespace object): the selector, evaluated."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    return selector_matches(backed_namespaces(), labels)


def backed_labels(backed: bool = True) -> dict[str, str]:
    """The labels of a namespace made for the tutorial on the local cluster: backed (or, ``backed=False``, kept
    purely simulated), and enforcing Pod Security ``restricted`` either way."""
    return {BACKED_LABEL: "true" if backed else "false", **POD_SECURITY_LABELS}


def selector_matches(selector: Obj, labels: dict[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels, matchExpressions) against a set of labels, as the API server
    evaluates it."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression["key"], expression["operator"], expression.get("values") or []
        present = key in labels
        if (operator == "Exists" and not present) or (operator == "DoesNotExist" and present) \
                or (operator == "In" and labels.get(key) not in values) \
                or (operator == "NotIn" and present and labels[key] in values):
            return False
    return True
