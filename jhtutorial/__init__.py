"""jhtutorial: deploy a stripped-down JupyterHub on Kubernetes, one step at a time.

Everything a notebook cell, the CLI or a test needs is importable from here:

    >>> import jhtutorial
    >>> jhtutorial.LocalCluster().up()      # doctest: +SKIP
"""

from .apply import AppliedObject, ApplyResult, apply
from .connect import Connection, connect, current_connection
from .errors import (
    ApplyRejected,
    ClusterBusy,
    ClusterUnreachable,
    ConnectError,
    Forbidden,
    InvalidNamespace,
    KubeApiError,
    LocalClusterError,
    NoDefaultStorageClass,
    NoKubeconfig,
    NotConnected,
    PortInUse,
    StepError,
    StepOutOfOrder,
    ToolMissing,
    TutorialError,
    Unauthorized,
    UnknownContext,
    UnknownStep,
    WaitTimeout,
)
from .localcluster import ClusterStatus, LocalCluster
from .steps import STEPS, Step, StepStatus, get_step
from .waits import (
    WaitResult,
    wait_deleted,
    wait_deployment_available,
    wait_pod_ready,
    wait_pods_ready,
    wait_pvc_bound,
    wait_service_endpoints,
)
from .watching import Event, Reflector

__all__ = [
    "STEPS",
    "AppliedObject",
    "ApplyRejected",
    "ApplyResult",
    "ClusterBusy",
    "ClusterStatus",
    "ClusterUnreachable",
    "ConnectError",
    "Connection",
    "Event",
    "Forbidden",
    "InvalidNamespace",
    "KubeApiError",
    "LocalCluster",
    "LocalClusterError",
    "NoDefaultStorageClass",
    "NoKubeconfig",
    "NotConnected",
    "PortInUse",
    "Reflector",
    "Step",
    "StepError",
    "StepOutOfOrder",
    "StepStatus",
    "ToolMissing",
    "TutorialError",
    "Unauthorized",
    "UnknownContext",
    "UnknownStep",
    "WaitResult",
    "WaitTimeout",
    "apply",
    "connect",
    "current_connection",
    "get_step",
    "wait_deleted",
    "wait_deployment_available",
    "wait_pod_ready",
    "wait_pods_ready",
    "wait_pvc_bound",
    "wait_service_endpoints",
]
