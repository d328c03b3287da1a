"""Every version the local cluster is built from, pinned in one place.

Changing a version here is all it takes to move the local cluster to a new
release: the build cache is keyed by these strings, so the next
``jhtutorial cluster up`` builds the new binaries and keeps the old ones.
"""

from __future__ import annotations

# Kubernetes control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler) and kubectl, built from the k8s.io/kubernetes Go module.
KUBERNETES = "v1.36.3"

# etcd, built from go.etcd.io/etcd/server/v3. Kubernetes 1.36 is tested
# against etcd 3.6; we take that line's newest patch release.
ETCD = "v3.6.16"

# kwok simulates nodes and pods; kwokctl wires the processes together.
KWOK = "v0.8.0"

# The Go release the binaries need (k8s.io/kubernetes v1.36 declares go 1.26.0).
GO_MINIMUM = (1, 26)


def staging_version(kubernetes: str = KUBERNETES) -> str:
    """Map a Kubernetes release to its staging modules' tag: v1.36.3 -> v0.36.3."""
    major, minor, patch = kubernetes.lstrip("v").split(".")
    if major != "1":
        raise ValueError(f"unexpected Kubernetes version {kubernetes!r}")
    return f"v0.{minor}.{patch}"
