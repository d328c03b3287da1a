"""One family of exceptions, each saying what went wrong and what to do.

Every error the package raises on purpose derives from :class:`TutorialError`
and carries two parts: ``problem`` (what failed, naming the object and the
namespace) and ``fix`` (the next thing a learner should try). Notebooks and
the CLI print both, so a learner never has to read a traceback to move on.

    >>> err = TutorialError("the hub Deployment is not available", fix="run notebook 06 first")
    >>> print(err)
    the hub Deployment is not available
      -> run notebook 06 first
"""

from __future__ import annotations


class TutorialError(Exception):
    """Base class: a problem the learner can act on."""

    #: exit code the CLI uses for this kind of problem (scripts can rely on it)
    exit_code = 1

    def __init__(self, problem: str, *, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem)

    def __str__(self) -> str:
        if self.fix:
            return f"{self.problem}\n  -> {self.fix}"
        return self.problem


class LocalClusterError(TutorialError):
    """The local simulated cluster could not be built, started or stopped."""

    exit_code = 3


class ToolMissing(LocalClusterError):
    """A program the local cluster needs (go, kwokctl, ...) is not installed."""


class PortInUse(LocalClusterError):
    """A port the local cluster wants is taken by another process."""


class ClusterBusy(LocalClusterError):
    """Another ``jhtutorial cluster`` command holds the cluster's lock."""


class SandboxError(LocalClusterError):
    """A pod's sandbox (its namespaces, file system or network) could not be made as asked."""


# --- talking to a cluster (connect, apply, wait) --------------------------------
#
# Exit codes, one per family, so a script can tell "fix your kubeconfig" (4)
# from "run the steps in order" (5), "ask for permissions" (6), "something in
# the cluster is stuck" (7) and "the API server said no for another reason" (8).


class ConnectError(TutorialError):
    """No usable connection to a cluster: kubeconfig, server, credentials, namespace, storage."""

    exit_code = 4


class NoKubeconfig(ConnectError):
    """There is no kubeconfig to read and no local cluster to fall back to."""


class UnknownContext(ConnectError):
    """The requested kubeconfig context does not exist (or the kubeconfig is unreadable)."""


class ClusterUnreachable(ConnectError):
    """The API server did not answer (refused, timed out, TLS failure)."""


class Unauthorized(ConnectError):
    """The API server rejected the credentials (HTTP 401)."""


class InvalidNamespace(ConnectError):
    """The namespace name is not a valid Kubernetes name (RFC 1123 label)."""


class NamespaceNotFound(ConnectError):
    """The namespace does not exist, and this notebook or command does not create it (only notebook 00 does)."""


class NoDefaultStorageClass(ConnectError):
    """A PVC needs a StorageClass and the cluster has no default one (or not the one named)."""


class NotConnected(ConnectError):
    """A function needed a connection and ``connect()`` was never called."""


class StepError(TutorialError):
    """A tutorial step cannot be applied as asked."""

    exit_code = 5


class UnknownStep(StepError):
    """No step with that number or name."""


class StepOutOfOrder(StepError):
    """A step was applied before an earlier step it depends on."""


class ApplyRejected(StepError):
    """The API server refused an object of the step (invalid field, conflict, missing namespace)."""


class KubeApiError(TutorialError):
    """The API server answered with an error no more specific class describes."""

    exit_code = 8

    def __init__(self, problem: str, *, fix: str | None = None, status: int = 0, reason: str = "") -> None:
        super().__init__(problem, fix=fix)
        self.status = status
        self.reason = reason


class Forbidden(KubeApiError):
    """The credentials are valid but RBAC does not allow the request (HTTP 403)."""

    exit_code = 6


class ClassroomError(TutorialError):
    """A classroom cannot be set up or removed as asked (a name taken by another room, a bad duration)."""


class WaitTimeout(TutorialError):
    """The awaited state did not arrive in time; the message says what blocks it.

    ``reasons`` holds the reasons found on the way (condition reasons, container
    waiting reasons, event reasons such as FailedScheduling), ``events`` the
    events quoted in the message, ``summary`` the last state seen.
    """

    exit_code = 7

    def __init__(
        self,
        problem: str,
        *,
        fix: str | None = None,
        summary: str = "",
        reasons: list[str] | None = None,
        events: list[dict] | None = None,
    ) -> None:
        super().__init__(problem, fix=fix)
        self.summary = summary
        self.reasons = list(reasons or [])
        self.events = list(events or [])


# --- manifests ------------------------------------------------------------------


class ManifestError(TutorialError):
    """A manifest file cannot be used: YAML syntax, a missing field or a kind the cluster does not serve.

    Raised while loading, before anything is sent to the cluster. ``path``,
    ``line`` (1-based, 0 when unknown) and ``reason`` are kept apart so a
    notebook can point at the spot:

        >>> err = ManifestError("bad.yaml", 3, "unknown kind 'Deploymnet' (apps/v1)", fix="did you mean 'Deployment'?")
        >>> print(err)
        bad.yaml:3: unknown kind 'Deploymnet' (apps/v1)
          -> did you mean 'Deployment'?
    """

    def __init__(self, path: str, line: int, reason: str, *, fix: str | None = None) -> None:
        self.path = path
        self.line = line
        self.reason = reason
        where = f"{path}:{line}" if line else path
        super().__init__(f"{where}: {reason}", fix=fix)


# --- reaching the hub, logging in -----------------------------------------------------
#
# Exit code 9: the tutorial is deployed, but the hub cannot be reached from
# here, or it refused the login.


class HubError(TutorialError):
    """Reaching or using the running hub failed."""

    exit_code = 9


class AccessError(HubError):
    """No way from this machine to the proxy-public Service worked (NodePort, minikube, port-forward)."""


class LoginFailed(HubError):
    """The hub refused the login, or the user's server could not be started."""
