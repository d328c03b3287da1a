"""Admission policies of backed namespaces: their pods handed to the supervisor from the moment they exist,
no pod of group 0, and no seccomp profile but RuntimeDefault.

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

# Every process of a sandbox runs under the sandbox's seccomp filter (seccomp.py), the local cluster's
# RuntimeDefault. A Localhost profile names a file in the kubelet's folder of a node, which the simulated nodes do
# not have (a kubelet refuses to start the container when the file is missing), and Unconfined would be a promise
# the sandbox does not keep. Pod Security restricted allows Localhost, so backed namespaces refuse both, at
# creation, with the reason. A pod that names no profile gets the filter too, as from a kubelet with SeccompDefault
# on (restricted, which the tutorial's namespaces enforce, refuses such a pod anyway).
RUNTIME_DEFAULT_SECCOMP = "jhtutorial-runtime-default-seccomp"
_OTHER_PROFILE = ("has({0}.securityContext) && has({0}.securityContext.seccompProfile) && "
                  "{0}.securityContext.seccompProfile.type != 'RuntimeDefault'")
OTHER_SECCOMP_ASKED = " || ".join([
    f"({_OTHER_PROFILE.format('object.spec')})",
    f"(has(object.spec.initContainers) ? object.spec.initContainers : []).exists(c, {_OTHER_PROFILE.format('c')})",
    f"object.spec.containers.exists(c, {_OTHER_PROFILE.format('c')})",
])


def _pod_requests(*operations: str) -> dict[str, Any]:
    """A policy's matchConstraints: these operations on pods."""
    return {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": list(operations),
                               "resources": ["pods"]}]}


def _refusal(name: str, condition: str, message: str, operations: tuple[str, ...]) -> list[dict[str, Any]]:
    """A ValidatingAdmissionPolicy refusing pods of backed namespaces for which ``condition`` (CEL) holds, and its
    binding."""
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "matchConstraints": _pod_requests(*operations),
                "failurePolicy": "Fail",
                "validations": [{"expression": f"!({condition})", "message": message}],
            },
        },
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": backed_namespaces()},
            },
        },
    ]


def policy_objects() -> list[dict[str, Any]]:
    """The policies and their bindings: backed pods handed to the supervisor, group 0 and seccomp profiles other
    than RuntimeDefault refused."""
    # the supervisor's own matcher (Program.matches), as a CEL raw string
    known = f"c.image.matches(r'{image_pattern(sorted({i for program in PROGRAMS for i in program.images}))}')"
    return [
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "MutatingAdmissionPolicy",
            "metadata": {"name": POLICY},
            "spec": {
                "matchConstraints": _pod_requests("CREATE"),
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
        *_refusal(NO_ROOT_GROUP, ROOT_GROUP_ASKED,
                  "a pod in a namespace backed on the local cluster may not run as group 0 (runAsGroup, "
                  "fsGroup or supplementalGroups): in its sandbox that is the group of the cluster's "
                  "owner on the machine; choose another group id (the tutorial's pods use 1000 or 100)",
                  ("CREATE", "UPDATE")),
        *_refusal(RUNTIME_DEFAULT_SECCOMP, OTHER_SECCOMP_ASKED,
                  "a pod in a namespace backed on the local cluster runs under its sandbox's seccomp filter, the "
                  "local cluster's RuntimeDefault profile: a Localhost profile is a file on a node, which the "
                  "simulated nodes do not have, and Unconfined is not offered; set seccompProfile: "
                  "{type: RuntimeDefault} (or leave it out)",
                  ("CREATE",)),  # a pod's seccompProfile cannot change; an older pod stays annotatable
    ]
