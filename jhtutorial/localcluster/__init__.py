"""The local simulated cluster (real control plane, kwok nodes and pods)."""

from .build import Binaries, ensure_binaries
from .cluster import CLUSTER_NAME, STORAGE_CLASS, ClusterStatus, LocalCluster

__all__ = ["Binaries", "CLUSTER_NAME", "ClusterStatus", "LocalCluster", "STORAGE_CLASS", "ensure_binaries"]
