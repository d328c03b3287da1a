"""A MutatingAdmissionPolicy that hands the tutorial's pods to the supervisor from the moment they exist.

kwok marks a scheduled pod Running and Ready within milliseconds, long before a
program could answer. The API server itself therefore annotates, at creation,
every pod in a namespace marked for backing (:mod:`.policy`, the supervisor's own rule) whose images all have
a program here
(``kwok.x-k8s.io/status=custom``); kwok is configured to leave such pods alone,
and the supervisor writes their status from the programs instead. A pod the
supervisor then cannot back (a program not installed) gets the annotation
removed again, and kwok simulates it as before.

    $ kubectl get mutatingadmissionpolicy jhtutorial-backed-pods -o yaml
"""

from __future__ import annotations

from typing import Any

from . import KWOK_STATUS_ANNOTATION
from .policy import backed_namespaces
from .programs import PROGRAMS, image_pattern

POLICY = "jhtutorial-backed-pods"


def policy_objects() -> list[dict[str, Any]]:
    """The policy and its binding."""
    # the supervisor's own matcher (Program.matches), as a CEL raw string
    known = f"c.image.matches(r'{image_pattern(sorted({i for program in PROGRAMS for i in program.images}))}')"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": POLICY},
            "spec": {
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                        "operations": ["CREATE"], "resources": ["pods"]}]},
                "matchConditions": [{"name": "every-image-has-a-program-here",
                                     "expression": f"object.spec.containers.all(c, {known})"}],
                "failurePolicy": "Ignore",
                "reinvocationPolicy": "Never",
                "mutations": [{"patchType": "ApplyConfiguration", "applyConfiguration": {
                    "expression": "Object{metadata: Object.metadata{annotations: "
                                  f"{{'{KWOK_STATUS_ANNOTATION}': 'custom'}}}}}}"}}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicyBinding",
            "metadata": {"name": POLICY},
            "spec": {
                "policyName": POLICY,
                "matchResources": {"namespaceSelector": backed_namespaces()},
            },
        },
    ]
