"""jhtutorial: deploy a stripped-down JupyterHub on Kubernetes, one step at a time.

Everything a notebook cell, the CLI or a test needs is importable from here:

    >>> import jhtutorial
    >>> jhtutorial.LocalCluster().up()      # doctest: +SKIP
"""

from .errors import ClusterBusy, LocalClusterError, PortInUse, ToolMissing, TutorialError
from .localcluster import ClusterStatus, LocalCluster

__all__ = [
    "ClusterBusy",
    "ClusterStatus",
    "LocalCluster",
    "LocalClusterError",
    "PortInUse",
    "ToolMissing",
    "TutorialError",
]
