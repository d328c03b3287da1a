"""Admission policies of backed namespaces: their pods handed to the supervisor from the moment they exist,
and no pod of group 0.

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
# Pod Security `restricted` refuses uid 0 but lets a pod ask for group 0 (runAsGroup, fsGroup,
# supplementalGroups). In a sandbox, group 0 is the group of the supervisor's owner on the machine (root's,
# when root runs the cluster): files of that group would be the pod's. So backed namespaces refuse it too.
NO_ROOT_GROUP = "jhtutorial-no-root-group"
ROOT_GROUP_ASKED = " || ".join([
    "(has(object.spec.securityContext) && ("
    "(has(object.spec.securityContext.runAsGroup) && object.spec.securityContext.runAsGroup == 0) || "
    "(has(object.spec.securityContext.fsGroup) && object.spec.securityContext.fsGroup == 0) || "
    "(has(object.spec.securityContext.supplementalGroups) && 0 in object.spec.securityContext.supplementalGroups)))",
    "(has(object.spec.initContainers) ? object.spec.initContainers : []).exists(c, has(c.securityContext) && "
    "has(c.securityContext.runAsGroup) && c.securityContext.runAsGroup == 0)",
    "object.spec.containers.exists(c, has(c.securityContext) && has(c.securityContext.runAsGroup) && "
    "c.securityContext.runAsGroup == 0)",
])


def policy_objects() -> list[dict[str, Any]]:
    """The policies and their bindings: backed pods handed to the supervisor, group 0 refused."""
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
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": NO_ROOT_GROUP},
            "spec": {
                "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                        "operations": ["CREATE", "UPDATE"], "resources": ["pods"]}]},
                "failurePolicy": "Fail",
                "validations": [{
                    "expression": f"!({ROOT_GROUP_ASKED})",
                    "message": "a pod in a namespace backed on the local cluster may not run as group 0 (runAsGroup, "
                               "fsGroup or supplementalGroups): in its sandbox that is the group of the cluster's "
                               "owner on the machine; choose another group id (the tutorial's pods use 1000 or 100)",
                }],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": NO_ROOT_GROUP},
            "spec": {
                "policyName": NO_ROOT_GROUP,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": backed_namespaces()},
            },
        },
    ]
