"""Pods on the local cluster's simulated nodes, backed by their real programs (see :mod:`.supervisor`).

The names below are what other parts of the package read on namespaces and pods.
"""

# On a namespace: the tutorial made it on the local cluster (``jhtutorial up``, notebook 00, ``jhtutorial classroom
# up``), so its pods' programs run here ("false": kept purely simulated). Which namespaces are backed: :mod:`.policy`.
BACKED_LABEL = "jhtutorial/backed"
# On a namespace: a classroom learner's (value: the room). Backed only when pods run in sandboxes (:mod:`.policy`).
CLASSROOM_LABEL = "jhtutorial/classroom"
# On every namespace the tutorial marks for backing, and on a classroom's: the API server's Pod Security
# admission refuses, with its reason, any pod asking for more than the `restricted` profile allows (a host
# path, privileged mode, the host's network or PID namespace, root), as a careful cluster does. The
# tutorial's manifests and KubeSpawner's user pods meet it. "latest": the profile of the running API server.
POD_SECURITY_LABELS = {"pod-security.kubernetes.io/enforce": "restricted",
                       "pod-security.kubernetes.io/enforce-version": "latest"}
# On a backed pod: which processes run it, and each container port's port on 127.0.0.1.
BACKED_BY_ANNOTATION = "jhtutorial/backed-by"
# How that annotation starts for a pod in a sandbox of its own (the default; not `cluster up --no-sandboxes`).
SANDBOXED_BY = "a sandbox on this machine"
PORTS_ANNOTATION = "jhtutorial/local-ports"
# On a backed pod: every address and path its programs were given that differs from the pod, one per line.
MAPPED_ANNOTATION = "jhtutorial/mapped"
# On a pod of a backed namespace that stays purely simulated: why (a program is not installed).
NOT_BACKED_ANNOTATION = "jhtutorial/not-backed"
# On a backed pod: kwok leaves its status to the supervisor (the cluster's kwok is configured so).
KWOK_STATUS_ANNOTATION = "kwok.x-k8s.io/status"
# What `cluster up`, `cluster status` and the live view say while pods run as processes on the machine's loopback.
PROCESSES_WARNING = ("backed pods run as processes on this machine's loopback (`cluster up --no-sandboxes`): every "
                     "account on this machine can reach the hub and log in as admin/admin; use it only on a machine of "
                     "your own, `jhtutorial cluster up --sandboxes` isolates them again")
