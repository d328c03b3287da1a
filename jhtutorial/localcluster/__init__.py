"""The local simulated cluster (real control plane, kwok nodes and pods)."""

from .build import Binaries, built_binaries, ensure_binaries
from .cluster import CLUSTER_NAME, STORAGE_CLASS, ClusterStatus, LocalCluster

__all__ = ["Binaries", "built_binaries", "CLUSTER_NAME", "ClusterStatus", "LocalCluster", "STORAGE_CLASS", "ensure_binaries"]
