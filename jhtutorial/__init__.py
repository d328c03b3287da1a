"""jhtutorial: deploy a stripped-down JupyterHub on Kubernetes, one step at a time.

Everything a notebook cell, the CLI or a test needs is importable from here:

    >>> import jhtutorial
    >>> jhtutorial.LocalCluster().up()      # doctest: +SKIP
"""

from .access import Access, PortForwarder, hub_access, require_deployed
from .apply import AppliedObject, ApplyResult, apply
from .cleanup import CleanupResult, clean_up, leftovers
from .connect import Connection, connect, current_connection
from .errors import (
    AccessError,
    ApplyRejected,
    ClusterBusy,
    ClusterUnreachable,
    ConnectError,
    Forbidden,
    HubError,
    InvalidNamespace,
    KubeApiError,
    LocalClusterError,
    LoginFailed,
    NamespaceNotFound,
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
from .liveview import LiveView, PodRow, live_view, running_views
from .localcluster import ClusterStatus, LocalCluster
from .login import LoginResult, Stage, follow_login, login, stop_server
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
from .wayin import close_command, close_way_in, open_way_in, reopen_command

__all__ = [
    "STEPS",
    "Access",
    "AccessError",
    "AppliedObject",
    "ApplyRejected",
    "ApplyResult",
    "CleanupResult",
    "ClusterBusy",
    "ClusterStatus",
    "ClusterUnreachable",
    "ConnectError",
    "Connection",
    "Event",
    "Forbidden",
    "HubError",
    "InvalidNamespace",
    "KubeApiError",
    "LiveView",
    "LocalCluster",
    "LocalClusterError",
    "LoginFailed",
    "LoginResult",
    "NamespaceNotFound",
    "NoDefaultStorageClass",
    "NoKubeconfig",
    "NotConnected",
    "PodRow",
    "PortForwarder",
    "PortInUse",
    "Reflector",
    "Stage",
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
    "clean_up",
    "connect",
    "current_connection",
    "get_step",
    "hub_access",
    "leftovers",
    "live_view",
    "login",
    "stop_server",
    "open_way_in",
    "close_way_in",
    "reopen_command",
    "close_command",
    "follow_login",
    "require_deployed",
    "running_views",
    "wait_deleted",
    "wait_deployment_available",
    "wait_pod_ready",
    "wait_pods_ready",
    "wait_pvc_bound",
    "wait_service_endpoints",
]
