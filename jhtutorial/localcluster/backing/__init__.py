"""Pods on the local cluster's simulated nodes, backed by their real programs (see :mod:`.supervisor`).

The names below are what other parts of the package read on namespaces and pods.
"""

# On a namespace: the tutorial made it on the local cluster (``jhtutorial up``, notebook 00, ``jhtutorial classroom
# up``), so its pods' programs run here ("false": kept purely simulated). Which namespaces are backed: :mod:`.policy`.
BACKED_LABEL = "jhtutorial/backed"
# On a namespace: a classroom learner's (value: the room).
CLASSROOM_LABEL = "jhtutorial/classroom"
# On every namespace the tutorial marks for backing, and on a classroom's: the API server's Pod Security
# admission refuses, with its reason, any pod asking for more than the `restricted` profile allows (a host
# path, privileged mode, the host's network or PID namespace, root), as a careful cluster does. The
# tutorial's manifests and KubeSpawner's user pods meet it. "latest": the profile of the running API server.
POD_SECURITY_LABELS = {"pod-security.kubernetes.io/enforce": "restricted",
                       "pod-security.kubernetes.io/enforce-version": "latest"}
# On a backed pod: what runs it (its sandbox, pod IP and users).
BACKED_BY_ANNOTATION = "jhtutorial/backed-by"
# How that annotation starts.
SANDBOXED_BY = "a sandbox on this machine"
# On a pod of a backed namespace that stays purely simulated: why (a program is not installed).
NOT_BACKED_ANNOTATION = "jhtutorial/not-backed"
# On a backed pod: kwok leaves its status to the supervisor (the cluster's kwok is configured so).
KWOK_STATUS_ANNOTATION = "kwok.x-k8s.io/status"
